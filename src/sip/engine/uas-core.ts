import { randomUUID } from 'node:crypto';
import { LogThrottle } from '../../common/log-throttle';
import type { AppConnection } from '../control/app-connection';
import type { AppSipMessage } from '../control/control-server';
import { type Dialog, makeDialogId } from '../dialog/dialog';
import { uasDialog } from '../dialog/dialog-factory';
import { followNatMapping, followsNatPeer } from '../dialog/dialog-flow';
import { parseNameAddr, tagOf } from '../message/name-addr';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf, cseqOf } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import { ServerInviteTransaction } from '../transaction/server-invite-transaction';
import { ServerTransactionTable, type ServerTransaction } from '../transaction/server-transaction-table';
import type { Flow } from '../transport/flow';
import type { DialogOwners } from './dialog-owners';
import type { EngineContext } from './engine-context';
import { ACK_TIMEOUT_REASON } from './engine-reasons';
import { ENGINE_OWNED, makeResponse, makeUnavailable, randomToken, replaceLocalhost, sniffContentType } from './message-builders';
import type { HeldRequest } from './orphan-dialogs';
import type { PendingServerRequest } from './pending-server-requests';
import type { ProxyDispatch } from './proxy-dispatch';
import { ReliableProvisional } from './reliable-provisional';
import { isSubscriptionAccepted, subscriptionTerminated } from './subscription-dialogs';
import { start2xxRetransmission } from './uas-2xx-retransmitter';
import { UNROUTED_RETRY_AFTER_S } from './unrouted-request-hold';
import { dispatchToRequestHandler } from './handler-dispatch';
import { buildCancel } from './in-dialog-request-builder';
import { FlowBindings } from '../registrar/flow-bindings';

/** Retry-After of the 503 a new request gets while the server transaction table is full */
const FULL_RETRY_AFTER_S = 5;

/** What the UAS core asks of the rest of the engine. */
export interface UasPeers {
  owners: DialogOwners;
  /** ends a dialog with a BYE the engine sends itself (ACK timeout) */
  engineBye(dialog: Dialog, reason: string): Promise<number>;
  proxy(): ProxyDispatch;
}

/**
 * The UAS core: requests from the network — new ones dealt to the apps that route their method,
 * in-dialog ones to the dialog's owner, ACK and CANCEL matched to their INVITE — and the apps'
 * responses to them, which create UAS dialogs (2xx to INVITE, 200/202 to SUBSCRIBE).
 */
export class UasCore {
  /** one warning per bound per 10 s while a flood meets the hold's bounds */
  private readonly holdFullLog: LogThrottle;
  /** one warning per 10 s while new requests meet the transaction table's bound */
  private readonly fullLog: LogThrottle;
  /** new requests answered without a transaction because the table was full */
  refusedWhenFull = 0;

  constructor(private readonly ctx: EngineContext, private readonly peers: UasPeers) {
    this.holdFullLog = new LogThrottle(10_000, () => ctx.clock.now());
    this.fullLog = new LogThrottle(10_000, () => ctx.clock.now());
  }

