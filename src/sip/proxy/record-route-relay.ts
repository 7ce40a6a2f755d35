import { randomBytes } from 'node:crypto';
import { buildCancel } from '../engine/in-dialog-request-builder';
import { makeResponse } from '../engine/message-builders';
import { callIdOf } from '../message/sip-message';
import type { SipRequest } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import { copyRequest, decrementMaxForwards, isOurRoute, pushOurVia, withoutOurVia, type RouteStamp } from './forwarded-request';
import { loopHash } from './loop-detection';
import type { ProxyServices } from '../engine/proxy-dispatch';
import type { ServerTransaction } from '../transaction/server-transaction-table';

/**
 * In-dialog requests of a call proxied with `remainInDialog`: both parties send them to ferry sip
 * because its Record-Route is in their route set. The top Route (ours) is removed and the request
 * goes to the next Route or the Request-URI (RFC 3261 §16.4, loose routing) in a client transaction;
 * its responses come back without our Via. An ACK to a 2xx has no response and is passed on as is.
 * "Ours" means one of our hosts and the stamp of the request's Call-ID (RouteStamp): without it anyone
 * could write our Route on top of a request with a To tag and have ferry sip send it wherever the next
 * Route or the Request-URI says (a trunk that trusts ferry's address, a service on its own host).
 */
export class RecordRouteRelay {
  private inFlight = 0;
  /** relayed re-INVITEs without a final response yet, by the caller's server transaction: a CANCEL follows them */
  private readonly invites = new Map<ServerTransaction, { fwd: SipRequest; out: Flow }>();

  constructor(private readonly services: ProxyServices, private readonly stamp: RouteStamp) {}

  /** In-dialog requests relayed and not answered yet. */
  get size(): number {
    return this.inFlight;
  }

  /** True when the request's top Route is our Record-Route: it is relayed, the engine does nothing more. */
  onRequest(req: SipRequest, flow: Flow, txn: ServerTransaction): boolean {
    const fwd = this.stripOurRoute(req, flow);
    if (!fwd) return false;
    this.inFlight++;
    let open = true;
    const finish = (): void => {
      if (!open) return;
      open = false;
      this.inFlight--;
      this.invites.delete(txn);
    };
    const hash = loopHash(req);
    this.services.resolve(fwd.headers.getAll('Route')[0] ?? fwd.uri).then((out) => {
      pushOurVia(fwd, this.services.local, out, hash);
      if (fwd.method === 'INVITE' && open) this.invites.set(txn, { fwd, out });
      this.services.sendRequest(fwd, out, {
        onResponse: (res) => {
          if (res.status === 100) return;
          txn.respond(withoutOurVia(res));
          if (res.status >= 200) finish();
        },
        onTimeout: () => {
          finish();
          if (!txn.finalSent) txn.respond(makeResponse(req, 408, randomBytes(8).toString('hex')));
        },
      });
    }).catch((err: unknown) => {
      finish();
      this.services.log.info('in-dialog request of a proxied call could not be relayed', { callId: callIdOf(req), method: req.method,
        error: err instanceof Error ? err.message : String(err) });
      if (!txn.finalSent) txn.respond(makeResponse(req, 503, randomBytes(8).toString('hex')));
    });
    return true;
  }

  /** The sender cancelled a relayed re-INVITE (the engine answered it 487): the CANCEL goes on to the other party. */
  onCancelled(txn: ServerTransaction): boolean {
    const relayed = this.invites.get(txn);
    if (!relayed) return false;
    this.invites.delete(txn);
    this.services.sendRequest(buildCancel(relayed.fwd, undefined), relayed.out, { onResponse: () => {}, onTimeout: () => {} });
    return true;
  }

  /** An ACK to a 2xx of a record-routed call: passed on statelessly. True when it was ours to pass. */
  onAck(req: SipRequest, flow: Flow): boolean {
    const fwd = this.stripOurRoute(req, flow);
    if (!fwd) return false;
    const hash = loopHash(req);
    this.services.resolve(fwd.headers.getAll('Route')[0] ?? fwd.uri).then((out) => {
      pushOurVia(fwd, this.services.local, out, hash);
      out.send(serializeSipMessage(fwd));
    }).catch((err: unknown) => {
      this.services.log.info('ACK of a proxied call could not be relayed', { callId: callIdOf(req), error: err instanceof Error ? err.message : String(err) });
    });
    return true;
  }

  /** True when the request's top Route is our Record-Route for its Call-ID. */
  isOurs(req: SipRequest, flow: Flow): boolean {
    const hosts = [this.services.local.host(flow), flow.localAddress];
    return isOurRoute(req.headers.getAll('Route')[0], hosts, this.stamp, callIdOf(req));
  }

  /** A copy without our top Route and with Max-Forwards decremented, or undefined when the top Route is not ours. */
  private stripOurRoute(req: SipRequest, flow: Flow): SipRequest | undefined {
    if (!this.isOurs(req, flow)) return undefined;
    const fwd = copyRequest(req);
    fwd.headers.shift('Route');
    decrementMaxForwards(fwd);
    return fwd;
  }
}
