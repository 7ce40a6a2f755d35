import { randomUUID } from 'node:crypto';
import type { AppConnection } from '../control/app-connection';
import type { AppSipMessage } from '../control/control-server';
import { type Dialog, makeDialogId } from '../dialog/dialog';
import { uacDialog } from '../dialog/dialog-factory';
import { parseNameAddr, tagOf, withTag } from '../message/name-addr';
import { SipHeaders } from '../message/sip-headers';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf, cseqOf } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import { ClientInviteTransaction } from '../transaction/client-invite-transaction';
import type { ClientTransaction } from '../transaction/client-transaction-table';
import { ConnectingFlow } from '../transport/connecting-flow';
import type { Flow } from '../transport/flow';
import { LogThrottle } from '../../common/log-throttle';
import { NO_CONNECTION_REASON } from '../../common/flow-failure';
import { addressNotForPeer, peerOnlyTarget, peerUri } from '../dialog/dialog-flow';
import { RefusedTargetError } from './next-hop-resolver';
import type { ClientRequest } from './client-request';
import type { DialogOwners } from './dialog-owners';
import type { EngineContext } from './engine-context';
import { APP_GONE_REASON, FERRY_DIALOG_HEADER } from './engine-reasons';
import { buildCancel, buildInDialogRequest } from './in-dialog-request-builder';
import { ENGINE_OWNED, makeResponse, randomToken, replaceLocalhost, sniffContentType } from './message-builders';
import { type NextHops, UnreachableTargetError } from './next-hop-resolver';
import { needsBoundFlow, RECONNECTING_FLOW_WAIT_MS, waitForBoundFlow } from './reconnecting-flow-wait';
import { isSubscriptionAccepted, subscriptionTerminated } from './subscription-dialogs';
import { FAILOVER_WINDOW_T1, TargetFailover } from './target-failover';

/** What the UAC core asks of the rest of the engine. */
export interface UacPeers {
  owners: DialogOwners;
  /** the dialog named by a request's X-Ferry-Dialog header, rebuilt from the request when unknown (may throw) */
  dialogFromSnapshot(app: AppConnection, dialogId: string, req: SipRequest): Dialog;
}

/**
 * The UAC core: requests apps send (new, in a dialog, CANCEL, ACK of a 2xx) and requests the engine
 * sends for itself (BYE, CANCEL) or for the proxy core, in client transactions; their responses go to
 * the app that sent the request and create UAC dialogs (2xx or reliable 1xx to INVITE, 200/202 to SUBSCRIBE).
 */
export class UacCore {
  /** a dialog whose peer named a target it may not: one line per peer address per 10 s */
  private readonly peerOnlyLog: LogThrottle;

  constructor(private readonly ctx: EngineContext, private readonly peers: UacPeers) {
    this.peerOnlyLog = new LogThrottle(10_000, () => ctx.clock.now());
  }

  /** A response from the network: to its client transaction. */
  onResponse(res: SipResponse): void {
    if (!this.ctx.clients.dispatch(res)) this.ctx.log.debug('response matches no transaction', { callId: callIdOf(res), cseq: res.headers.get('CSeq') });
  }

  /** `sip|<txnId>|` + CANCEL: cancels the app's pending INVITE. */
  onAppCancel(app: AppConnection, m: AppSipMessage, appReq: SipRequest): void {
    const c = this.ctx.clients.get(m.transactionId);
    if (!c || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived) {
      this.ctx.appPort.refuse(app, m.rid, 'transaction not found or already completed');
      return;
    }
    if (c.cancel) {
      // the INVITE is cancelled already (srf cancelling twice): its CANCEL transaction retransmits; a second
      // CANCEL with the same branch would be a second transaction the peer cannot tell from the first
      this.ctx.appPort.requestSent(app, m.rid, serializeSipMessage(c.cancel), c.flow, c.txnId);
      return;
    }
    const cancel = buildCancel(c.request, appReq);
    c.cancel = cancel;
    c.cancelSent = true; // an app that leaves now is not cancelled a second time (cancelAbandoned)
    this.ctx.appPort.requestSent(app, m.rid, serializeSipMessage(cancel), c.flow, c.txnId);
    if (c.flow instanceof ConnectingFlow && c.flow.connecting) {
      this.endBeforeConnection(c, 'cancelled by the app');
      return;
    }
    this.startClientTxn(cancel, c.flow, undefined, undefined, '');
  }