  /** A request from the network that passed validation (its top Via already stamped). */
  onRequest(req: SipRequest, flow: Flow): void {
    const { serverTxns, dialogs, router, pending } = this.ctx;
    const keyFor = (method: string): string => ServerTransactionTable.keyOf(req, method);

    if (req.method === 'ACK') {
      const ist = serverTxns.get(keyFor('INVITE'))?.txn;
      if (ist instanceof ServerInviteTransaction && ist.receiveAck()) return;
      this.onAck2xx(req, flow);
      return;
    }
    if (req.method === 'CANCEL') {
      this.onCancel(req, flow, keyFor('INVITE'), keyFor('CANCEL'));
      return;
    }
    const existing = serverTxns.get(keyFor(req.method));
    if (existing) {
      existing.txn.receiveRetransmission();
      return;
    }
    if (serverTxns.full && !this.inKnownDialog(req)) {
      this.refuseWhenFull(req, flow, 503);
      return;
    }
    const key = keyFor(req.method);
    const txn = serverTxns.create(req, flow, key);
    if (req.method === 'INVITE') txn.respond(makeResponse(req, 100));

    const toTag = tagOf(req.headers.get('To'));
    const fromTag = tagOf(req.headers.get('From')) ?? '';
    if (toTag) {
      const dialog = dialogs.find(callIdOf(req), toTag, fromTag);
      if (dialog) {
        this.onInDialogRequest(req, flow, key, txn, dialog);
        return;
      }
      // UPDATE/PRACK in an early dialog go to the app that holds the unanswered INVITE (srf matches UPDATE by
      // Call-ID and answers a PRACK it does not expect with 200)
      const early = req.method === 'UPDATE' || req.method === 'PRACK' ? pending.inviteFor(callIdOf(req), fromTag, toTag) : undefined;
      const earlyApp = early ? router.find(early.appId) : undefined;
      if (early && earlyApp) {
        let earlyDialogId = '';
        if (req.method === 'PRACK' && early.reliable1xx?.matches(req.headers.get('RAck'))) {
          early.reliable1xx.stop();
          early.reliable1xx.acknowledged = true;
          earlyDialogId = makeDialogId(callIdOf(early.request), fromTag); // srf resolves the 1xx's fnPrack by it
        }
        this.deliver(earlyApp, req, flow, key, txn, undefined, earlyDialogId);
        return;
      }
      if (this.peers.proxy().onUnmatchedInDialogRequest?.(req, flow, txn)) return;
      if (!this.ctx.lifecycle.closing && this.ctx.restartHeld.hold({ request: req, flow, key, txn }, callIdOf(req), toTag, fromTag)) {
        this.ctx.log.info('request for an unknown dialog held: ferry sip started recently, its app may still claim the dialog', { callId: callIdOf(req), method: req.method });
        return;
      }
      txn.respond(makeResponse(req, 481));
      return;
    }
    if (txn instanceof ServerInviteTransaction) this.ctx.cdr.networkInvite(req, txn);
    const handler = this.ctx.requestHandler;
    if (handler && !this.ctx.lifecycle.closing && handler.handles(req.method)) {
      dispatchToRequestHandler(this.ctx, handler, req, flow, txn, (app) => this.deliver(app, req, flow, key, txn, undefined));
      return;
    }
    const app = this.ctx.lifecycle.closing ? undefined : router.next(req.method);
    if (!app) {
      this.onUnroutedRequest(req, flow, key, txn);
      return;
    }
    this.deliver(app, req, flow, key, txn, undefined);
  }

  /**
   * Whether a request with a To tag, or a CANCEL, belongs to something the engine holds: a dialog or early dialog,
   * a record-routed proxied call (its route), the INVITE transaction a CANCEL names. One that does not is answered
   * 481 and counts against its source's rate of new requests (network-intake.ts).
   */
  holds(req: SipRequest, flow: Flow): boolean {
    if (req.method === 'CANCEL') return this.ctx.serverTxns.get(ServerTransactionTable.keyOf(req, 'INVITE')) !== undefined;
    return this.inKnownDialog(req) || (this.peers.proxy().relays?.(req, flow) ?? false);
  }

  /** an in-dialog request for a dialog the engine holds (its BYE, re-INVITE...): served even when the transaction table is full */
  private inKnownDialog(req: SipRequest): boolean {
    const toTag = tagOf(req.headers.get('To'));
    if (!toTag) return false;
    const fromTag = tagOf(req.headers.get('From')) ?? '';
    return this.ctx.dialogs.find(callIdOf(req), toTag, fromTag) !== undefined
      || ((req.method === 'UPDATE' || req.method === 'PRACK') && this.ctx.pending.inviteFor(callIdOf(req), fromTag, toTag) !== undefined);
  }

  /**
   * The server transaction table is at its bound: a new out-of-dialog request is answered without a
   * transaction (503 with Retry-After; a CANCEL matching nothing 481), so a flood of new requests costs
   * nothing that outlives the datagram. Calls in progress are untouched (their requests are exempt).
   */
  private refuseWhenFull(req: SipRequest, flow: Flow, status: 481 | 503): void {
    this.refusedWhenFull++;
    if (req.method !== 'ACK') {
      const res = status === 503 ? makeUnavailable(req, FULL_RETRY_AFTER_S, randomToken()) : makeResponse(req, 481, randomToken());
      flow.send(serializeSipMessage(res));
    }
    const admitted = this.fullLog.admit('full');
    if (admitted) {
      this.ctx.log.warn('new request answered without a transaction: the server transaction table is full', {
        method: req.method.slice(0, 40), status, from: flow.remoteAddress, transactions: this.ctx.serverTxns.size,
        limit: this.ctx.serverTxns.maxTransactions, suppressedSinceLastLine: admitted.suppressed,
      });
    }
  }

