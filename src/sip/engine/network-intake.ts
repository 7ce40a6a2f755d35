import { LogThrottle } from '../../common/log-throttle';
import type { Logger } from '../../common/logger';
import { errorForLog } from '../../common/process-faults';
import type { AppRouter } from '../control/app-router';
import { forLog, overLongEcho, overLongRefusal } from '../message/echo-limits';
import { refusalResponse, validateRequest } from '../message/request-validator';
import { SipHeaders } from '../message/sip-headers';
import type { SipMessage, SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import { SipParseError } from '../message/sip-parse-error';
import { parseSipMessage } from '../message/sip-parser';
import { serializeSipMessage } from '../message/sip-serializer';
import { formatVia, parseVia } from '../message/via';
import { isByteStream, type Flow } from '../transport/flow';
import { makeResponse, randomToken } from './message-builders';
import type { RequestRateGuard } from './request-rate-guard';

/** What the intake turned away, since start (ferry sip's metrics). */
export interface IntakeCounts {
  /** unreadable messages answered 400 (their headers allowed an answer) */
  malformedAnswered: number;
  /** unreadable messages dropped without an answer */
  malformedDropped: number;
  /**
   * requests refused before any transaction, by the status they were (or, for an ACK, would have been) answered with:
   * the validator's (400/416/420/501/505), 483 (Max-Forwards 0), and the stream transports' 400/413 (answered ones)
   */
  refusedByStatus: Map<number, number>;
}

/** Where a message that passed intake goes. */
export interface IntakeTargets {
  onRequest(req: SipRequest, flow: Flow): void;
  onResponse(res: SipResponse): void;
  /** true when `req` is a retransmission of a request whose server transaction exists (never counted against the rate) */
  isRetransmission?(req: SipRequest): boolean;
  /**
   * true when `req` (a request with a To tag, or a CANCEL) belongs to something the engine holds: a dialog,
   * an early dialog, a proxied call's route, the INVITE a CANCEL names; one that does not counts against the rate
   */
  isHeld?(req: SipRequest, flow: Flow): boolean;
}

/**
 * Everything from the transports enters here: parsed (a malformed request answered 400 when its
 * headers allow, anything else unreadable dropped), the top Via stamped (received/rport), new requests
 * checked — the ONE call site of the request validator (src/sip/message/request-validator.ts) and the
 * Max-Forwards check — then handed to the UAS core (requests) or the UAC core (responses). A new request
 * from a source over its rate (`rate`, src/sip/engine/request-rate-guard.ts) is dropped first, unanswered.
 * A request whose Call-ID, tags, branch or echoed headers are over ECHO_LIMITS (src/sip/message/echo-limits.ts)
 * is answered nothing over UDP and a small 400 that does not repeat them over a connection, before anything
 * else: every answer, 100 Trying included, would carry them back.
 */
export class NetworkIntake {
  private readonly counted: IntakeCounts = { malformedAnswered: 0, malformedDropped: 0, refusedByStatus: new Map() };
  /**
   * Malformed and refused messages are what a stranger sends at will (over UDP from any source address it
   * forges): one line per kind and source address per 10 s, the next saying how many were not logged, and
   * no line at all for sources beyond the first 1000 in an interval. They are all counted (the metrics).
   */
  private readonly logThrottle = new LogThrottle(10_000);

  constructor(private readonly router: AppRouter, private readonly log: Logger, private readonly targets: IntakeTargets,
    private readonly rate?: RequestRateGuard) {}

  /** A copy of what the intake turned away since start. */
  counts(): IntakeCounts {
    return { ...this.counted, refusedByStatus: new Map(this.counted.refusedByStatus) };
  }

  private countRefused(status: number): void {
    this.counted.refusedByStatus.set(status, (this.counted.refusedByStatus.get(status) ?? 0) + 1);
  }

  onData(data: Buffer, flow: Flow): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(data, !isByteStream(flow.protocol));
    } catch (err) {
      this.onParseError(err, flow);
      return;
    }
    if (msg.kind === 'request' && this.rate && !this.rate.admit(msg.method, msg.headers, flow, () => this.targets.isRetransmission?.(msg) ?? false,
      () => this.targets.isHeld?.(msg, flow) ?? true)) return;
    this.log.debug('sip received', { from: flow.id, line: msg.kind === 'request' ? `${msg.method} ${msg.uri}` : `${msg.status} ${msg.reason}`,
      callId: callIdOf(msg), cseq: msg.headers.get('CSeq') });
    try {
      if (msg.kind === 'request') this.onRequest(msg, flow);
      else this.targets.onResponse(msg);
    } catch (err) {
      this.log.error('failed to handle SIP message', { ...errorForLog(err), callId: callIdOf(msg) });
    }
  }

  /**
   * A request the stream transport refused once its headers were read — too large (413) or with a
   * missing/unreadable Content-Length (400) — answered on the same connection when its headers allow a
   * response (the transport then closes it).
   */
  onRefusedRequest(head: Buffer, flow: Flow, status: 400 | 413, why: string): void {
    let headers: SipHeaders | undefined;
    let method: string | undefined;
    try {
      const m = parseSipMessage(head, false);
      if (m.kind === 'request') ({ headers, method } = m);
    } catch (err) {
      if (err instanceof SipParseError && err.isRequest) ({ headers, method } = err);
    }
    if (!headers || !method || method === 'ACK' || !headers.getAll('Via').length || !headers.has('CSeq')) return;
    if (this.refusedOverLong(method, headers, flow)) return;
    const req: SipRequest = { kind: 'request', method, uri: '', headers, body: Buffer.alloc(0) };
    const reason = status === 413 ? 'Request Entity Too Large' : `Bad Request (${why})`;
    flow.send(serializeSipMessage(makeResponse(req, status, randomToken(), reason)));
    this.countRefused(status);
    const logged = this.logThrottle.admit(`refused-stream ${flow.remoteAddress}`);
    if (logged) this.log.info(`answered refused request with ${status}`, { from: flow.id, method, reason: why, callId: forLog(headers.get('Call-ID')), suppressed: logged.suppressed });
  }

  private onRequest(req: SipRequest, flow: Flow): void {
    if (this.refusedOverLong(req.method, req.headers, flow)) return;
    this.stampVia(req, flow);
    // RFC 3261 §8.2 checks (505/400/501/416/420) before any transaction or app
    const refusal = validateRequest(req, { routes: (verb) => this.router.connected().some((a) => a.routes.has(verb)) });
    if (refusal) {
      if (req.method !== 'ACK') flow.send(serializeSipMessage(refusalResponse(req, refusal)));
      this.countRefused(refusal.status);
      const logged = this.logThrottle.admit(`refused ${flow.remoteAddress}`);
      if (logged) this.log.info('refused request', { status: refusal.status, reason: refusal.why, method: req.method.slice(0, 40), callId: forLog(callIdOf(req)), from: flow.id, suppressed: logged.suppressed });
      return;
    }
    const mf = req.headers.get('Max-Forwards');
    if (mf !== undefined && Number(mf) === 0 && req.method !== 'ACK' && req.method !== 'OPTIONS') {
      flow.send(serializeSipMessage(makeResponse(req, 483, randomToken())));
      this.countRefused(483);
      return;
    }
    this.targets.onRequest(req, flow);
  }

  /**
   * True when the request's echoed values are over ECHO_LIMITS: then it was answered a small 400 over a
   * connection, nothing over UDP (nor ever for an ACK), counted as refused with 400 and logged without them.
   */
  private refusedOverLong(method: string, headers: SipHeaders, flow: Flow): boolean {
    const why = overLongEcho(headers);
    if (!why) return false;
    const answered = method !== 'ACK' && flow.protocol !== 'udp';
    if (answered) flow.send(serializeSipMessage(overLongRefusal(headers, why)));
    this.countRefused(400);
    const logged = this.logThrottle.admit(`over-long ${flow.remoteAddress}`);
    if (logged) {
      this.log.info(answered ? 'refused request with over-long echoed values' : 'dropped request with over-long echoed values',
        { reason: why, method: method.slice(0, 40), callId: forLog(headers.get('Call-ID')), from: flow.id, suppressed: logged.suppressed });
    }
    return true;
  }

  private onParseError(err: unknown, flow: Flow): void {
    const why = err instanceof Error ? err.message : String(err);
    if (err instanceof SipParseError && err.isRequest && err.method !== 'ACK' && err.headers?.getAll('Via').length) {
      const h = err.headers;
      if (this.rate && !this.rate.admit(err.method ?? 'UNKNOWN', h, flow)) return;
      if (this.refusedOverLong(err.method ?? 'UNKNOWN', h, flow)) return;
      const fake: SipRequest = { kind: 'request', method: err.method ?? 'UNKNOWN', uri: '', headers: h, body: Buffer.alloc(0) };
      const res = makeResponse(fake, 400, randomToken(), `Bad Request (${why.replace(/[^\x20-\x7e]/g, ' ').slice(0, 80)})`);
      flow.send(serializeSipMessage(res));
      this.counted.malformedAnswered++;
      const logged = this.logThrottle.admit(`malformed-answered ${flow.remoteAddress}`);
      if (logged) this.log.info('answered malformed request with 400', { reason: why, from: flow.id, suppressed: logged.suppressed });
      return;
    }
    this.counted.malformedDropped++;
    const logged = this.logThrottle.admit(`malformed-dropped ${flow.remoteAddress}`);
    if (logged) this.log.info('dropped malformed SIP message', { reason: why, from: flow.id, suppressed: logged.suppressed });
  }

  /** Adds received/rport to the top Via (RFC 3261 §18.2.1, RFC 3581). */
  private stampVia(req: SipRequest, flow: Flow): void {
    const top = req.headers.getAll('Via')[0];
    const via = parseVia(top);
    if (!via) return;
    if (via.host !== flow.remoteAddress) via.params.set('received', flow.remoteAddress);
    if (via.params.has('rport') && !via.params.get('rport')) via.params.set('rport', String(flow.remotePort));
    req.headers.replaceFirst('Via', formatVia(via));
  }
}
