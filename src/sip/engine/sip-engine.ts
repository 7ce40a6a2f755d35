import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { AppConnection } from '../control/app-connection';
import type { AppProxyMessage, AppSipMessage, ControlHandler } from '../control/control-server';
import type { AppRouter } from '../control/app-router';
import type { SipMessage } from '../message/sip-message';
import { parseSipMessage } from '../message/sip-parser';
import type { FlowBindings } from '../registrar/flow-bindings';
import { ClientTransactionTable } from '../transaction/client-transaction-table';
import { DEFAULT_MAX_SERVER_TRANSACTIONS, ServerTransactionTable } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';
import { AppPort } from './app-port';
import { CallRecords } from './call-records';
import { CdrSender } from '../control/cdr-sender';
import type { RequestHandler } from '../control/request-handler';
import { ServerInviteTransaction } from '../transaction/server-invite-transaction';
import type { ClientRequest } from './client-request';
import { DialogClaims } from './dialog-claims';
import { DialogLifetime } from './dialog-lifetime';
import { DialogOwners } from './dialog-owners';
import type { EngineContext } from './engine-context';
import { endAllDialogs, type GracefulStopResult } from './graceful-stop';
import { DEFAULT_ORPHAN_DIALOG_MS, FERRY_CLAIM_HEADER, FERRY_DIALOG_HEADER } from './engine-reasons';
import { LocalAddress, type EngineAddressing } from './local-address';
import { makeResponse, makeUnavailable, randomToken } from './message-builders';
import { NetworkIntake, type IntakeCounts } from './network-intake';
import type { RequestRateGuard } from './request-rate-guard';
import type { NextHopResolver } from './next-hop-resolver';
import { PendingServerRequests, type PendingServerRequest } from './pending-server-requests';
import { type ProxyDispatch, type ProxyServices } from './proxy-dispatch';
import { ProxyCore } from '../proxy/proxy-core';
import { DEFAULT_RESTART_HOLD_MS, RestartHeldRequests } from './restart-held-requests';
import { UacCore } from './uac-core';
import { UasCore } from './uas-core';
import { DEFAULT_UNROUTED_HOLD, UNROUTED_RETRY_AFTER_S, UnroutedRequestHold, type UnroutedHoldLimits } from './unrouted-request-hold';
import { callIdOf } from '../message/sip-message';

export type { EngineAddressing } from './local-address';
export {
  ACK_TIMEOUT_REASON, APP_GONE_REASON, DEFAULT_ORPHAN_DIALOG_MS, FERRY_CLAIM_HEADER, FERRY_DIALOG_HEADER, ORPHAN_BYE_REASON, SHUTDOWN_BYE_REASON,
} from './engine-reasons';

/**
 * ferry sip's engine: drachtio-server's semantics on top of the transaction layer, layered as
 * drachtio-srf layers its client (wire protocol -> agent -> dialog):
 * - NetworkIntake: parsing, validation, Via stamping of everything from the transports;
 * - AppPort: the only writer of drachtio tokens to apps;
 * - UasCore / UacCore: requests from the network and their app responses / app requests and their responses;
 * - PendingServerRequests: network requests waiting for their app, and their expiry;
 * - DialogLifetime: the one owner of dialog lifetime (created / confirmed / ended events);
 * - DialogOwners and DialogClaims: the "surviving the app" extension (orphaned dialogs, claims);
 * - ProxyDispatch: where the `proxy` verb goes.
 * This class wires them and is the facade the transports and the control port talk to.
 */
export class SipEngine implements ControlHandler {
  readonly bindings: FlowBindings;
  private readonly ctx: EngineContext;
  private readonly intake: NetworkIntake;
  private readonly uas: UasCore;
  private readonly uac: UacCore;
  private readonly owners: DialogOwners;
  private readonly claims: DialogClaims;
  /** the `proxy` verb's handler: the proxy core */
  private readonly proxyDispatch: ProxyDispatch;