  /**
   * A new request no connected app routes. Right after start (the restart window) or while no app is
   * connected at all, an app is probably on its way (ferry sip restarted, the app's control connection is
   * reconnecting): the request is held — within the hold's bounds — until an app routes its method.
   * Otherwise, or beyond the bounds, it is answered 503 with Retry-After at once.
   */
  private onUnroutedRequest(req: SipRequest, flow: Flow, key: string, txn: ServerTransaction): void {
    const { router, restartHeld, unroutedHold, lifecycle, log } = this.ctx;
    const appExpected = !lifecycle.closing && (restartHeld.open || router.connected().length === 0);
    const refusal = appExpected ? unroutedHold.hold({ request: req, flow, key, txn }) : 'off';
    if (!refusal) {
      log.info('new request held: no app routes it yet', { method: req.method, callId: callIdOf(req), held: unroutedHold.size, holdMs: unroutedHold.limits.holdMs });
      return;
    }
    txn.respond(makeUnavailable(req, UNROUTED_RETRY_AFTER_S, randomToken()));
    if (refusal === 'off' || refusal === 'method') {
      log.info('no app routed for request', { method: req.method, callId: callIdOf(req) });
      return;
    }
    const admitted = this.holdFullLog.admit(refusal);
    if (admitted) {
      log.warn('new request answered 503: the hold for unrouted requests is full', {
        method: req.method, callId: callIdOf(req), from: flow.remoteAddress, bound: refusal, held: unroutedHold.size, heldBytes: unroutedHold.bytes,
        suppressedSinceLastLine: admitted.suppressed,
      });
    }
  }

  /** An app now routes `verb`: the new requests held for that method go to the apps that route it. */
  onAppRoute(verb: string): void {
    const method = verb.toUpperCase();
    for (const h of this.ctx.unroutedHold.take(method)) {
      const app = this.ctx.router.next(method);
      if (!app) {
        h.txn.respond(makeUnavailable(h.request, UNROUTED_RETRY_AFTER_S, randomToken()));
        continue;
      }
      this.ctx.log.info('held new request offered to app', { method, callId: callIdOf(h.request), app: app.id });
      this.deliver(app, h.request, h.flow, h.key, h.txn, undefined);
    }
  }

  /** A request in a known dialog: to its owner, to another app that routes the method, or held for the dialog. */
  onInDialogRequest(req: SipRequest, flow: Flow, key: string, txn: ServerTransaction, dialog: Dialog): void {
    const cseq = cseqOf(req).seq;
    if (req.method === 'INVITE' && dialog.pending2xx) {
      txn.respond(makeResponse(req, 491));
      return;
    }
    if (dialog.remoteCSeq !== undefined && cseq < dialog.remoteCSeq) {
      txn.respond(makeResponse(req, 500, undefined, 'Server Internal Error (CSeq out of order)')); // RFC 3261 §12.2.2
      return;
    }
    dialog.remoteCSeq = Math.max(dialog.remoteCSeq ?? 0, cseq);
    if (flow.reliable && (!dialog.flow || dialog.flow.closed)) dialog.flow = flow;
    else if (followsNatPeer(dialog, flow)) {
      this.ctx.log.info('dialog follows a phone behind NAT to its new mapping', { callId: dialog.callId, address: flow.remoteAddress, from: dialog.flow?.remotePort, to: flow.remotePort });
      dialog.flow = flow;
    }
    if (req.method === 'BYE') {
      dialog.pending2xx?.cancel();
      dialog.pending2xx = undefined;
      this.ctx.cdr.networkBye(dialog, req);
    }
    let app = this.ctx.router.find(dialog.ownerId);
    if (!app) {
      app = this.ctx.router.next(req.method);
      if (!app) {
        this.peers.owners.hold(dialog, { request: req, flow, key, txn });
        return;
      }
      this.ctx.log.info('orphaned dialog adopted by another app', { dialogId: dialog.id, app: app.id, method: req.method, callId: dialog.callId });
      this.peers.owners.setOwner(dialog, app);
    }
    this.deliver(app, req, flow, key, txn, dialog);
  }

  /** A held in-dialog request handed to the dialog's new owner. */
  deliverHeld(app: AppConnection, h: HeldRequest, dialog: Dialog): void {
    this.deliver(app, h.request, h.flow, h.key, h.txn, dialog);
  }