  /**
   * An INVITE still waiting for its TCP or TLS connection is cancelled, or its app is gone: it never went
   * on the wire, so there is nothing to CANCEL there (RFC 3261 §9.1 forbids a CANCEL before a provisional
   * anyway). Its connection is given up, its transaction ends, and its app (if still connected) gets
   * `487 Request Terminated` on a later turn, as if the peer had answered the CANCEL.
   */
  private endBeforeConnection(c: ClientRequest, why: string): void {
    (c.flow as ConnectingFlow).drop();
    c.txn.abort();
    this.ctx.log.info('request ended before its connection was up: nothing sent', { method: c.request.method, callId: callIdOf(c.request), why });
    if (!c.appId) return;
    const res = makeResponse(c.request, 487, randomToken());
    setImmediate(() => this.onClientResponse(c, res));
  }

  /** `sip||` + request: a new request (or, as drachtio does, one sent inside the dialog its Call-ID names). */
  async onAppNewRequest(app: AppConnection, m: AppSipMessage, req: SipRequest): Promise<void> {
    const snapshotId = req.headers.get(FERRY_DIALOG_HEADER);
    if (snapshotId !== undefined) {
      req.headers.remove(FERRY_DIALOG_HEADER);
      return this.sendInDialog(app, m, req, this.peers.dialogFromSnapshot(app, snapshotId.trim(), req));
    }
    const callId = req.headers.get('Call-ID');
    if (callId) {
      const fromTag = tagOf(req.headers.get('From'));
      const d = this.ctx.dialogs.findByCallId(callId, fromTag);
      if (d && (fromTag || req.method !== 'INVITE')) return this.sendInDialog(app, m, req, d);
    }
    const { local } = this.ctx;
    for (const h of ENGINE_OWNED) req.headers.remove(h);
    req.headers.remove('Route');
    let unreachable: UnreachableTargetError | undefined;
    // a TCP or TLS connection still opening is not waited for: the request is held on it (ConnectingFlow)
    const hops = await this.ctx.resolver.nextHops(m.proxy ?? req.uri).catch((err: unknown): NextHops => {
      if (!(err instanceof UnreachableTargetError)) throw err;
      unreachable = err;
      return { flow: unreachableFlow(err), next: () => undefined, left: 0 };
    });
    const flowHint = hops.flow;
    const host = local.host(flowHint);
    const port = local.port(flowHint);
    const from = req.headers.get('From') ?? `<sip:ferry@${host}:${port}>`;
    req.headers.set('From', withTag(replaceLocalhost(from, host, port, undefined), randomToken()));
    if (!req.headers.has('To')) req.headers.set('To', `<${req.uri}>`);
    if (!req.headers.has('Call-ID')) req.headers.set('Call-ID', randomUUID());
    if (!req.headers.has('CSeq')) req.headers.set('CSeq', `1 ${req.method}`);
    if (!req.headers.has('Max-Forwards')) req.headers.set('Max-Forwards', '70');
    if (req.method === 'INVITE' || req.method === 'SUBSCRIBE' || req.method === 'REFER') {
      const contact = req.headers.get('Contact');
      req.headers.set('Contact', contact ? replaceLocalhost(contact, host, port, flowHint.protocol) : local.contact(flowHint));
    }
    sniffContentType(req.headers, req.body);
    if (unreachable) return this.answerUnreachable(app, m, req, flowHint, unreachable);
    const failover = TargetFailover.worthKeeping(hops) ? new TargetFailover(hops, this.ctx.clock.now(), FAILOVER_WINDOW_T1 * this.ctx.timers.t1) : undefined;
    await this.sendRequest(req, undefined, app, flowHint, undefined, randomUUID(), (data, flow, txnId) => {
      if (req.method === 'INVITE') this.ctx.cdr.appInvite(data);
      this.ctx.appPort.requestSent(app, m.rid, data, flow, txnId);
    }, failover);
  }