  constructor(
    clock: Clock,
    timers: TimerConfig,
    router: AppRouter,
    resolver: NextHopResolver,
    bindings: FlowBindings,
    addressing: EngineAddressing,
    log: Logger,
    orphanDialogMs = DEFAULT_ORPHAN_DIALOG_MS,
    restartHoldMs = DEFAULT_RESTART_HOLD_MS,
    unroutedHoldLimits: Partial<UnroutedHoldLimits> = {},
    maxServerTransactions = DEFAULT_MAX_SERVER_TRANSACTIONS,
    /** the per-source rate of new requests (absent: no limit) */
    requestRate?: RequestRateGuard,
    /** outbound connection mode (absent: every new request goes to the connected apps) */
    requestHandler?: RequestHandler,
  ) {
    this.bindings = bindings;
    const local = new LocalAddress(addressing);
    const restartHeld = new RestartHeldRequests(clock, restartHoldMs, (h) => {
      if (h.txn.finalSent || h.txn.terminated) return;
      h.txn.respond(makeResponse(h.request, 481));
      log.info('request for an unknown dialog answered 481: no app claimed its dialog after the restart', { callId: callIdOf(h.request), method: h.request.method });
    });
    const unroutedHold = new UnroutedRequestHold(clock, { ...DEFAULT_UNROUTED_HOLD, ...unroutedHoldLimits }, (h) => {
      if (h.txn.finalSent || h.txn.terminated) return;
      h.txn.respond(makeUnavailable(h.request, UNROUTED_RETRY_AFTER_S, randomToken()));
      log.info('held new request answered 503: no app routed it in time', { method: h.request.method, callId: callIdOf(h.request), retryAfterS: UNROUTED_RETRY_AFTER_S });
    });
    const dialogs = new DialogLifetime(clock, log);
    this.ctx = {
      clock, timers, router, resolver, bindings, local, log,
      appPort: new AppPort(clock, local),
      dialogs,
      cdr: new CallRecords(new CdrSender(router, () => clock.now()), dialogs),
      serverTxns: new ServerTransactionTable<PendingServerRequest>(clock, timers, maxServerTransactions),
      clients: new ClientTransactionTable<ClientRequest>(clock, timers),
      pending: new PendingServerRequests(clock, timers),
      restartHeld,
      unroutedHold,
      lifecycle: { closing: false },
      requestHandler,
    };
    this.owners = new DialogOwners(this.ctx, orphanDialogMs, {
      deliver: (app, held, dialog) => this.uas.deliverHeld(app, held, dialog),
      engineBye: (dialog, reason) => this.uac.sendEngineBye(dialog, reason),
    });
    this.uas = new UasCore(this.ctx, {
      owners: this.owners,
      engineBye: (dialog, reason) => this.uac.sendEngineBye(dialog, reason),
      proxy: () => this.proxyDispatch,
    });
    this.uac = new UacCore(this.ctx, {
      owners: this.owners,
      dialogFromSnapshot: (app, id, req) => this.claims.fromSnapshot(app, id, req),
    });
    this.claims = new DialogClaims(this.ctx, {
      owners: this.owners,
      inDialogRequest: (req, flow, key, txn, dialog) => this.uas.onInDialogRequest(req, flow, key, txn, dialog),
    });
    this.intake = new NetworkIntake(router, log, {
      onRequest: (req, flow) => this.uas.onRequest(req, flow),
      onResponse: (res) => this.uac.onResponse(res),
      isRetransmission: (req) => this.ctx.serverTxns.get(ServerTransactionTable.keyOf(req)) !== undefined,
      // right after a start, requests of dialogs an app has not claimed back yet are kept for it (bounded by the
      // hold itself), so they do not count against their source's rate: a trunk's BYEs after a restart are not new
      isHeld: (req, flow) => restartHeld.accepting || this.uas.holds(req, flow),
    }, requestRate);
    // the `proxy` verb is dispatched here: the proxy core (src/sip/proxy/) gets what it may use of the engine
    this.proxyDispatch = new ProxyCore(this.proxyServices());
  }