  /** Hands a network request to `app` (`sip|network|...`); it is pending until the app's final response. */
  deliver(app: AppConnection, req: SipRequest, flow: Flow, key: string, txn: ServerTransaction, dialog: Dialog | undefined,
    dialogId = dialog?.id ?? ''): void {
    const p = this.ctx.pending.add(req, flow, key, txn, app.id, dialog);
    this.ctx.serverTxns.attach(key, p);
    this.ctx.appPort.networkMessage(app, req, flow, p.txnId, dialogId);
  }

  private onAck2xx(req: SipRequest, flow: Flow): void {
    const dialog = this.ctx.dialogs.find(callIdOf(req), tagOf(req.headers.get('To')) ?? '', tagOf(req.headers.get('From')) ?? '');
    if (!dialog) {
      this.peers.proxy().onUnmatchedAck?.(req, flow);
      return;
    }
    const cseq = cseqOf(req).seq;
    if (dialog.pending2xx && dialog.pending2xx.cseq === cseq) {
      dialog.pending2xx.cancel();
      dialog.pending2xx = undefined;
    }
    const app = this.ctx.router.find(dialog.ownerId);
    if (app) this.ctx.appPort.networkMessage(app, req, flow, randomUUID(), dialog.id);
  }

  private onCancel(req: SipRequest, flow: Flow, inviteKey: string, cancelKey: string): void {
    const { serverTxns } = this.ctx;
    const existing = serverTxns.get(cancelKey);
    if (existing) {
      existing.txn.receiveRetransmission();
      return;
    }
    if (serverTxns.full && !serverTxns.get(inviteKey)) {
      this.refuseWhenFull(req, flow, 481);
      return;
    }
    const txn = serverTxns.create(req, flow, cancelKey);
    const entry = serverTxns.get(inviteKey);
    if (!entry || !(entry.txn instanceof ServerInviteTransaction)) {
      txn.respond(makeResponse(req, 481, randomToken()));
      return;
    }
    const pending = entry.value;
    txn.respond(makeResponse(req, 200, pending?.toTag ?? randomToken()));
    if (entry.txn.finalSent) {
      this.peers.proxy().onCancelled?.(entry.txn);
      return;
    }
    this.cancelUnanswered(entry.txn, pending, req, flow);
  }

  /**
   * A WebSocket connection closed. An INVITE that came over it and has no final response yet can never
   * be answered: responses go back over the connection the request came on, and a WebSocket client takes
   * no new connection (RFC 7118 §5; JsSIP ends such a call as a connection error). Each such INVITE is
   * ended as its CANCEL would end it — 487, the app handed a CANCEL (drachtio-srf's `cancel` event), a
   * proxied INVITE's branches cancelled — so the called party stops ringing at once instead of when
   * someone's no-answer timer gives up (a webphone tab closed or its network lost while it calls).
   * drachtio-server tells the app nothing here. Over TCP or TLS nothing is ended: a response may still
   * reach the caller over a new connection (RFC 3261 §18.2.2).
   */
  onFlowClosed(flow: Flow): void {
    if (flow.protocol !== 'ws' && flow.protocol !== 'wss') return;
    const { serverTxns, log } = this.ctx;
    for (const key of serverTxns.unansweredInvitesOn(flow)) {
      const entry = serverTxns.get(key);
      if (!entry || !(entry.txn instanceof ServerInviteTransaction) || entry.txn.finalSent) continue;
      const cancel = buildCancel(entry.txn.request, undefined);
      cancel.headers.append('Reason', 'SIP;cause=487;text="the caller\'s WebSocket connection closed"');
      log.info('INVITE ended: the WebSocket connection it came over closed before a final response', { callId: callIdOf(entry.txn.request), flow: flow.id });
      this.cancelUnanswered(entry.txn, entry.value, cancel, flow);
    }
  }

  /** An INVITE without a final response, cancelled by `cancel` (received, or made for a closed connection). */
  private cancelUnanswered(txn: ServerInviteTransaction, pending: PendingServerRequest | undefined, cancel: SipRequest, flow: Flow): void {
    this.ctx.cdr.networkInviteCancelled(txn);
    txn.respond(makeResponse(txn.request, 487, pending?.toTag ?? randomToken()));
    this.peers.proxy().onCancelled?.(txn);
    if (pending && !pending.done) {
      this.ctx.pending.finish(pending);
      const app = this.ctx.router.find(pending.appId);
      if (app) this.ctx.appPort.networkMessage(app, cancel, flow, pending.txnId, '');
    }
  }