  /**
   * A new request whose next hop cannot be reached, answered as drachtio-server's stack answers it: the
   * app is told the request was sent, then gets the stack's own final response (408, 410 or 503, with a To
   * tag) on a later turn, so an app (srf's createB2BUA) sees a failed transaction rather than a refused
   * send. Nothing goes on the wire and no transaction is kept.
   */
  private answerUnreachable(app: AppConnection, m: AppSipMessage, req: SipRequest, flow: Flow, err: UnreachableTargetError): void {
    this.addVia(req, flow);
    const txnId = randomUUID();
    const data = serializeSipMessage(req);
    if (req.method === 'INVITE') this.ctx.cdr.appInvite(data);
    this.ctx.appPort.requestSent(app, m.rid, data, flow, txnId);
    this.ctx.log.info('request target unreachable: answered by the engine', { method: req.method, callId: req.headers.get('Call-ID'), status: err.status, reason: err.message });
    const res = makeResponse(req, err.status, randomToken(), err.status === 410 ? 'Gone' : err.status === 503 ? NO_CONNECTION_REASON : undefined);
    setImmediate(() => {
      if (req.method === 'INVITE') this.ctx.cdr.appInviteAnswered(req, res);
      if (this.ctx.router.find(app.id)) this.ctx.appPort.networkMessage(app, res, flow, txnId, '');
    });
  }

  /** `sip||<dialogId>` + request (or a request matched to a dialog): sent in the dialog; the sender becomes its owner. */
  async sendInDialog(app: AppConnection, m: AppSipMessage, appReq: SipRequest, dialog: Dialog): Promise<void> {
    if (dialog.ownerId !== app.id) {
      this.ctx.log.info('dialog taken over by app', { callId: dialog.callId, dialogId: dialog.id, from: dialog.ownerId, to: app.id, method: appReq.method });
      this.peers.owners.setOwner(dialog, app);
    }
    if (appReq.method === 'ACK') {
      if (dialog.lastInviteCSeq === undefined) throw new Error('no INVITE to acknowledge in this dialog');
      const ack = buildInDialogRequest(dialog, 'ACK', appReq);
      const flow = await this.flowForDialog(dialog);
      this.addVia(ack, flow);
      const data = serializeSipMessage(ack);
      flow.send(data);
      dialog.lastAck = { cseq: dialog.lastInviteCSeq, data };
      this.ctx.appPort.requestSent(app, m.rid, data, flow, randomUUID());
      return;
    }
    const req = buildInDialogRequest(dialog, appReq.method, appReq);
    dialog.challengedBye?.cancel();
    dialog.challengedBye = undefined;
    if (req.method === 'BYE') {
      dialog.pending2xx?.cancel();
      dialog.pending2xx = undefined;
    }
    await this.sendRequest(req, dialog, app, undefined, m.proxy, randomUUID(), (data, flow, txnId) => {
      if (req.method === 'BYE') this.ctx.cdr.appBye(dialog, data);
      this.ctx.appPort.requestSent(app, m.rid, data, flow, txnId);
    });
  }

  /** The flow of a dialog: its connection, the first loose route, or its remote target (waiting briefly for a webphone to reconnect). */
  async flowForDialog(dialog: Dialog): Promise<Flow> {
    if (dialog.flow && !dialog.flow.closed) return dialog.flow;
    const first = dialog.routeSet[0];
    const loose = first && /;lr\b/i.test(first) ? first : undefined;
    const target = loose ?? dialog.remoteTarget;
    const peer = dialog.peer;
    // the peer named one of this host's addresses, or one no peer can be at: its requests go where it is
    const toPeer = (): Promise<Flow> => {
      const logged = this.peerOnlyLog.admit(peer!.address);
      if (logged) {
        this.ctx.log.warn('in-dialog request sent to the peer\'s address: its route or Contact names an address it may not send ferry sip to', {
          callId: dialog.callId.slice(0, 128), peer: peer!.address, target: target.slice(0, 128), suppressed: logged.suppressed,
        });
      }
      return this.ctx.resolver.resolve(peerUri(peer!));
    };
    if (peer && peerOnlyTarget(target, peer.address)) return toPeer();
    // the same rule for the addresses a name resolves to (the peer's DNS chooses them); a dialog rebuilt from a
    // snapshot has no recorded peer: a refused address fails the request (dialog-flow.ts, addressNotForPeer)
    const localOnly = this.ctx.local.loopbackOnly();
    const refuse = (address: string): boolean => addressNotForPeer(address, peer?.address, localOnly);
    const refused = (err: unknown): Promise<Flow> => {
      if (!(err instanceof RefusedTargetError)) throw err;
      if (peer) return toPeer();
      this.ctx.log.warn('in-dialog request not sent: the target of a dialog rebuilt from a snapshot names an address it may not be sent to', {
        callId: dialog.callId.slice(0, 128), target: target.slice(0, 128), addresses: err.addresses.slice(0, 5),
      });
      throw new UnreachableTargetError(503, err.message, 'udp', err.addresses[0] ?? '', 0);
    };
    if (loose) return this.ctx.resolver.resolve(loose, refuse).catch(refused);
    try {
      return await this.ctx.resolver.resolve(dialog.remoteTarget, refuse);
    } catch (err) {
      if (err instanceof RefusedTargetError) return refused(err);
      // a webphone whose connection dropped keeps its call and comes back: wait for it a little
      if (!needsBoundFlow(dialog.remoteTarget)) throw err;
      this.ctx.log.info('in-dialog request waits for the peer to reconnect', { callId: dialog.callId, dialogId: dialog.id, waitMs: RECONNECTING_FLOW_WAIT_MS });
      const flow = await waitForBoundFlow(this.ctx.bindings, dialog.remoteTarget, this.ctx.clock);
      if (!flow) throw err;
      return flow;
    }
  }

