import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { AppConnection } from '../control/app-connection';
import type { AppSipMessage, ControlHandler } from '../control/control-server';
import type { AppRouter } from '../control/app-router';
import { type Dialog, makeDialogId } from '../dialog/dialog';
import { dialogFromSnapshot, uacDialog, uasDialog } from '../dialog/dialog-factory';
import { DialogTable } from '../dialog/dialog-table';
import { parseNameAddr, tagOf, withTag } from '../message/name-addr';
import type { SipMessage, SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf, cseqOf } from '../message/sip-message';
import { SipParseError } from '../message/sip-parse-error';
import { parseSipMessage } from '../message/sip-parser';
import { refusalResponse, validateRequest } from '../message/request-validator';
import { serializeSipMessage } from '../message/sip-serializer';
import { parseVia, formatVia } from '../message/via';
import { FlowBindings } from '../registrar/flow-bindings';
import { ClientInviteTransaction } from '../transaction/client-invite-transaction';
import { ClientTransactionTable, type ClientTransaction } from '../transaction/client-transaction-table';
import { ServerInviteTransaction } from '../transaction/server-invite-transaction';
import { ServerTransactionTable, type ServerTransaction } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import { isByteStream, type Flow } from '../transport/flow';
import { LocalAddress, type EngineAddressing } from './local-address';
import { ENGINE_OWNED, makeResponse, randomToken, replaceLocalhost, sniffContentType } from './message-builders';
import type { NextHopResolver } from './next-hop-resolver';
import { networkSipTokens, requestSentTokens, responseSentTokens, unsolicitedTokens, type WireMeta } from './app-wire-format';
import { buildCancel, buildInDialogRequest } from './in-dialog-request-builder';
import { start2xxRetransmission } from './uas-2xx-retransmitter';
import { ReliableProvisional } from './reliable-provisional';
import { OrphanDialogs, type HeldRequest } from './orphan-dialogs';
import { EndedDialogIds } from './ended-dialog-ids';
import { DEFAULT_RESTART_HOLD_MS, RestartHeldRequests } from './restart-held-requests';
import { needsBoundFlow, RECONNECTING_FLOW_WAIT_MS, waitForBoundFlow } from './reconnecting-flow-wait';
import { SipHeaders } from '../message/sip-headers';
import { parseSipUri } from '../message/sip-uri';
import { guarded } from '../../common/process-faults';

type ServerTxn = ServerTransaction;

/** A network request handed to an app, waiting for the app's final response. */
interface PendingServerRequest {
  txnId: string;
  request: SipRequest;
  flow: Flow;
  key: string;
  txn: ServerTxn;
  appId: string;
  dialog: Dialog | undefined;
  toTag: string;
  done: boolean;
  timeout: TimerHandle;
  /** RFC 3262: the last RSeq we used and the reliable 1xx waiting for its PRACK */
  rseq?: number;
  reliable1xx?: ReliableProvisional;
}

/** A request the engine sent, for an app (appId set) or for itself (unsolicited BYE, CANCEL). */
interface ClientRequest {
  txnId: string;
  appId: string | undefined;
  request: SipRequest;
  txn: ClientTransaction;
  flow: Flow;
  dialog: Dialog | undefined;
  finalForwarded: boolean;
  /** the dialog was created early, by a reliable 1xx (RFC 3262), and is dropped if the INVITE fails */
  earlyDialog?: boolean;
  /** a provisional response arrived (a CANCEL may be sent, RFC 3261 §9.1) */
  provisionalSeen?: boolean;
  /** an INVITE whose app went away before its final response: the engine cancels it, and ACKs then BYEs a 2xx */
  abandoned?: boolean;
  cancelSent?: boolean;
  /** a request the engine sent for itself: told its final status once (-1 when it could not be sent) */
  onFinal?: (status: number) => void;
}

export type { EngineAddressing } from './local-address';

/** Header name the surviving-app extension uses (docs/sip-control-extension.md). */
export const FERRY_DIALOG_HEADER = 'X-Ferry-Dialog';
/** An in-dialog OPTIONS from an app carrying `X-Ferry-Claim: true` claims the dialog; nothing goes on the wire. */
export const FERRY_CLAIM_HEADER = 'X-Ferry-Claim';
/** Default time an orphaned dialog waits for an app before the engine ends it (FERRY_SIP_ORPHAN_DIALOG_MS). */
export const DEFAULT_ORPHAN_DIALOG_MS = 30_000;
/** `Reason` (RFC 3326) on the BYE that ends a dialog no app took within the orphan deadline. */
export const ORPHAN_BYE_REASON = 'SIP;cause=480;text="no app owns this dialog"';
/** `Reason` on the CANCEL of an outgoing INVITE whose app went away, and on the BYE of its late 2xx. */
export const APP_GONE_REASON = 'SIP;cause=480;text="the app that placed this call is gone"';
/** `Reason` on the BYE sent when the ACK to a 2xx never came, byte for byte as drachtio-server writes it (srf reports the text). */
export const ACK_TIMEOUT_REASON = 'SIP ;cause=200 ;text="ACK timeout"';
/** `Reason` on the BYE of every dialog when ferry sip stops. */
export const SHUTDOWN_BYE_REASON = 'SIP;cause=503;text="ferry sip is shutting down"';

/**
 * drachtio-server's semantics on top of the transaction layer: delivers
 * network requests to apps, turns app messages into SIP, keeps dialogs, and keeps them when an app
 * goes away (the "surviving the app" extension).
 */