  /** The app's response to a network request it was handed (`sip|<txnId>|` + response). */
  onAppResponse(app: AppConnection, m: AppSipMessage, appRes: SipResponse): void {
    const p = this.ctx.pending.get(m.transactionId);
    if (!p || p.done) {
      this.ctx.appPort.refuse(app, m.rid, 'transaction not found or already completed');
      return;
    }
    const { local, clock, timers, log } = this.ctx;
    const req = p.request;
    const status = appRes.status;
    const appToTag = tagOf(appRes.headers.get('To'));
    if (!p.dialog && appToTag) p.toTag = appToTag;
    const res = makeResponse(req, status, p.toTag, appRes.reason || undefined);
    const skip = new Set([...ENGINE_OWNED, 'from', 'to', 'call-id', 'cseq']);
    for (const h of appRes.headers.list()) if (!skip.has(h.name.toLowerCase())) res.headers.append(h.name, h.value);
    const dialogCreating = req.method === 'INVITE' || req.method === 'SUBSCRIBE';
    if (dialogCreating && status > 100 && status < 300) {
      for (const rr of req.headers.getAll('Record-Route')) res.headers.append('Record-Route', rr);
      if (!res.headers.has('Contact')) res.headers.append('Contact', local.contact(p.flow));
    }
    const contact = res.headers.get('Contact');
    if (contact) res.headers.set('Contact', replaceLocalhost(contact, local.host(p.flow), local.port(p.flow), p.flow.protocol));
    res.body = appRes.body;
    sniffContentType(res.headers, res.body);

    let dialogId = '';
    const reliable = req.method === 'INVITE' && status > 100 && status < 200 && /\b100rel\b/i.test(res.headers.getAll('Require').join(','));
    if (reliable) {
      p.rseq = p.rseq === undefined ? 1 + Math.floor(Math.random() * 10_000) : p.rseq + 1;
      res.headers.set('RSeq', String(p.rseq));
      dialogId = makeDialogId(callIdOf(req), tagOf(req.headers.get('From')) ?? '');
    }
    const data = serializeSipMessage(res);
    p.txn.respond(res);
    if (reliable) {
      p.reliable1xx?.stop();
      p.reliable1xx = new ReliableProvisional(p.rseq!, cseqOf(req).seq, data, p.flow, clock, timers);
    }
    if (status >= 200) this.ctx.pending.finish(p);
    if (req.method === 'INVITE' && status >= 200 && status < 300) {
      const cseq = cseqOf(req).seq;
      let dialog = p.dialog;
      if (!dialog) {
        dialog = this.ctx.dialogs.create(uasDialog(req, res, p.toTag, p.flow, local.contact(p.flow), app.id), 'uas-2xx', true);
      } else {
        const c = res.headers.get('Contact');
        if (c) dialog.localContact = c;
      }
      const d = dialog;
      start2xxRetransmission(clock, timers, d, data, p.flow, cseq, () => {
        log.info('no ACK for 2xx; ending dialog with BYE', { dialogId: d.id, callId: d.callId, reason: ACK_TIMEOUT_REASON });
        void this.peers.engineBye(d, ACK_TIMEOUT_REASON);
      });
      dialogId = dialog.id;
    }
    if (!p.dialog && isSubscriptionAccepted(req, status)) {
      const dialog = this.ctx.dialogs.create(uasDialog(req, res, p.toTag, p.flow, local.contact(p.flow), app.id), 'uas-2xx', true);
      dialog.usage = 'subscribe';
      dialogId = dialog.id;
    }
    if (p.dialog && status >= 200) this.endAfterAnswer(p, status);
    if (req.method === 'REGISTER' && status >= 200 && status < 300 && p.flow.reliable) this.bindRegistration(req, res, p.flow);
    if (req.method === 'REGISTER' && status >= 200 && status < 300 && p.flow.protocol === 'udp') this.followNatMapping(req, res, p.flow);
    this.ctx.appPort.responseSent(app, m.rid, data, p.flow, p.txnId, dialogId);
  }

  /** A dialog ends when the app answered the peer's BYE, or a NOTIFY `terminated` of a subscription the peer serves. */
  private endAfterAnswer(p: PendingServerRequest, status: number): void {
    const dialog = p.dialog!;
    if (p.request.method === 'BYE') this.ctx.dialogs.end(dialog, 'bye');
    else if (dialog.usage === 'subscribe' && subscriptionTerminated(p.request, status)) this.ctx.dialogs.end(dialog, 'subscription-terminated');
  }