  /**
   * A BYE the engine sends for itself (with a `Reason` when given); the dialog is gone at once. The owning
   * app, if connected, is told (`unsolicited`). Resolves with the final status (-1: could not be sent).
   */
  sendEngineBye(dialog: Dialog, reason: string | undefined): Promise<number> {
    const bye = buildInDialogRequest(dialog, 'BYE', reason ? withHeader('BYE', 'Reason', reason) : undefined);
    this.ctx.cdr.engineBye(dialog, bye);
    this.ctx.dialogs.end(dialog, 'engine-bye');
    return new Promise<number>((resolve) => {
      const onFinal = (status: number): void => {
        if (reason) this.ctx.log.info('BYE sent by ferry sip answered', { callId: dialog.callId, dialogId: dialog.id, status });
        resolve(status);
      };
      this.flowForDialog(dialog).then((flow) => {
        this.addVia(bye, flow);
        const data = serializeSipMessage(bye);
        const app = this.ctx.router.find(dialog.ownerId);
        if (app) this.ctx.appPort.unsolicited(app, data, flow, dialog.id);
        this.startClientTxn(bye, flow, dialog, undefined, '', onFinal);
      }).catch((err) => {
        this.ctx.log.warn('could not send BYE', { callId: dialog.callId, dialogId: dialog.id, error: String(err) });
        resolve(-1);
      });
    });
  }

  /** The proxy core's requests: `req` (top Via set by the caller) in a client transaction no app sees. */
  sendForProxy(req: SipRequest, flow: Flow, user: { onResponse(res: SipResponse): void; onTimeout(): void }): ClientTransaction {
    const entry = this.ctx.clients.start(req, flow, { txnId: '', appId: undefined, request: req, flow, dialog: undefined, finalForwarded: false }, () => user);
    return entry.txn;
  }

  /**
   * An app connection dropped: its unanswered outgoing INVITEs are abandoned (cancelled once a provisional
   * arrived; a late 2xx is ACKed and BYEd). Returns how many.
   */
  onAppClosed(app: AppConnection): number {
    let cancelled = 0;
    for (const c of this.ctx.clients.entries()) {
      if (c.appId !== app.id) continue;
      c.appId = undefined;
      const initialInvite = c.request.method === 'INVITE' && (!c.dialog || c.earlyDialog);
      if (initialInvite && c.txn instanceof ClientInviteTransaction && !c.txn.finalReceived) {
        c.abandoned = true;
        cancelled++;
        if (c.flow instanceof ConnectingFlow && c.flow.connecting) this.endBeforeConnection(c, 'its app is gone');
        else if (c.provisionalSeen) this.cancelAbandoned(c);
      }
    }
    return cancelled;
  }

  /** Engine stop: every app's unanswered outgoing INVITE is abandoned; returns the early dialogs they created (not BYEd). */
  abandonAllInvites(): Set<Dialog> {
    const early = new Set<Dialog>();
    for (const c of this.ctx.clients.entries()) {
      if (c.request.method !== 'INVITE' || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived || !c.txnId) continue;
      if (c.earlyDialog && c.dialog) early.add(c.dialog);
      if (c.dialog && !c.earlyDialog) continue; // a re-INVITE: its dialog is BYEd
      c.abandoned = true;
      if (c.flow instanceof ConnectingFlow && c.flow.connecting) this.endBeforeConnection(c, 'ferry sip is stopping');
      else if (c.provisionalSeen) this.cancelAbandoned(c);
    }
    return early;
  }

