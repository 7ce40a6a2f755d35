import { randomBytes } from 'node:crypto';
import type { AppConnection } from '../control/app-connection';
import { makeResponse } from '../engine/message-builders';
import type { SipRequest } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import { parseSipUri } from '../message/sip-uri';
import type { Flow, SipProtocol } from '../transport/flow';
import { copyRequest, RouteStamp } from './forwarded-request';
import { isLoop, loopHash } from './loop-detection';
import { ProxyOptionsError, proxyOptionsFrom, type ProxyOptions } from './proxy-options';
import type { AppProxyMessage } from '../control/control-server';
import type { PendingServerRequest } from '../engine/pending-server-requests';
import type { ProxyDispatch, ProxyServices } from '../engine/proxy-dispatch';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import { ProxyReport } from './proxy-report';
import { ProxySession } from './proxy-session';
import { RecordRouteRelay } from './record-route-relay';

const PROTOCOLS: SipProtocol[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

/**
 * ferry sip's answer to drachtio's `proxy` command (drachtio-srf `srf.proxyRequest()`): a network
 * request an app was handed is proxied statefully to the app's destinations (src/sip/proxy/proxy-session.ts),
 * and, with `remainInDialog`, the call's later in-dialog requests are relayed through ferry sip
 * (src/sip/proxy/record-route-relay.ts). docs/sip-proxy.md describes what it does and its limits.
 */
export class ProxyCore implements ProxyDispatch {
  private readonly sessions = new Map<ServerTransaction, ProxySession>();
  private readonly relay: RecordRouteRelay;
  /** the key of our Record-Routes: only the in-dialog requests of calls this ferry sip proxied are relayed */
  private readonly stamp = new RouteStamp();

  constructor(private readonly services: ProxyServices) {
    this.relay = new RecordRouteRelay(services, this.stamp);
  }

  /** The app's `proxy` message for the network request `pending` (undefined: no such transaction). */
  proxy(app: AppConnection, m: AppProxyMessage, pending: PendingServerRequest | undefined): void {
    const report = new ProxyReport(this.services.appPort, app, m.rid, () => this.services.clock.now(), m.fullResponse);
    if (!pending) return report.fail(`Unknown transaction id: ${m.transactionId}`);
    if (pending.appId !== app.id) return report.fail(`transaction ${m.transactionId} was given to another app`);
    if (this.sessions.has(pending.txn) || pending.txn.finalSent) return report.fail('request already answered or proxied');
    let options: ProxyOptions;
    try {
      options = proxyOptionsFrom(m);
    } catch (err) {
      // the request stays with the app, which may still answer it
      return report.fail(err instanceof ProxyOptionsError ? err.message : String(err));
    }
    const req = pending.request;
    const callId = callIdOf(req);
    const mf = req.headers.get('Max-Forwards');
    if (mf !== undefined && Number(mf) <= 0) {
      this.refuse(pending, 483, 'Rejected with 483 Too Many Hops due to Max-Forwards value of 0', report);
      return;
    }
    if (isLoop(req, this.services.local.host(pending.flow))) {
      this.refuse(pending, 482, 'Rejected with 482 Loop Detected', report);
      return;
    }
    this.services.finishPending(pending);
    const request = copyRequest(req);
    request.headers.remove('Route'); // as drachtio-server: a preloaded Route is not followed, the app chose the targets
    const session = new ProxySession(this.services, {
      pending, request, options, hash: loopHash(req), replaceUri: this.namesUs(req.uri, pending.flow), report,
      routeStamp: this.stamp.of(callId),
      onEnded: () => {
        if (this.sessions.get(pending.txn) === session) this.sessions.delete(pending.txn);
      },
    });
    this.sessions.set(pending.txn, session);
    this.services.log.info('proxying request', { callId, method: req.method, app: app.id, destinations: options.destinations,
      forking: options.simultaneous ? 'simultaneous' : 'serial', recordRoute: options.recordRoute, followRedirects: options.followRedirects });
    session.start();
    if (!m.fullResponse) report.finish();
  }

  /** The caller cancelled an INVITE (the engine answered the CANCEL 200 and the INVITE 487). */
  onCancelled(inviteTxn: ServerTransaction): void {
    const session = this.sessions.get(inviteTxn);
    if (session) session.cancelledUpstream();
    else this.relay.onCancelled(inviteTxn);
  }

  /** True when `req` (an in-dialog request no dialog matches) carries our Record-Route for its Call-ID: it is relayed. */
  relays(req: SipRequest, flow: Flow): boolean {
    return this.relay.isOurs(req, flow);
  }

  /** An in-dialog request that matches no dialog: relayed when its top Route is our Record-Route. */
  onUnmatchedInDialogRequest(req: SipRequest, flow: Flow, txn: ServerTransaction): boolean {
    return this.relay.onRequest(req, flow, txn);
  }

  /** An ACK that matches no transaction and no dialog: relayed when its top Route is our Record-Route. */
  onUnmatchedAck(req: SipRequest, flow: Flow): boolean {
    return this.relay.onAck(req, flow);
  }

  /** Live counts; both are 0 when nothing is being proxied. */
  stats(): { proxySessions: number; proxyForwards: number } {
    return { proxySessions: this.sessions.size, proxyForwards: this.relay.size };
  }

  shutdown(): void {
    for (const s of this.sessions.values()) s.stop();
    this.sessions.clear();
  }

  private refuse(pending: PendingServerRequest, status: number, reason: string, report: ProxyReport): void {
    this.services.finishPending(pending);
    pending.txn.respond(makeResponse(pending.request, status, randomBytes(8).toString('hex')));
    this.services.log.info('proxy refused', { callId: callIdOf(pending.request), status, reason });
    report.fail(reason);
  }

  /** The Request-URI addresses ferry sip itself (its host and one of its ports): each branch gets its target instead. */
  private namesUs(uri: string, flow: Flow): boolean {
    const u = parseSipUri(uri);
    if (!u || u.scheme === 'tel') return false;
    const local = this.services.local;
    const hosts = [local.host(flow), flow.localAddress, 'localhost'];
    if (!hosts.includes(u.host.toLowerCase())) return false;
    const port = u.port ?? (u.scheme === 'sips' ? 5061 : 5060);
    return PROTOCOLS.some((p) => local.port({ protocol: p } as Flow) === port);
  }
}