export class SipEngine implements ControlHandler {
  readonly dialogs = new DialogTable();
  readonly bindings: FlowBindings;
  private readonly serverTxns: ServerTransactionTable<PendingServerRequest>;
  private readonly pendingServer = new Map<string, PendingServerRequest>();
  private readonly clients: ClientTransactionTable<ClientRequest>;
  private readonly local: LocalAddress;
  private readonly orphans: OrphanDialogs;
  private readonly endedDialogs: EndedDialogIds;
  /** in-dialog requests for dialogs unknown right after start, waiting for their app's claim */
  private readonly restartHeld: RestartHeldRequests;
  private closing = false;

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerConfig,
    private readonly router: AppRouter,
    private readonly resolver: NextHopResolver,
    bindings: FlowBindings,
    addressing: EngineAddressing,
    private readonly log: Logger,
    orphanDialogMs = DEFAULT_ORPHAN_DIALOG_MS,
    restartHoldMs = DEFAULT_RESTART_HOLD_MS,
  ) {
    this.bindings = bindings;
    this.serverTxns = new ServerTransactionTable(clock, timers);
    this.clients = new ClientTransactionTable(clock, timers);
    this.local = new LocalAddress(addressing);
    this.orphans = new OrphanDialogs(clock, orphanDialogMs, (d, held, ms) => this.onOrphanDeadline(d, held, ms));
    this.endedDialogs = new EndedDialogIds(clock);
    this.restartHeld = new RestartHeldRequests(clock, restartHoldMs, (h) => {
      if (h.txn.finalSent || h.txn.terminated) return;
      h.txn.respond(makeResponse(h.request, 481));
      this.log.info('request for an unknown dialog answered 481: no app claimed its dialog after the restart', { callId: callIdOf(h.request), method: h.request.method });
    });
  }

  /** Counts for tests and dumps: everything returns to zero when calls end. */
  stats(): {
    serverTransactions: number; clientTransactions: number; pending: number; dialogs: number; bindings: number;
    orphanedDialogs: number; heldRequests: number;
  } {
    return {
      serverTransactions: this.serverTxns.size,
      clientTransactions: this.clients.size,
      pending: this.pendingServer.size,
      dialogs: this.dialogs.size,
      bindings: this.bindings.size,
      orphanedDialogs: this.orphans.size,
      heldRequests: this.orphans.heldCount + this.restartHeld.size,
    };
  }

  // ---------------------------------------------------------------- network side

  onNetworkData(data: Buffer, flow: Flow): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(data, !isByteStream(flow.protocol));
    } catch (err) {
      this.onParseError(err, flow);
      return;
    }
    this.log.debug('sip received', { from: flow.id, line: msg.kind === 'request' ? `${msg.method} ${msg.uri}` : `${msg.status} ${msg.reason}`,
      callId: callIdOf(msg), cseq: msg.headers.get('CSeq') });
    try {
      if (msg.kind === 'request') this.onNetworkRequest(msg, flow);
      else this.onNetworkResponse(msg);
    } catch (err) {
      this.log.error('failed to handle SIP message', { error: err instanceof Error ? err.stack : String(err), callId: callIdOf(msg) });
    }
  }

  onFlowClosed(flow: Flow): void {
    this.bindings.forgetFlow(flow);
  }

  /**
   * A connection is in use while an unexpired registration is bound to it, a dialog runs over it or a
   * transaction waits on it; the transports never close such a connection for idleness.
   */
  flowInUse(flow: Flow): boolean {
    if (this.bindings.holdsFlow(flow, this.clock.now())) return true;
    for (const d of this.dialogs.all()) if (d.flow === flow) return true;
    for (const p of this.pendingServer.values()) if (p.flow === flow) return true;
    for (const c of this.clients.entries()) if (c.flow === flow) return true;
    return false;
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
    const req: SipRequest = { kind: 'request', method, uri: '', headers, body: Buffer.alloc(0) };
    const reason = status === 413 ? 'Request Entity Too Large' : `Bad Request (${why})`;
    flow.send(serializeSipMessage(makeResponse(req, status, randomToken(), reason)));
    this.log.info(`answered refused request with ${status}`, { from: flow.id, method, reason: why, callId: headers.get('Call-ID') });
  }

  private onParseError(err: unknown, flow: Flow): void {
    const why = err instanceof Error ? err.message : String(err);
    if (err instanceof SipParseError && err.isRequest && err.method !== 'ACK' && err.headers?.getAll('Via').length) {
      const h = err.headers;
      const fake: SipRequest = { kind: 'request', method: err.method ?? 'UNKNOWN', uri: '', headers: h, body: Buffer.alloc(0) };
      const res = makeResponse(fake, 400, randomToken(), `Bad Request (${why.replace(/[^\x20-\x7e]/g, ' ').slice(0, 80)})`);
      flow.send(serializeSipMessage(res));
      this.log.info('answered malformed request with 400', { reason: why, from: flow.id });
      return;
    }
    this.log.info('dropped malformed SIP message', { reason: why, from: flow.id });
  }

  private onNetworkRequest(req: SipRequest, flow: Flow): void {
    this.stampVia(req, flow);
    // RFC 3261 §8.2 checks (505/400/501/416/420) before any transaction or app: src/sip/message/request-validator.ts
    const refusal = validateRequest(req, { routes: (verb) => this.router.connected().some((a) => a.routes.has(verb)) });
    if (refusal) {
      if (req.method !== 'ACK') flow.send(serializeSipMessage(refusalResponse(req, refusal)));
      this.log.info('refused request', { status: refusal.status, reason: refusal.why, method: req.method.slice(0, 40), callId: callIdOf(req), from: flow.id });
      return;
    }
    const mf = req.headers.get('Max-Forwards');
    if (mf !== undefined && Number(mf) === 0 && req.method !== 'ACK' && req.method !== 'OPTIONS') {
      flow.send(serializeSipMessage(makeResponse(req, 483, randomToken())));
      return;
    }
    const keyFor = (method: string): string => ServerTransactionTable.keyOf(req, method);

    if (req.method === 'ACK') {
      const ist = this.serverTxns.get(keyFor('INVITE'))?.txn;
      if (ist instanceof ServerInviteTransaction && ist.receiveAck()) return;
      this.onAck2xx(req, flow);
      return;
    }
    if (req.method === 'CANCEL') {
      this.onCancel(req, flow, keyFor('INVITE'), keyFor('CANCEL'));
      return;
    }
    const existing = this.serverTxns.get(keyFor(req.method));
    if (existing) {
      existing.txn.receiveRetransmission();
      return;
    }
    const key = keyFor(req.method);
    const txn = this.serverTxns.create(req, flow, key);
    if (req.method === 'INVITE') txn.respond(makeResponse(req, 100));

    const toTag = tagOf(req.headers.get('To'));
    const fromTag = tagOf(req.headers.get('From')) ?? '';
    if (toTag) {
      const dialog = this.dialogs.find(callIdOf(req), toTag, fromTag);
      if (!dialog) {
        // UPDATE/PRACK in an early dialog go to the app that holds the unanswered INVITE (srf matches UPDATE by
        // Call-ID and answers a PRACK it does not expect with 200)
        const early = req.method === 'UPDATE' || req.method === 'PRACK' ? this.pendingInviteFor(callIdOf(req), fromTag, toTag) : undefined;
        const earlyApp = early ? this.router.find(early.appId) : undefined;
        if (early && earlyApp) {
          let earlyDialogId = '';
          if (req.method === 'PRACK' && early.reliable1xx?.matches(req.headers.get('RAck'))) {
            early.reliable1xx.stop();
            early.reliable1xx.acknowledged = true;
            earlyDialogId = makeDialogId(callIdOf(early.request), fromTag); // srf resolves the 1xx's fnPrack by it
          }
          this.deliverRequest(earlyApp, req, flow, key, txn, undefined, earlyDialogId);
          return;
        }
        if (!this.closing && this.restartHeld.hold({ request: req, flow, key, txn }, callIdOf(req), toTag, fromTag)) {
          this.log.info('request for an unknown dialog held: ferry sip started recently, its app may still claim the dialog', { callId: callIdOf(req), method: req.method });
          return;
        }
        txn.respond(makeResponse(req, 481));
        return;
      }
      this.onInDialogRequest(req, flow, key, txn, dialog);
      return;
    }
    const app = this.closing ? undefined : this.router.next(req.method);
    if (!app) {
      txn.respond(makeResponse(req, 503, randomToken()));
      this.log.info('no app routed for request', { method: req.method, callId: callIdOf(req) });
      return;
    }
    this.deliverRequest(app, req, flow, key, txn, undefined);
  }

  private onInDialogRequest(req: SipRequest, flow: Flow, key: string, txn: ServerTxn, dialog: Dialog): void {
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
    if (req.method === 'BYE') {
      dialog.pending2xx?.cancel();
      dialog.pending2xx = undefined;
    }
    let app = this.router.find(dialog.ownerId);
    if (!app) {
      app = this.router.next(req.method);
      if (!app) {
        this.holdRequest(dialog, { request: req, flow, key, txn });
        return;
      }
      this.log.info('orphaned dialog adopted by another app', { dialogId: dialog.id, app: app.id, method: req.method, callId: dialog.callId });
      this.setOwner(dialog, app);
    }
    this.deliverRequest(app, req, flow, key, txn, dialog);
  }

  /** C4: an in-dialog request no connected app can take waits for one (or for the dialog's orphan deadline). */
  private holdRequest(dialog: Dialog, held: HeldRequest): void {
    this.orphans.hold(dialog, held);
    this.log.info('in-dialog request held: no connected app takes it', {
      callId: dialog.callId, dialogId: dialog.id, method: held.request.method, deadlineMs: this.orphans.deadlineMs,
    });
  }

  /** `app` owns the dialog from now on: its orphan deadline stops and the requests held for it go to the app. */
  private setOwner(dialog: Dialog, app: AppConnection): void {
    dialog.ownerId = app.id;
    for (const h of this.orphans.release(dialog)) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      this.log.info('held request offered to app', { callId: dialog.callId, dialogId: dialog.id, method: h.request.method, app: app.id });
      this.deliverRequest(app, h.request, h.flow, h.key, h.txn, dialog);
    }
  }

  /** A new app routed `verb`: it takes every orphaned dialog holding a request of that method, at once. */
  onAppRoute(app: AppConnection, verb: string): void {
    const method = verb.toUpperCase();
    for (const d of this.orphans.holdingMethod(method)) {
      if (this.dialogs.get(d.id) !== d || !this.router.find(app.id)) continue;
      this.log.info('orphaned dialog adopted by an app that routes its held request', { callId: d.callId, dialogId: d.id, app: app.id, method });
      this.setOwner(d, app);
    }
  }

  private pendingInviteFor(callId: string, fromTag: string, toTag: string): PendingServerRequest | undefined {
    for (const p of this.pendingServer.values()) {
      if (p.request.method === 'INVITE' && !p.dialog && p.toTag === toTag && callIdOf(p.request) === callId
        && tagOf(p.request.headers.get('From')) === fromTag) return p;
    }
    return undefined;
  }

  private deliverRequest(app: AppConnection, req: SipRequest, flow: Flow, key: string, txn: ServerTxn, dialog: Dialog | undefined,
    dialogId = dialog?.id ?? ''): void {
    const txnId = randomUUID();
    const pending: PendingServerRequest = {
      txnId, request: req, flow, key, txn, appId: app.id, dialog, toTag: dialog ? dialog.localTag : randomToken(), done: false,
      timeout: this.clock.setTimeout(() => this.expirePending(pending), 64 * this.timers.t1 * 2),
    };
    this.pendingServer.set(txnId, pending);
    this.serverTxns.attach(key, pending);
    this.sendToApp(app, req, flow, txnId, dialogId);
  }

  /** drachtio drops an unanswered request after 64 s; we also close the transaction with 408/500. */
  private expirePending(p: PendingServerRequest): void {
    if (p.done) return;
    this.finishPending(p);
    if (!p.txn.finalSent && p.request.method !== 'ACK') p.txn.respond(makeResponse(p.request, 408, p.toTag));
  }

  private finishPending(p: PendingServerRequest): void {
    p.reliable1xx?.stop();
    p.done = true;
    p.timeout.cancel();
    this.pendingServer.delete(p.txnId);
  }

  private onAck2xx(req: SipRequest, flow: Flow): void {
    const dialog = this.dialogs.find(callIdOf(req), tagOf(req.headers.get('To')) ?? '', tagOf(req.headers.get('From')) ?? '');
    if (!dialog) return;
    const cseq = cseqOf(req).seq;
    if (dialog.pending2xx && dialog.pending2xx.cseq === cseq) {
      dialog.pending2xx.cancel();
      dialog.pending2xx = undefined;
    }
    const app = this.router.find(dialog.ownerId);
    if (app) this.sendToApp(app, req, flow, randomUUID(), dialog.id);
  }

  private onCancel(req: SipRequest, flow: Flow, inviteKey: string, cancelKey: string): void {
    const existing = this.serverTxns.get(cancelKey);
    if (existing) {
      existing.txn.receiveRetransmission();
      return;
    }
    const txn = this.serverTxns.create(req, flow, cancelKey);
    const entry = this.serverTxns.get(inviteKey);
    if (!entry || !(entry.txn instanceof ServerInviteTransaction)) {
      txn.respond(makeResponse(req, 481, randomToken()));
      return;
    }
    const pending = entry.value;
    txn.respond(makeResponse(req, 200, pending?.toTag ?? randomToken()));
    if (entry.txn.finalSent) return;
    entry.txn.respond(makeResponse(entry.txn.request, 487, pending?.toTag ?? randomToken()));
    if (pending && !pending.done) {
      this.finishPending(pending);
      const app = this.router.find(pending.appId);
      if (app) this.sendToApp(app, req, flow, pending.txnId, '');
    }
  }

  private onNetworkResponse(res: SipResponse): void {
    if (!this.clients.dispatch(res)) this.log.debug('response matches no transaction', { callId: callIdOf(res), cseq: res.headers.get('CSeq') });
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

  // ---------------------------------------------------------------- app side

  /**
   * An app connection dropped. Its in-dialog requests go to another app that routes the method, or are
   * held; its unanswered out-of-dialog requests get 503; its unanswered outgoing INVITEs are cancelled;
   * its dialogs become orphaned and are ended at the orphan deadline unless an app takes them.
   */
  onAppClosed(app: AppConnection): void {
    let reoffered = 0;
    let held = 0;
    let refused = 0;
    for (const p of [...this.pendingServer.values()]) {
      if (p.appId !== app.id || p.done) continue;
      const other = p.dialog ? this.router.next(p.request.method) : undefined;
      if (other && p.dialog) {
        p.appId = other.id;
        this.setOwner(p.dialog, other);
        this.sendToApp(other, p.request, p.flow, p.txnId, p.dialog.id);
        reoffered++;
        continue;
      }
      this.finishPending(p);
      if (p.dialog) {
        this.holdRequest(p.dialog, { request: p.request, flow: p.flow, key: p.key, txn: p.txn });
        held++;
        continue;
      }
      p.txn.respond(makeResponse(p.request, 503, p.toTag));
      this.log.info('request pending at a gone app answered 503', { callId: callIdOf(p.request), method: p.request.method, app: app.id });
      refused++;
    }
    let cancelled = 0;
    for (const c of this.clients.entries()) {
      if (c.appId !== app.id) continue;
      c.appId = undefined;
      const initialInvite = c.request.method === 'INVITE' && (!c.dialog || c.earlyDialog);
      if (initialInvite && c.txn instanceof ClientInviteTransaction && !c.txn.finalReceived) {
        c.abandoned = true;
        cancelled++;
        if (c.provisionalSeen) this.cancelAbandoned(c);
      }
    }
    const orphaned = this.dialogs.all().filter((d) => d.ownerId === app.id || (d.ownerId !== undefined && !this.router.find(d.ownerId)));
    for (const d of orphaned) {
      d.ownerId = undefined;
      this.orphans.watch(d);
      this.log.info('dialog orphaned: its app is gone', { callId: d.callId, dialogId: d.id, app: app.id, deadlineMs: this.orphans.deadlineMs });
    }
    if (orphaned.length || reoffered || held || refused || cancelled) {
      this.log.info('app gone', { app: app.id, orphanedDialogs: orphaned.length, reoffered, held, refused, cancelledInvites: cancelled });
    }
  }

  /** RFC 3261 §9.1: CANCEL an abandoned INVITE once a provisional response has arrived. */
  private cancelAbandoned(c: ClientRequest): void {
    if (c.cancelSent || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived) return;
    c.cancelSent = true;
    const cancel = buildCancel(c.request, withHeader('CANCEL', 'Reason', APP_GONE_REASON));
    this.log.info('outgoing INVITE of a gone app cancelled', { callId: callIdOf(c.request), reason: APP_GONE_REASON });
    this.startClientTxn(cancel, c.flow, undefined, undefined, '');
  }

  /** The orphan deadline passed and nobody took the dialog: answer what was held, end the dialog. */
  private onOrphanDeadline(dialog: Dialog, held: HeldRequest[], orphanedMs: number): void {
    let peerHungUp = false;
    for (const h of held) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      const status = h.request.method === 'BYE' ? 200 : 481;
      if (status === 200) peerHungUp = true;
      h.txn.respond(makeResponse(h.request, status, dialog.localTag));
      this.log.info('held request answered by ferry sip at the orphan deadline', { callId: dialog.callId, method: h.request.method, status });
    }
    if (this.dialogs.get(dialog.id) !== dialog) return;
    if (peerHungUp) {
      this.dropDialog(dialog);
      this.log.info('orphan dialog ended: the peer hung up', { callId: dialog.callId, dialogId: dialog.id, orphanedMs });
      return;
    }
    this.log.info('orphan dialog ended by ferry sip: BYE sent', { callId: dialog.callId, dialogId: dialog.id, orphanedMs, reason: ORPHAN_BYE_REASON });
    this.sendEngineBye(dialog, ORPHAN_BYE_REASON);
  }

  /** Removes a dialog and everything kept for it (orphan deadline, held requests: a held BYE gets 200, others 481). */
  private dropDialog(dialog: Dialog): void {
    this.dialogs.remove(dialog);
    this.endedDialogs.remember(dialog.id);
    for (const h of this.orphans.release(dialog)) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      h.txn.respond(makeResponse(h.request, h.request.method === 'BYE' ? 200 : 481, dialog.localTag));
    }
  }

  onAppSip(app: AppConnection, m: AppSipMessage): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(Buffer.from(m.raw, 'utf8'), true, true);
    } catch (err) {
      app.respond(m.rid, ['NOK', `invalid SIP message: ${err instanceof Error ? err.message : String(err)}`]);
      return;
    }
    const fail = (err: unknown): void => {
      const reason = (err instanceof Error ? err.message : String(err)).replace(/[|\r\n]/g, ' ');
      this.log.info('app SIP message refused', { app: app.id, reason });
      app.respond(m.rid, ['NOK', reason]);
    };
    try {
      if (msg.kind === 'response') return this.onAppResponse(app, m, msg);
      if (msg.method === 'CANCEL' && m.transactionId) return this.onAppCancel(app, m, msg);
      if (msg.method === 'ACK' && !m.dialogId && !msg.headers.has(FERRY_DIALOG_HEADER)) return fail(new Error('ACK for a non-2xx final response is sent by the stack'));
      if (m.dialogId && msg.method === 'OPTIONS' && isClaim(msg.headers.get(FERRY_CLAIM_HEADER))) return this.onAppClaim(app, m, msg);
      if (m.dialogId) {
        const dialog = this.dialogs.get(m.dialogId);
        if (!dialog) return fail(new Error('unable to find dialog for dialog id'));
        this.sendInDialog(app, m, msg, dialog).catch(fail);
        return;
      }
      this.onAppNewRequest(app, m, msg).catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * C3: `sip||<dialogId>` OPTIONS with `X-Ferry-Claim: true`. Nothing goes on the wire: the engine answers
   * it itself (200, or 481 for a dialog it does not know), and the app becomes the dialog's owner.
   */
  private onAppClaim(app: AppConnection, m: AppSipMessage, req: SipRequest): void {
    const dialog = this.dialogs.get(m.dialogId) ?? this.rebuildClaimedDialog(app, m.dialogId, req);
    req.headers.remove(FERRY_DIALOG_HEADER);
    if (dialog) {
      req.headers.set('Call-ID', dialog.callId);
      req.headers.set('From', dialog.localParty);
      req.headers.set('To', dialog.remoteParty);
      req.uri = dialog.remoteTarget;
    }
    if (!req.headers.has('CSeq')) req.headers.set('CSeq', '1 OPTIONS');
    const flow = dialog?.flow ?? this.claimMetaFlow(dialog);
    req.headers.remove('Via');
    req.headers.prepend('Via', this.local.via(flow));
    const txnId = randomUUID();
    const data = serializeSipMessage(req);
    app.respond(m.rid, requestSentTokens(this.meta(data, flow), txnId), data.toString('utf8'));
    const res = makeResponse(req, dialog ? 200 : 481, undefined);
    // a separate turn of the event loop, so the answer to the claim arrives after srf has seen "sent"
    setImmediate(guarded('sip.claim-answer', () => this.sendToApp(app, res, flow, txnId, dialog ? dialog.id : '')));
    if (!dialog) {
      this.log.info('claim of an unknown dialog answered 481', { dialogId: m.dialogId, app: app.id });
      return;
    }
    const previous = dialog.ownerId;
    const wasOrphaned = this.orphans.isOrphaned(dialog);
    this.setOwner(dialog, app);
    this.log.info('dialog claimed by app', { callId: dialog.callId, dialogId: dialog.id, app: app.id, from: previous, wasOrphaned });
    // requests held since the restart for this dialog go to the app after the claim's answer
    const rebuilt = dialog;
    setImmediate(guarded('sip.restart-held-release', () => this.releaseRestartHeld(rebuilt)));
  }

  /**
   * A claim of a dialog this engine does not know (it restarted since the dialog began) that carries
   * `X-Ferry-Dialog` and the dialog's identifiers (Call-ID, From and To with tags, CSeq; the
   * Request-URI is the peer's target) rebuilds the dialog, as a request with those headers would (§4).
   * A dialog this engine itself saw end is never rebuilt: that claim gets 481.
   */
  private rebuildClaimedDialog(app: AppConnection, dialogId: string, req: SipRequest): Dialog | undefined {
    if (!req.headers.has(FERRY_DIALOG_HEADER) || this.endedDialogs.has(dialogId)) return undefined;
    let dialog: Dialog;
    try {
      dialog = dialogFromSnapshot(dialogId, req, app.id);
    } catch (err) {
      this.log.info('claim could not rebuild the dialog', { dialogId, app: app.id, reason: (err as Error).message });
      return undefined;
    }
    this.dialogs.add(dialog);
    this.log.info('dialog rebuilt from a claim', { callId: dialog.callId, dialogId, app: app.id });
    return dialog;
  }

  /** Requests held since the restart for a dialog just rebuilt: handled as in-dialog requests now. */
  private releaseRestartHeld(dialog: Dialog): void {
    if (this.dialogs.get(dialog.id) !== dialog) return;
    for (const h of this.restartHeld.take(dialog.callId, dialog.localTag, dialog.remoteTag)) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      this.log.info('request held since the restart handed to its rebuilt dialog', { callId: dialog.callId, dialogId: dialog.id, method: h.request.method });
      this.onInDialogRequest(h.request, h.flow, h.key, h.txn, dialog);
    }
  }

  /** What the drachtio meta tokens of a claim name as the peer: the dialog's remote target (nothing is sent there). */
  private claimMetaFlow(dialog: Dialog | undefined): Flow {
    const uri = dialog ? parseSipUri(dialog.remoteTarget) : undefined;
    const host = this.local.host({ localAddress: '127.0.0.1' } as Flow);
    return {
      id: 'claim', protocol: 'udp', reliable: false, remoteAddress: uri?.host ?? host, remotePort: uri?.port ?? 5060,
      localAddress: host, localPort: 0, closed: false, send: () => {},
    };
  }

  private onAppResponse(app: AppConnection, m: AppSipMessage, appRes: SipResponse): void {
    const p = this.pendingServer.get(m.transactionId);
    if (!p || p.done) {
      app.respond(m.rid, ['NOK', 'transaction not found or already completed']);
      return;
    }
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
      if (!res.headers.has('Contact')) res.headers.append('Contact', this.local.contact(p.flow));
    }
    const contact = res.headers.get('Contact');
    if (contact) res.headers.set('Contact', replaceLocalhost(contact, this.local.host(p.flow), this.local.port(p.flow), p.flow.protocol));
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
      p.reliable1xx = new ReliableProvisional(p.rseq!, cseqOf(req).seq, data, p.flow, this.clock, this.timers);
    }
    if (status >= 200) this.finishPending(p);
    if (req.method === 'INVITE' && status >= 200 && status < 300) {
      const cseq = cseqOf(req).seq;
      let dialog = p.dialog;
      if (!dialog) {
        dialog = uasDialog(req, res, p.toTag, p.flow, this.local.contact(p.flow), app.id);
        this.dialogs.add(dialog);
      } else {
        const c = res.headers.get('Contact');
        if (c) dialog.localContact = c;
      }
      const d = dialog;
      start2xxRetransmission(this.clock, this.timers, d, data, p.flow, cseq, () => {
        this.log.info('no ACK for 2xx; ending dialog with BYE', { dialogId: d.id, callId: d.callId, reason: ACK_TIMEOUT_REASON });
        void this.sendEngineBye(d, ACK_TIMEOUT_REASON);
      });
      dialogId = dialog.id;
    }
    if (p.dialog && req.method === 'BYE' && status >= 200) this.dropDialog(p.dialog);
    if (req.method === 'REGISTER' && status >= 200 && status < 300 && p.flow.reliable) this.bindRegistration(req, res, p.flow);
    app.respond(m.rid, responseSentTokens(this.meta(data, p.flow), p.txnId, dialogId), data.toString('utf8'));
  }

  private bindRegistration(req: SipRequest, res: SipResponse, flow: Flow): void {
    const contacts = res.headers.getAll('Contact').length ? res.headers.getAll('Contact') : req.headers.getAll('Contact');
    const expiresHeader = res.headers.get('Expires') ?? req.headers.get('Expires');
    for (const c of contacts) {
      const n = parseNameAddr(c);
      if (!n || n.uri === '*') continue;
      const exp = n.params.get('expires') ?? expiresHeader ?? '3600';
      if (Number(exp) === 0) this.bindings.unbind(n.uri);
      else this.bindings.bind(n.uri, flow, Number.isFinite(Number(exp)) ? this.clock.now() + Number(exp) * 1000 : undefined);
    }
  }

  /**
   * A BYE the engine sends for itself (with a `Reason` when given); the dialog is gone at once. The owning
   * app, if connected, is told (`unsolicited`). Resolves with the final status (-1: could not be sent).
   */
  private sendEngineBye(dialog: Dialog, reason: string | undefined): Promise<number> {
    const bye = buildInDialogRequest(dialog, 'BYE', reason ? withHeader('BYE', 'Reason', reason) : undefined);
    this.dropDialog(dialog);
    return new Promise<number>((resolve) => {
      const onFinal = (status: number): void => {
        if (reason) this.log.info('BYE sent by ferry sip answered', { callId: dialog.callId, dialogId: dialog.id, status });
        resolve(status);
      };
      this.flowForDialog(dialog).then((flow) => {
        this.addVia(bye, flow);
        const data = serializeSipMessage(bye);
        const app = this.router.find(dialog.ownerId);
        if (app) app.send(unsolicitedTokens(this.meta(data, flow), dialog.id), data.toString('utf8'));
        this.startClientTxn(bye, flow, dialog, undefined, '', onFinal);
      }).catch((err) => {
        this.log.warn('could not send BYE', { callId: dialog.callId, dialogId: dialog.id, error: String(err) });
        resolve(-1);
      });
    });
  }

  private onAppCancel(app: AppConnection, m: AppSipMessage, appReq: SipRequest): void {
    const c = this.clients.get(m.transactionId);
    if (!c || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived) {
      app.respond(m.rid, ['NOK', 'transaction not found or already completed']);
      return;
    }
    const cancel = buildCancel(c.request, appReq);
    const data = serializeSipMessage(cancel);
    app.respond(m.rid, requestSentTokens(this.meta(data, c.flow), c.txnId), data.toString('utf8'));
    this.startClientTxn(cancel, c.flow, undefined, undefined, '');
  }

  private async onAppNewRequest(app: AppConnection, m: AppSipMessage, req: SipRequest): Promise<void> {
    const adoptId = req.headers.get(FERRY_DIALOG_HEADER);
    if (adoptId !== undefined) {
      req.headers.remove(FERRY_DIALOG_HEADER);
      let dialog = this.dialogs.get(adoptId.trim());
      if (!dialog) {
        dialog = dialogFromSnapshot(adoptId.trim(), req, app.id);
        this.dialogs.add(dialog);
        this.log.info('dialog rebuilt from snapshot', { dialogId: dialog.id, callId: dialog.callId, app: app.id });
        const rebuilt = dialog;
        setImmediate(guarded('sip.restart-held-release', () => this.releaseRestartHeld(rebuilt)));
      }
      return this.sendInDialog(app, m, req, dialog);
    }
    const callId = req.headers.get('Call-ID');
    if (callId) {
      const fromTag = tagOf(req.headers.get('From'));
      const d = this.dialogs.findByCallId(callId, fromTag);
      if (d && (fromTag || req.method !== 'INVITE')) return this.sendInDialog(app, m, req, d);
    }
    for (const h of ENGINE_OWNED) req.headers.remove(h);
    req.headers.remove('Route');
    const flowHint = await this.resolver.resolve(m.proxy ?? req.uri);
    const host = this.local.host(flowHint);
    const port = this.local.port(flowHint);
    const from = req.headers.get('From') ?? `<sip:ferry@${host}:${port}>`;
    req.headers.set('From', withTag(replaceLocalhost(from, host, port, undefined), randomToken()));
    if (!req.headers.has('To')) req.headers.set('To', `<${req.uri}>`);
    if (!req.headers.has('Call-ID')) req.headers.set('Call-ID', randomUUID());
    if (!req.headers.has('CSeq')) req.headers.set('CSeq', `1 ${req.method}`);
    if (!req.headers.has('Max-Forwards')) req.headers.set('Max-Forwards', '70');
    if (req.method === 'INVITE' || req.method === 'SUBSCRIBE' || req.method === 'REFER') {
      const contact = req.headers.get('Contact');
      req.headers.set('Contact', contact ? replaceLocalhost(contact, host, port, flowHint.protocol) : this.local.contact(flowHint));
    }
    sniffContentType(req.headers, req.body);
    await this.sendRequest(req, undefined, app, flowHint, undefined, randomUUID(),
      (data, flow, txnId) => app.respond(m.rid, requestSentTokens(this.meta(data, flow), txnId), data.toString('utf8')));
  }

  private async sendInDialog(app: AppConnection, m: AppSipMessage, appReq: SipRequest, dialog: Dialog): Promise<void> {
    if (dialog.ownerId !== app.id) {
      this.log.info('dialog taken over by app', { callId: dialog.callId, dialogId: dialog.id, from: dialog.ownerId, to: app.id, method: appReq.method });
      this.setOwner(dialog, app);
    }
    if (appReq.method === 'ACK') {
      if (dialog.lastInviteCSeq === undefined) throw new Error('no INVITE to acknowledge in this dialog');
      const ack = buildInDialogRequest(dialog, 'ACK', appReq);
      const flow = await this.flowForDialog(dialog);
      this.addVia(ack, flow);
      const data = serializeSipMessage(ack);
      flow.send(data);
      dialog.lastAck = { cseq: dialog.lastInviteCSeq, data };
      app.respond(m.rid, requestSentTokens(this.meta(data, flow), randomUUID()), data.toString('utf8'));
      return;
    }
    const req = buildInDialogRequest(dialog, appReq.method, appReq);
    dialog.challengedBye?.cancel();
    dialog.challengedBye = undefined;
    if (req.method === 'BYE') {
      dialog.pending2xx?.cancel();
      dialog.pending2xx = undefined;
    }
    await this.sendRequest(req, dialog, app, undefined, m.proxy, randomUUID(),
      (data, flow, txnId) => app.respond(m.rid, requestSentTokens(this.meta(data, flow), txnId), data.toString('utf8')));
  }

  private async flowForDialog(dialog: Dialog): Promise<Flow> {
    if (dialog.flow && !dialog.flow.closed) return dialog.flow;
    const first = dialog.routeSet[0];
    if (first && /;lr\b/i.test(first)) return this.resolver.resolve(first);
    try {
      return await this.resolver.resolve(dialog.remoteTarget);
    } catch (err) {
      // a webphone whose connection dropped keeps its call and comes back: wait for it a little
      if (!needsBoundFlow(dialog.remoteTarget)) throw err;
      this.log.info('in-dialog request waits for the peer to reconnect', { callId: dialog.callId, dialogId: dialog.id, waitMs: RECONNECTING_FLOW_WAIT_MS });
      const flow = await waitForBoundFlow(this.bindings, dialog.remoteTarget, this.clock);
      if (!flow) throw err;
      return flow;
    }
  }

  private addVia(req: SipRequest, flow: Flow): void {
    req.headers.remove('Via');
    req.headers.prepend('Via', this.local.via(flow));
  }

  /**
   * Picks the flow, adds our Via, tells the app what is being sent (`announce`), then starts the client
   * transaction: the app's "sent" answer is written before any response to the request can exist.
   */
  private async sendRequest(req: SipRequest, dialog: Dialog | undefined, app: AppConnection | undefined, flowHint: Flow | undefined,
    proxy: string | undefined, txnId: string, announce: (data: Buffer, flow: Flow, txnId: string) => void): Promise<void> {
    const flow = flowHint ?? (proxy ? await this.resolver.resolve(proxy) : dialog ? await this.flowForDialog(dialog) : await this.resolver.resolve(req.uri));
    this.addVia(req, flow);
    announce(serializeSipMessage(req), flow, txnId);
    this.startClientTxn(req, flow, dialog, app, txnId);
  }

  /** Starts a client transaction; `txnId` '' = a request the engine sends for itself (no app sees its responses). */
  private startClientTxn(req: SipRequest, flow: Flow, dialog: Dialog | undefined, app: AppConnection | undefined, txnId: string,
    onFinal?: (status: number) => void): void {
    this.clients.start(req, flow, { txnId, appId: app?.id, request: req, flow, dialog, finalForwarded: false, onFinal }, (entry) => ({
      onResponse: (res) => this.onClientResponse(entry, res),
      onTimeout: () => this.onClientResponse(entry, makeResponse(req, 408, undefined)),
    }));
  }

  private onClientResponse(c: ClientRequest, res: SipResponse): void {
    const req = c.request;
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
      c.dialog = this.uacDialog(c, res);
      c.earlyDialog = true;
      dialogId = c.dialog.id;
    } else if (req.method === 'INVITE' && c.dialog && res.status > 100 && res.status < 200 && res.headers.has('RSeq')) {
      dialogId = c.dialog.id; // reliable 1xx to a re-INVITE
    }
    if (req.method === 'INVITE' && res.status >= 200 && res.status < 300) {
      const cseq = cseqOf(req).seq;
      if (!c.dialog) {
        c.dialog = this.uacDialog(c, res);
      } else {
        const contact = parseNameAddr(res.headers.getAll('Contact')[0] ?? '')?.uri;
        if (contact) c.dialog.remoteTarget = contact;
      }
      const dialog = c.dialog;
      dialogId = dialog.id;
      const appGone = !this.router.find(c.appId);
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
    if (res.status >= 200) c.finalForwarded = true;
    if (req.method === 'BYE' && res.status >= 200 && c.dialog) {
      // a challenged BYE keeps its dialog for the app's retry with credentials (drachtio-server does the same)
      if (res.status === 401 || res.status === 407) this.keepForAuthenticatedRetry(c.dialog);
      else this.dropDialog(c.dialog);
    }
    if (req.method === 'INVITE' && res.status >= 300 && c.earlyDialog && c.dialog) {
      this.dropDialog(c.dialog);
      c.dialog = undefined;
    }
    const app = this.router.find(c.appId);
    if (!app || !c.txnId) return;
    if (c.dialog && !dialogId && req.method !== 'INVITE') dialogId = c.dialog.id;
    this.sendToApp(app, res, c.flow, c.txnId, dialogId);
  }

  /**
   * A BYE the app sent was challenged (401/407): the dialog stays for the retry with credentials, which
   * drachtio-srf sends in the same dialog. If no BYE follows within 64*T1 the dialog is dropped quietly.
   */
  private keepForAuthenticatedRetry(dialog: Dialog): void {
    dialog.challengedBye?.cancel();
    dialog.challengedBye = this.clock.setTimeout(() => {
      dialog.challengedBye = undefined;
      if (this.dialogs.get(dialog.id) !== dialog) return;
      this.log.info('challenged BYE not retried: dialog dropped', { callId: dialog.callId, dialogId: dialog.id });
      this.dropDialog(dialog);
    }, 64 * this.timers.t1);
    this.log.info('BYE challenged: dialog kept for the retry with credentials', { callId: dialog.callId, dialogId: dialog.id });
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
      this.log.info('answered INVITE of a gone app: ACKed and BYEd', { callId: dialog.callId, dialogId: dialog.id, reason: APP_GONE_REASON });
      void this.sendEngineBye(dialog, APP_GONE_REASON);
      return;
    }
    if (this.router.find(dialog.ownerId)) return;
    dialog.ownerId = undefined;
    this.orphans.watch(dialog);
    this.log.info('dialog orphaned: its app is gone', { callId: dialog.callId, dialogId: dialog.id, deadlineMs: this.orphans.deadlineMs });
  }

  /** The UAC dialog of an app's initial INVITE (RFC 3261 §12.1.2), created on its 2xx or reliable 1xx. */
  private uacDialog(c: ClientRequest, res: SipResponse): Dialog {
    const existing = this.dialogs.get(makeDialogId(callIdOf(c.request), tagOf(c.request.headers.get('From')) ?? ''));
    if (existing) return existing;
    const dialog = uacDialog(c.request, res, c.flow, c.appId);
    this.dialogs.add(dialog);
    return dialog;
  }

  // ---------------------------------------------------------------- helpers

  private sendToApp(app: AppConnection, msg: SipMessage, flow: Flow, txnId: string, dialogId: string): void {
    const raw = serializeSipMessage(msg);
    app.send(networkSipTokens(this.meta(raw, flow), txnId, dialogId, this.local.host(flow), this.local.port(flow)), raw.toString('utf8'));
  }

  private meta(data: Buffer, flow: Flow): WireMeta {
    return { bytes: data.length, flow, time: this.time() };
  }

  private time(): string {
    return new Date(this.clock.now()).toISOString().slice(11, 23);
  }

  /**
   * Graceful stop, first half: no party is left in a call with nobody. Refuses new calls, answers what
   * waits for an app (a BYE 200, other in-dialog requests 481, new requests 503), cancels outgoing
   * INVITEs, BYEs every confirmed dialog with `reason`, and waits for the BYEs' answers up to `maxWaitMs`.
   */
  async endAllDialogs(reason: string, maxWaitMs: number): Promise<{ byes: number; answered: number; waitedMs: number }> {
    const started = this.clock.now();
    this.closing = true;
    this.restartHeld.expireAll();
    for (const p of [...this.pendingServer.values()]) {
      this.finishPending(p);
      if (p.txn.finalSent || p.txn.terminated) continue;
      p.txn.respond(makeResponse(p.request, p.dialog ? (p.request.method === 'BYE' ? 200 : 481) : 503, p.toTag));
    }
    const early = new Set<Dialog>();
    for (const c of this.clients.entries()) {
      if (c.request.method !== 'INVITE' || !(c.txn instanceof ClientInviteTransaction) || c.txn.finalReceived || !c.txnId) continue;
      if (c.earlyDialog && c.dialog) early.add(c.dialog);
      if (c.dialog && !c.earlyDialog) continue; // a re-INVITE: its dialog is BYEd below
      c.abandoned = true;
      if (c.provisionalSeen) this.cancelAbandoned(c);
    }
    const byes: Array<Promise<number>> = [];
    for (const d of this.dialogs.all()) {
      if (early.has(d)) continue;
      const held = this.orphans.release(d);
      const peerHungUp = held.some((h) => h.request.method === 'BYE');
      for (const h of held) {
        if (!h.txn.finalSent && !h.txn.terminated) h.txn.respond(makeResponse(h.request, h.request.method === 'BYE' ? 200 : 481, d.localTag));
      }
      if (peerHungUp) {
        this.dropDialog(d);
        continue;
      }
      this.log.info('dialog ended at shutdown: BYE sent', { callId: d.callId, dialogId: d.id, reason });
      byes.push(this.sendEngineBye(d, reason));
    }
    let answered = 0;
    for (const b of byes) void b.then((status) => { if (status > 0) answered++; });
    if (byes.length) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, maxWaitMs);
        void Promise.all(byes).then(() => { timer.cancel(); resolve(); });
      });
    }
    const result = { byes: byes.length, answered, waitedMs: this.clock.now() - started };
    this.log.info('ferry sip stopping: dialogs ended', result);
    return result;
  }

  /** Stops every transaction and timer (engine shutdown). */
  shutdown(): void {
    this.closing = true;
    this.restartHeld.expireAll();
    this.serverTxns.abortAll();
    this.clients.abortAll();
    for (const p of [...this.pendingServer.values()]) this.finishPending(p);
    for (const d of this.orphans.dialogs()) this.orphans.release(d);
    for (const d of this.dialogs.all()) this.dialogs.remove(d);
  }
}

function isClaim(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'true';
}

/** A bare request carrying one header, for the builders that copy an app's headers (Reason on BYE/CANCEL). */
function withHeader(method: string, name: string, value: string): SipRequest {
  return { kind: 'request', method, uri: '', headers: SipHeaders.from([[name, value]]), body: Buffer.alloc(0) };
}