  private addVia(req: SipRequest, flow: Flow): void {
    req.headers.remove('Via');
    req.headers.prepend('Via', this.ctx.local.via(flow));
  }

  /**
   * Picks the flow, adds our Via, tells the app what is being sent (`announce`), then starts the client
   * transaction: the app's "sent" answer is written before any response to the request can exist.
   */
  private async sendRequest(req: SipRequest, dialog: Dialog | undefined, app: AppConnection | undefined, flowHint: Flow | undefined,
    proxy: string | undefined, txnId: string, announce: (data: Buffer, flow: Flow, txnId: string) => void, failover?: TargetFailover): Promise<void> {
    const { resolver } = this.ctx;
    const flow = flowHint ?? (proxy ? await resolver.resolve(proxy) : dialog ? await this.flowForDialog(dialog) : await resolver.resolve(req.uri));
    this.addVia(req, flow);
    announce(serializeSipMessage(req), flow, txnId);
    this.startClientTxn(req, flow, dialog, app, txnId, undefined, failover);
  }

  /**
   * RFC 3263 §4.3: the target of an app's new request failed (a connection refused or not up in time, a
   * transaction timeout, a 503): the request goes to the next target as a new client transaction (same
   * request, new branch), the app still knowing it by its transaction id and seeing only the last outcome.
   * Not once a dialog exists (a reliable 1xx), the request was cancelled, or its app is gone.
   */
  private failOver(c: ClientRequest, why: string): boolean {
    const app = this.ctx.router.find(c.appId);
    if (!c.failover || !c.txnId || !app || c.dialog || c.abandoned || c.cancelSent) return false;
    const flow = c.failover.next(this.ctx.clock.now());
    if (!flow) return false;
    const req: SipRequest = { ...c.request, headers: c.request.headers.clone() };
    // the Contact ferry sip wrote for the first target's transport follows the new one (an app's own stays)
    if (req.headers.get('Contact') === this.ctx.local.contact(c.flow)) req.headers.set('Contact', this.ctx.local.contact(flow));
    this.addVia(req, flow);
    this.ctx.log.info('request target failed: trying the next target', { method: req.method, callId: callIdOf(req), why, from: `${c.flow.protocol}/${c.flow.remoteAddress}:${c.flow.remotePort}`,
      to: `${flow.protocol}/${flow.remoteAddress}:${flow.remotePort}`, attempt: c.failover.tried });
    this.startClientTxn(req, flow, undefined, app, c.txnId, c.onFinal, c.failover);
    return true;
  }

  /** Starts a client transaction; `txnId` '' = a request the engine sends for itself (no app sees its responses). */
  private startClientTxn(req: SipRequest, flow: Flow, dialog: Dialog | undefined, app: AppConnection | undefined, txnId: string,
    onFinal?: (status: number) => void, failover?: TargetFailover): void {
    const entry = this.ctx.clients.start(req, flow, { txnId, appId: app?.id, request: req, flow, dialog, finalForwarded: false, onFinal, failover }, (e) => ({
      onResponse: (res) => this.onClientResponse(e, res),
      onTimeout: () => {
        if (flow instanceof ConnectingFlow && flow.connecting) {
          flow.drop();
          this.ctx.log.info('request target unreachable: no connection within 64·T1', { method: req.method, callId: callIdOf(req), protocol: flow.protocol, to: `${flow.remoteAddress}:${flow.remotePort}` });
        }
        if (!e.provisionalSeen && this.failOver(e, 'timeout')) return;
        this.onClientResponse(e, makeResponse(req, 408, undefined));
      },
    }));
    if (flow instanceof ConnectingFlow) this.whenConnected(entry, flow);
  }

  /**
   * A request held on a connection still opening: once it is up the request has gone out on it and the
   * transaction (and the dialog it creates) uses that connection; if it is refused or fails the
   * transaction ends and the app gets the stack's `503`, as drachtio-server answers a refused connection.
   */
  private whenConnected(c: ClientRequest, flow: ConnectingFlow): void {
    flow.keepWhile(() => !c.txn.terminated);
    flow.ready.then((up) => {
      if (c.flow === flow) c.flow = up;
    }, (err: unknown) => {
      if (c.txn.terminated) return; // given up already (Timer B, a CANCEL, the app gone, a stop)
      c.txn.abort();
      const reason = err instanceof Error ? err.message : String(err);
      if (this.failOver(c, `no ${flow.protocol.toUpperCase()} connection: ${reason}`)) return;
      this.ctx.log.info('request target unreachable: answered by the engine', { method: c.request.method, callId: callIdOf(c.request), status: 503, reason: `no ${flow.protocol.toUpperCase()} connection to ${flow.remoteAddress}:${flow.remotePort}: ${reason}` });
      this.onClientResponse(c, makeResponse(c.request, 503, randomToken(), NO_CONNECTION_REASON));
    });
  }