  /** What the proxy core may use of the engine. */
  proxyServices(): ProxyServices {
    const { ctx } = this;
    return {
      finishPending: (p) => ctx.pending.finish(p),
      sendRequest: (req, flow, user) => this.uac.sendForProxy(req, flow, user),
      resolve: (uri) => ctx.resolver.resolve(uri),
      resolveTargets: (uri) => ctx.resolver.resolveTargets(uri),
      local: ctx.local, appPort: ctx.appPort, router: ctx.router, clock: ctx.clock, timers: ctx.timers, log: ctx.log,
    };
  }

  /** The engine's dialogs (read-only use: tests, dumps). Dialogs are created and ended only by DialogLifetime. */
  get dialogs(): DialogLifetime {
    return this.ctx.dialogs;
  }

  /** new requests answered without a transaction because the server transaction table was full (FERRY_SIP_MAX_SERVER_TRANSACTIONS) */
  get refusedTransactionTableFull(): number {
    return this.uas.refusedWhenFull;
  }

  /** malformed messages and requests refused before any transaction, since start (the metrics port) */
  intakeCounts(): IntakeCounts {
    return this.intake.counts();
  }

  /** Counts for tests and dumps: everything returns to zero when calls end. */
  stats(): {
    serverTransactions: number; clientTransactions: number; pending: number; dialogs: number; bindings: number;
    orphanedDialogs: number; heldRequests: number; proxySessions?: number; proxyForwards?: number;
  } {
    const { ctx } = this;
    return {
      serverTransactions: ctx.serverTxns.size,
      clientTransactions: ctx.clients.size,
      pending: ctx.pending.size,
      dialogs: ctx.dialogs.size,
      bindings: ctx.bindings.size,
      orphanedDialogs: this.owners.size,
      heldRequests: this.owners.heldCount + ctx.restartHeld.size + ctx.unroutedHold.size,
      ...this.proxyDispatch.stats?.(),
    };
  }

  // ---------------------------------------------------------------- network side

  onNetworkData(data: Buffer, flow: Flow): void {
    this.intake.onData(data, flow);
  }

  onRefusedRequest(head: Buffer, flow: Flow, status: 400 | 413, why: string): void {
    this.intake.onRefusedRequest(head, flow, status, why);
  }

  onFlowClosed(flow: Flow): void {
    this.bindings.forgetFlow(flow, this.ctx.clock.now());
    this.ctx.unroutedHold.forgetFlow(flow);
    this.uas.onFlowClosed(flow);
  }

  /**
   * A connection is in use while an unexpired registration is bound to it, a dialog runs over it or a
   * transaction waits on it; the transports never close such a connection for idleness.
   */
  flowInUse(flow: Flow): boolean {
    const { ctx } = this;
    if (this.bindings.holdsFlow(flow, ctx.clock.now())) return true;
    for (const d of ctx.dialogs.all()) if (d.flow === flow) return true;
    for (const p of ctx.pending.values()) if (p.flow === flow) return true;
    for (const c of ctx.clients.entries()) if (c.flow === flow) return true;
    return false;
  }

  // ---------------------------------------------------------------- app side

  /** true while `app` owns a dialog or has a transaction open (an idle outbound connection is closed) */
  appInUse(app: AppConnection): boolean {
    const { ctx } = this;
    for (const d of ctx.dialogs.all()) if (d.ownerId === app.id) return true;
    for (const p of ctx.pending.values()) if (p.appId === app.id && !p.done) return true;
    for (const c of ctx.clients.entries()) if (c.appId === app.id) return true;
    return false;
  }