  /** A UDP phone behind NAT registered from another port of its router's address: its dialogs follow it there (dialog-flow.ts). */
  private followNatMapping(req: SipRequest, res: SipResponse, flow: Flow): void {
    const listed = res.headers.getAll('Contact').length > 0 ? res.headers.getAll('Contact') : req.headers.getAll('Contact');
    const contacts = listed.map((c) => parseNameAddr(c)?.uri).filter((u): u is string => u !== undefined && u !== '*');
    const moved = followNatMapping(this.ctx.dialogs.all(), flow, contacts);
    if (moved > 0) this.ctx.log.info('dialogs follow a phone behind NAT to its new mapping', { dialogs: moved, address: flow.remoteAddress, port: flow.remotePort });
  }

  /**
   * A 2xx to a REGISTER over a connection binds the Contacts that REGISTER named to the connection, for
   * the expiry the registrar granted each. The registrar's 2xx lists every Contact of the address of record
   * (RFC 3261 §10.3 step 8), the user's other devices included: those were registered over their own
   * connections and are never bound to this one (a user's newer webphone tab would otherwise take its older
   * tab's requests, and its death would make the older one look gone).
   */
  private bindRegistration(req: SipRequest, res: SipResponse, flow: Flow): void {
    const listedByRegistrar = res.headers.getAll('Contact').length > 0;
    const contacts = listedByRegistrar ? res.headers.getAll('Contact') : req.headers.getAll('Contact');
    const named = new Set(req.headers.getAll('Contact').map((c) => parseNameAddr(c)?.uri).filter((u): u is string => u !== undefined).map((u) => FlowBindings.keyOf(u)));
    const expiresHeader = res.headers.get('Expires') ?? req.headers.get('Expires');
    const aor = parseNameAddr(req.headers.get('To') ?? '')?.uri;
    const current: string[] = [];
    for (const c of contacts) {
      const n = parseNameAddr(c);
      if (!n || n.uri === '*') continue;
      const exp = n.params.get('expires') ?? expiresHeader ?? '3600';
      const own = named.has(FlowBindings.keyOf(n.uri));
      if (Number(exp) === 0) {
        if (own) this.ctx.bindings.unbind(n.uri, flow);
        continue;
      }
      current.push(n.uri);
      if (own && this.ctx.bindings.mayBind(n.uri, flow, this.ctx.clock.now())) this.ctx.bindings.bind(n.uri, flow, Number.isFinite(Number(exp)) ? this.ctx.clock.now() + Number(exp) * 1000 : undefined, aor);
    }
    // the registrar's 2xx lists every Contact the address of record has now: what it dropped is forgotten here too
    if (listedByRegistrar && aor) this.ctx.bindings.keepOnly(flow, aor, current);
  }

  /**
   * An app connection dropped: its in-dialog requests go to another app that routes the method, or are
   * held for the dialog; its unanswered out-of-dialog requests get 503.
   */
  onAppClosed(app: AppConnection): { reoffered: number; held: number; refused: number } {
    let reoffered = 0;
    let held = 0;
    let refused = 0;
    for (const p of this.ctx.pending.values()) {
      if (p.appId !== app.id || p.done) continue;
      const other = p.dialog ? this.ctx.router.next(p.request.method) : undefined;
      if (other && p.dialog) {
        p.appId = other.id;
        this.peers.owners.setOwner(p.dialog, other);
        this.ctx.appPort.networkMessage(other, p.request, p.flow, p.txnId, p.dialog.id);
        reoffered++;
        continue;
      }
      this.ctx.pending.finish(p);
      if (p.dialog) {
        this.peers.owners.hold(p.dialog, { request: p.request, flow: p.flow, key: p.key, txn: p.txn });
        held++;
        continue;
      }
      p.txn.respond(makeUnavailable(p.request, UNROUTED_RETRY_AFTER_S, p.toTag));
      this.ctx.log.info('request pending at a gone app answered 503', { callId: callIdOf(p.request), method: p.request.method, app: app.id });
      refused++;
    }
    return { reoffered, held, refused };
  }

  /** Engine stop: what waits for an app is answered (a BYE 200, other in-dialog requests 481, new requests 503). */
  answerAllPending(): void {
    for (const p of this.ctx.pending.values()) {
      this.ctx.pending.finish(p);
      if (p.txn.finalSent || p.txn.terminated) continue;
      p.txn.respond(makeResponse(p.request, p.dialog ? (p.request.method === 'BYE' ? 200 : 481) : 503, p.toTag));
    }
  }
}