  private onClientResponse(c: ClientRequest, res: SipResponse): void {
    if (res.status === 503 && !c.finalForwarded && this.failOver(c, '503')) return;
    const req = c.request;
    if (req.method === 'INVITE' && res.status >= 200 && c.txnId && !c.finalForwarded && (!c.dialog || c.earlyDialog)) this.ctx.cdr.appInviteAnswered(req, res);
    let dialogId = '';
    if (req.method === 'INVITE' && res.status < 200) {
      c.provisionalSeen = true;
      if (c.abandoned) this.cancelAbandoned(c);
    }
    if (res.status >= 200 && c.onFinal) {
      const tell = c.onFinal;
      c.onFinal = undefined;
      tell(res.status);
    }
    if (req.method === 'INVITE' && !c.dialog && res.status > 100 && res.status < 200 && res.headers.has('RSeq') && tagOf(res.headers.get('To'))) {
      // reliable 1xx: srf PRACKs it with `sip||<dialogId>`, so the (early) dialog must exist now
      c.dialog = this.uacDialog(c, res, false);
      c.earlyDialog = true;
      dialogId = c.dialog.id;
    } else if (req.method === 'INVITE' && c.dialog && res.status > 100 && res.status < 200 && res.headers.has('RSeq')) {
      dialogId = c.dialog.id; // reliable 1xx to a re-INVITE
    }
    if (req.method === 'INVITE' && res.status >= 200 && res.status < 300) {
      const cseq = cseqOf(req).seq;
      if (!c.dialog) {
        c.dialog = this.uacDialog(c, res, true);
      } else {
        const contact = parseNameAddr(res.headers.getAll('Contact')[0] ?? '')?.uri;
        if (contact) c.dialog.remoteTarget = contact;
        this.ctx.dialogs.confirm(c.dialog);
      }
      const dialog = c.dialog;
      dialogId = dialog.id;
      const appGone = !this.ctx.router.find(c.appId);
      if (c.finalForwarded || appGone) {
        if (dialog.lastAck && dialog.lastAck.cseq === cseq) c.flow.send(dialog.lastAck.data);
        else if (appGone) this.ackItself(dialog, cseq, c.flow);
        if (!c.finalForwarded) {
          c.finalForwarded = true;
          this.onInvite2xxWithoutApp(c, dialog);
        }
        return;
      }
    } else if (res.status >= 200 && c.finalForwarded) {
      return;
    }
    if (!c.dialog && c.txnId && isSubscriptionAccepted(req, res.status) && tagOf(res.headers.get('To'))) {
      c.dialog = this.uacDialog(c, res, true);
      c.dialog.usage = 'subscribe';
      c.dialog.lastInviteCSeq = undefined;
      dialogId = c.dialog.id;
    }
    if (res.status >= 200) c.finalForwarded = true;
    if (res.status >= 200 && c.dialog) this.endAfterResponse(c, res.status);
    if (req.method === 'INVITE' && res.status >= 300 && c.earlyDialog && c.dialog) {
      this.ctx.dialogs.end(c.dialog, 'early-dialog-failed');
      c.dialog = undefined;
    }
    const app = this.ctx.router.find(c.appId);
    if (!app || !c.txnId) return;
    if (c.dialog && !dialogId && req.method !== 'INVITE') dialogId = c.dialog.id;
    this.ctx.appPort.networkMessage(app, res, c.flow, c.txnId, dialogId);
  }

  /**
   * The final response to a request sent in a dialog ends the dialog for a BYE (except a 401/407
   * challenge: the app retries with credentials in the same dialog, as drachtio-server allows) and for a
   * NOTIFY `terminated` of a subscription.
   */
  private endAfterResponse(c: ClientRequest, status: number): void {
    const dialog = c.dialog!;
    if (c.request.method === 'BYE') {
      if (status === 401 || status === 407) this.keepForAuthenticatedRetry(dialog);
      else this.ctx.dialogs.end(dialog, 'bye');
    } else if (dialog.usage === 'subscribe' && subscriptionTerminated(c.request, status)) {
      this.ctx.dialogs.end(dialog, 'subscription-terminated');
    }
  }

