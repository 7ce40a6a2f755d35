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
import { serializeSipMessage } from '../message/sip-serializer';
import { parseVia, formatVia } from '../message/via';
import { FlowBindings } from '../registrar/flow-bindings';
import { ClientInviteTransaction } from '../transaction/client-invite-transaction';
import { ClientTransactionTable, type ClientTransaction } from '../transaction/client-transaction-table';
import { ServerInviteTransaction } from '../transaction/server-invite-transaction';
import { ServerTransactionTable, type ServerTransaction } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';
import { LocalAddress, type EngineAddressing } from './local-address';
import { ENGINE_OWNED, makeResponse, randomToken, replaceLocalhost, sniffContentType } from './message-builders';
import type { NextHopResolver } from './next-hop-resolver';
import { networkSipTokens, requestSentTokens, responseSentTokens, unsolicitedTokens, type WireMeta } from './app-wire-format';
import { buildCancel, buildInDialogRequest } from './in-dialog-request-builder';
import { start2xxRetransmission } from './uas-2xx-retransmitter';
import { ReliableProvisional } from './reliable-provisional';

type ServerTxn = ServerTransaction;

/** A network request handed to an app, waiting for the app's final response. */
interface PendingServerRequest {
  txnId: string;
  request: SipRequest;
  flow: Flow;
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
}

export type { EngineAddressing } from './local-address';

/** Header name the surviving-app extension uses (docs/sip-control-extension.md). */
export const FERRY_DIALOG_HEADER = 'X-Ferry-Dialog';

/**
 * drachtio-server's semantics on top of the transaction layer (research note §1.4-1.8): delivers
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

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerConfig,
    private readonly router: AppRouter,
    private readonly resolver: NextHopResolver,
    bindings: FlowBindings,
    addressing: EngineAddressing,
    private readonly log: Logger,
  ) {
    this.bindings = bindings;
    this.serverTxns = new ServerTransactionTable(clock, timers);
    this.clients = new ClientTransactionTable(clock, timers);
    this.local = new LocalAddress(addressing);
  }

  /** Counts for tests and dumps: everything returns to zero when calls end. */
  stats(): { serverTransactions: number; clientTransactions: number; pending: number; dialogs: number; bindings: number } {
    return {
      serverTransactions: this.serverTxns.size,
      clientTransactions: this.clients.size,
      pending: this.pendingServer.size,
      dialogs: this.dialogs.size,
      bindings: this.bindings.size,
    };
  }

  // ---------------------------------------------------------------- network side

  onNetworkData(data: Buffer, flow: Flow): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(data, flow.protocol !== 'tcp');
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
        txn.respond(makeResponse(req, 481));
        return;
      }
      this.onInDialogRequest(req, flow, key, txn, dialog);
      return;
    }
    const app = this.router.next(req.method);
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
        txn.respond(makeResponse(req, 481));
        if (req.method === 'BYE') this.dialogs.remove(dialog);
        return;
      }
      this.log.info('orphaned dialog adopted by another app', { dialogId: dialog.id, app: app.id, method: req.method, callId: dialog.callId });
      dialog.ownerId = app.id;
    }
    this.deliverRequest(app, req, flow, key, txn, dialog);
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
      txnId, request: req, flow, txn, appId: app.id, dialog, toTag: dialog ? dialog.localTag : randomToken(), done: false,
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

  onAppClosed(app: AppConnection): void {
    let reoffered = 0;
    for (const p of [...this.pendingServer.values()]) {
      if (p.appId !== app.id || p.done) continue;
      const other = p.dialog ? this.router.next(p.request.method) : undefined;
      if (other && p.dialog) {
        p.appId = other.id;
        p.dialog.ownerId = other.id;
        this.sendToApp(other, p.request, p.flow, p.txnId, p.dialog.id);
        reoffered++;
        continue;
      }
      this.finishPending(p);
      p.txn.respond(makeResponse(p.request, p.dialog ? 481 : 503, p.toTag));
    }
    for (const c of this.clients.entries()) if (c.appId === app.id) c.appId = undefined;
    const orphaned = this.dialogs.ownedBy(app.id).length;
    if (orphaned || reoffered) this.log.info('app gone; its dialogs stay', { app: app.id, orphanedDialogs: orphaned, reoffered });
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
        this.log.info('no ACK for 2xx; ending dialog with BYE', { dialogId: d.id, callId: d.callId });
        this.sendUnsolicitedBye(d);
      });
      dialogId = dialog.id;
    }
    if (p.dialog && req.method === 'BYE' && status >= 200) this.dialogs.remove(p.dialog);
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
      else this.bindings.bind(n.uri, flow);
    }
  }

  private sendUnsolicitedBye(dialog: Dialog): void {
    const bye = buildInDialogRequest(dialog, 'BYE', undefined);
    this.dialogs.remove(dialog);
    this.sendRequest(bye, dialog, undefined, undefined, undefined, '', (data, flow) => {
      const app = this.router.find(dialog.ownerId);
      if (app) app.send(unsolicitedTokens(this.meta(data, flow), dialog.id), data.toString('utf8'));
    })
      .catch((err) => this.log.warn('could not send BYE', { dialogId: dialog.id, error: String(err) }));
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
      this.log.info('dialog taken over by app', { dialogId: dialog.id, from: dialog.ownerId, to: app.id, method: appReq.method });
      dialog.ownerId = app.id;
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
    return this.resolver.resolve(dialog.remoteTarget);
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
  private startClientTxn(req: SipRequest, flow: Flow, dialog: Dialog | undefined, app: AppConnection | undefined, txnId: string): void {
    this.clients.start(req, flow, { txnId, appId: app?.id, request: req, flow, dialog, finalForwarded: false }, (entry) => ({
      onResponse: (res) => this.onClientResponse(entry, res),
      onTimeout: () => this.onClientResponse(entry, makeResponse(req, 408, undefined)),
    }));
  }

  private onClientResponse(c: ClientRequest, res: SipResponse): void {
    const req = c.request;
    let dialogId = '';
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
      if (c.finalForwarded) {
        if (dialog.lastAck && dialog.lastAck.cseq === cseq) c.flow.send(dialog.lastAck.data);
        return;
      }
    } else if (res.status >= 200 && c.finalForwarded) {
      return;
    }
    if (res.status >= 200) c.finalForwarded = true;
    if (req.method === 'BYE' && res.status >= 200 && c.dialog) this.dialogs.remove(c.dialog);
    if (req.method === 'INVITE' && res.status >= 300 && c.earlyDialog && c.dialog) {
      this.dialogs.remove(c.dialog);
      c.dialog = undefined;
    }
    const app = this.router.find(c.appId);
    if (!app || !c.txnId) return;
    if (c.dialog && !dialogId && req.method !== 'INVITE') dialogId = c.dialog.id;
    this.sendToApp(app, res, c.flow, c.txnId, dialogId);
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

  /** Stops every transaction and timer (engine shutdown). */
  shutdown(): void {
    this.serverTxns.abortAll();
    this.clients.abortAll();
    for (const p of [...this.pendingServer.values()]) this.finishPending(p);
    for (const d of this.dialogs.all()) this.dialogs.remove(d);
  }
}
