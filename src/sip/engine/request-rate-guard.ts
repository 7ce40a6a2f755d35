import type { Clock } from '../../common/clock';
import { LogThrottle } from '../../common/log-throttle';
import type { Logger } from '../../common/logger';
import type { SourceKeyer } from '../../common/source-key';
import { SourceRateLimiter } from '../../common/source-rate-limit';
import { tagOf } from '../message/name-addr';
import type { SipHeaders } from '../message/sip-headers';
import { normalizeAddress } from '../transport/connection-guard';
import type { Flow } from '../transport/flow';
import { requestRateOff, type RequestRateLimits } from './request-rate-limits';

/** a flooding source gets one line per this interval (the rest counted as `suppressed` on the next line) */
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Whether a request starts something new and so counts against its source's rate: a request outside any
 * dialog (its To has no tag), except ACK and CANCEL, which belong to an INVITE transaction that already
 * exists. In-dialog requests (BYE, re-INVITE, UPDATE, INFO, NOTIFY, in-dialog ACK...) of a dialog ferry sip
 * holds never count: a call in progress must not lose its BYE because its source is busy. Those that match
 * nothing (a made-up To tag) and a CANCEL that matches no INVITE do count (RequestRateGuard.admit's `held`).
 * Responses never reach this question, and neither does a retransmission of a request whose transaction
 * exists (RequestRateGuard.admit).
 */
export function startsSomethingNew(method: string, headers: SipHeaders): boolean {
  if (method === 'ACK' || method === 'CANCEL') return false;
  return tagOf(headers.get('To')) === undefined;
}

export interface RequestRateStats {
  /** new requests dropped, unanswered, because their source was over its rate */
  dropped: number;
  /** sources whose bucket has not refilled yet (bounded) */
  sources: number;
  /** the limit in force: requests per second and burst per source (0: no limit) */
  perSecond: number;
  burst: number;
}

/**
 * The per-source rate of new requests (RequestRateLimits), asked by the network intake for every request
 * that parsed (and every malformed one it would answer 400) before any transaction, answer or app sees it.
 * A new request past its source's bucket is dropped with no answer: a flood gets nothing back, while a real
 * UA over UDP retransmits and its retransmission finds the bucket refilled. Over TCP, TLS and WebSocket the
 * request is dropped the same way and the connection kept (it may carry registrations and calls, and the
 * connection caps already bound what it costs); a UA there does not retransmit, its request times out.
 * Exempt sources (FERRY_SIP_RATE_EXEMPT) are never counted. Every drop is counted in `stats()`; one log line
 * per source per 10 s names the address, the key it is counted by and how many drops were not logged.
 */
export class RequestRateGuard {
  private droppedCount = 0;
  private readonly buckets: SourceRateLimiter | undefined;
  private readonly dropLog: LogThrottle;

  constructor(
    readonly limits: RequestRateLimits,
    /** peer address -> the key its source is counted by (the same one the connection caps use) */
    private readonly sourceKey: SourceKeyer,
    private readonly log: Logger,
    clock: Clock,
  ) {
    this.buckets = requestRateOff(limits) ? undefined
      : new SourceRateLimiter({ perSecond: limits.perSecond, burst: limits.burst }, () => clock.now(), limits.maxSources);
    this.dropLog = new LogThrottle(DROP_LOG_INTERVAL_MS, () => clock.now());
  }

  /**
   * True when the request may go on; false: drop it (already counted and logged). `retransmission` says
   * whether a server transaction for it exists already: a UA's retransmission (its answer was lost, or is
   * late) starts nothing new and never counts. `held` says whether a request with a To tag, or a CANCEL,
   * belongs to something ferry sip holds; one that does not counts as new. ACK never counts.
   */
  admit(method: string, headers: SipHeaders, flow: Flow, retransmission: () => boolean = () => false, held: () => boolean = () => true): boolean {
    if (!this.buckets || method === 'ACK' || this.limits.exempt.has(flow.remoteAddress)) return true;
    // a request with a To tag, or a CANCEL, counts only when it matches nothing ferry sip holds (held: a dialog,
    // an early dialog, a proxied call's route, the INVITE a CANCEL names): such a request is answered 481 from a
    // transaction of its own, which a flood of made-up tags would otherwise fill the table with at any rate
    if (!startsSomethingNew(method, headers) && held()) return true;
    if (retransmission()) return true;
    const key = this.sourceKey(flow.remoteAddress);
    if (this.buckets.take(key)) return true;
    this.droppedCount++;
    const line = this.dropLog.admit(key);
    if (line) {
      const source = normalizeAddress(flow.remoteAddress);
      this.log.warn(`SIP requests from ${source}${key === source ? '' : ` (counted as ${key})`} dropped: over the per-source rate of new requests`, {
        source, sourceKey: key, port: flow.remotePort, protocol: flow.protocol, method: method.slice(0, 40),
        perSecond: this.limits.perSecond, burst: this.limits.burst, suppressed: line.suppressed,
      });
    }
    return false;
  }

  stats(): RequestRateStats {
    return { dropped: this.droppedCount, sources: this.buckets?.tracked ?? 0, perSecond: this.buckets ? this.limits.perSecond : 0, burst: this.buckets ? this.limits.burst : 0 };
  }
}