  /**
   * A BYE the app sent was challenged (401/407): the dialog stays for the retry with credentials, which
   * drachtio-srf sends in the same dialog. If no request follows within 64*T1 the dialog is dropped quietly.
   */
  private keepForAuthenticatedRetry(dialog: Dialog): void {
    dialog.challengedBye?.cancel();
    dialog.challengedBye = this.ctx.clock.setTimeout(() => {
      dialog.challengedBye = undefined;
      if (!this.ctx.dialogs.isLive(dialog)) return;
      this.ctx.log.info('challenged BYE not retried: dialog dropped', { callId: dialog.callId, dialogId: dialog.id });
      this.ctx.dialogs.end(dialog, 'challenged-bye-not-retried');
    }, 64 * this.ctx.timers.t1);
    this.ctx.log.info('BYE challenged: dialog kept for the retry with credentials', { callId: dialog.callId, dialogId: dialog.id });
  }

  /** RFC 3261 §13.2.2.4: the 2xx of an INVITE whose app is gone is ACKed by the engine (else the peer BYEs it later). */
  private ackItself(dialog: Dialog, cseq: number, flow: Flow): void {
    const ack = buildInDialogRequest(dialog, 'ACK', undefined);
    ack.headers.set('CSeq', `${cseq} ACK`);
    this.addVia(ack, flow);
    const data = serializeSipMessage(ack);
    flow.send(data);
    dialog.lastAck = { cseq, data };
  }

  /** A 2xx arrived for an INVITE whose app went away: an abandoned call is BYEd at once, a re-INVITE's dialog stays orphaned. */
  private onInvite2xxWithoutApp(c: ClientRequest, dialog: Dialog): void {
    if (c.abandoned) {
      this.ctx.log.info('answered INVITE of a gone app: ACKed and BYEd', { callId: dialog.callId, dialogId: dialog.id, reason: APP_GONE_REASON });
      void this.sendEngineBye(dialog, APP_GONE_REASON);
      return;
    }
    if (this.ctx.router.find(dialog.ownerId)) return;
    this.peers.owners.orphan(dialog);
  }

  /** RFC 3261 §9.1: CANCEL an abandoned INVITE once a provisional response has arrived. */
  private cancelAbandoned(c: ClientRequest): void {
    if (c.cancelSent || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived) return;
    c.cancelSent = true;
    const cancel = buildCancel(c.request, withHeader('CANCEL', 'Reason', APP_GONE_REASON));
    c.cancel = cancel;
    this.ctx.log.info('outgoing INVITE of a gone app cancelled', { callId: callIdOf(c.request), reason: APP_GONE_REASON });
    this.startClientTxn(cancel, c.flow, undefined, undefined, '');
  }

  /** The UAC dialog of an app's initial INVITE or SUBSCRIBE (RFC 3261 §12.1.2), created on its 2xx or reliable 1xx. */
  private uacDialog(c: ClientRequest, res: SipResponse, confirmed: boolean): Dialog {
    const existing = this.ctx.dialogs.get(makeDialogId(callIdOf(c.request), tagOf(c.request.headers.get('From')) ?? ''));
    if (existing) {
      if (confirmed) this.ctx.dialogs.confirm(existing);
      return existing;
    }
    return this.ctx.dialogs.create(uacDialog(c.request, res, c.flow, c.appId), confirmed ? 'uac-2xx' : 'uac-reliable-1xx', confirmed);
  }
}

/** A bare request carrying one header, for the builders that copy an app's headers (Reason on BYE/CANCEL). */
function withHeader(method: string, name: string, value: string): SipRequest {
  return { kind: 'request', method, uri: '', headers: SipHeaders.from([[name, value]]), body: Buffer.alloc(0) };
}

/** Stands for the connection a request could not get: what the app is told it was sent over; nothing is ever sent on it. */
function unreachableFlow(err: UnreachableTargetError): Flow {
  return {
    id: `${err.protocol}/unreachable/${err.host}:${err.port}`,
    protocol: err.protocol,
    reliable: err.protocol !== 'udp',
    remoteAddress: err.host,
    remotePort: err.port,
    localAddress: '127.0.0.1',
    localPort: 0,
    closed: true,
    send: () => undefined,
  };
}