  /** `sip|<txnId>|<dialogId>|<proxy>` + SIP from an app: dispatched to the UAS core, the UAC core or the claims. */
  onAppSip(app: AppConnection, m: AppSipMessage): void {
    const { appPort, log } = this.ctx;
    let msg: SipMessage;
    try {
      msg = parseSipMessage(Buffer.from(m.raw, 'utf8'), true, true);
    } catch (err) {
      appPort.refuse(app, m.rid, `invalid SIP message: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const fail = (err: unknown): void => {
      const reason = (err instanceof Error ? err.message : String(err)).replace(/[|\r\n]/g, ' ');
      log.info('app SIP message refused', { app: app.id, reason });
      appPort.refuse(app, m.rid, reason);
    };
    try {
      if (msg.kind === 'response') return this.uas.onAppResponse(app, m, msg);
      if (msg.method === 'CANCEL' && m.transactionId) return this.uac.onAppCancel(app, m, msg);
      if (msg.method === 'ACK' && !m.dialogId && !msg.headers.has(FERRY_DIALOG_HEADER)) return fail(new Error('ACK for a non-2xx final response is sent by the stack'));
      if (m.dialogId && msg.method === 'OPTIONS' && isClaim(msg.headers.get(FERRY_CLAIM_HEADER))) return this.claims.onAppClaim(app, m, msg);
      if (m.dialogId) {
        const dialog = this.ctx.dialogs.get(m.dialogId);
        if (!dialog) return fail(new Error('unable to find dialog for dialog id'));
        this.uac.sendInDialog(app, m, msg, dialog).catch(fail);
        return;
      }
      this.uac.onAppNewRequest(app, m, msg).catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /** `proxy|<txnId>|...`: the dispatch point of the `proxy` verb. */
  onAppProxy(app: AppConnection, m: AppProxyMessage): void {
    const pending = this.ctx.pending.get(m.transactionId);
    if (pending && !pending.done && pending.txn instanceof ServerInviteTransaction) this.ctx.cdr.proxying(pending.txn);
    this.proxyDispatch.proxy(app, m, pending && !pending.done ? pending : undefined);
  }

  /**
   * A new app routed `verb`: it takes every orphaned dialog holding a request of that method, and the new
   * requests of that method held while no app routed it, at once.
   */
  onAppRoute(app: AppConnection, verb: string): void {
    this.owners.onAppRoute(app, verb);
    this.uas.onAppRoute(verb);
  }

  /**
   * An app connection dropped. Its in-dialog requests go to another app that routes the method, or are
   * held; its unanswered out-of-dialog requests get 503; its unanswered outgoing INVITEs are cancelled;
   * its dialogs become orphaned and are ended at the orphan deadline unless an app takes them.
   */
  onAppClosed(app: AppConnection): void {
    const { reoffered, held, refused } = this.uas.onAppClosed(app);
    const cancelled = this.uac.onAppClosed(app);
    const orphaned = this.ctx.dialogs.all().filter((d) => d.ownerId === app.id || (d.ownerId !== undefined && !this.ctx.router.find(d.ownerId)));
    for (const d of orphaned) this.owners.orphan(d, app.id);
    if (orphaned.length || reoffered || held || refused || cancelled) {
      this.ctx.log.info('app gone', { app: app.id, orphanedDialogs: orphaned.length, reoffered, held, refused, cancelledInvites: cancelled });
    }
  }

  // ---------------------------------------------------------------- stopping

  /** Graceful stop, first half (graceful-stop.ts): every party is told, every confirmed dialog BYEd. */
  endAllDialogs(reason: string, maxWaitMs: number): Promise<GracefulStopResult> {
    return endAllDialogs(this.ctx, { uas: this.uas, uac: this.uac, owners: this.owners }, reason, maxWaitMs);
  }

  /** Stops every transaction and timer (engine shutdown). */
  shutdown(): void {
    const { ctx } = this;
    ctx.lifecycle.closing = true;
    ctx.restartHeld.expireAll();
    ctx.unroutedHold.expireAll();
    ctx.serverTxns.abortAll();
    ctx.clients.abortAll();
    for (const p of ctx.pending.values()) ctx.pending.finish(p);
    this.owners.releaseAll();
    for (const d of ctx.dialogs.all()) ctx.dialogs.end(d, 'shutdown');
    this.proxyDispatch.shutdown?.();
  }
}

function isClaim(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'true';
}

