import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../../common/clock';
import type { Dialog } from '../dialog/dialog';
import { tagOf } from '../message/name-addr';
import type { SipRequest } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';
import { makeResponse, randomToken } from './message-builders';
import type { ReliableProvisional } from './reliable-provisional';

/** A network request handed to an app, waiting for the app's final response. */
export interface PendingServerRequest {
  /** the drachtio transaction id the app knows the request by */
  txnId: string;
  request: SipRequest;
  flow: Flow;
  /** the server transaction's key (ServerTransactionTable.keyOf) */
  key: string;
  txn: ServerTransaction;
  appId: string;
  dialog: Dialog | undefined;
  /** the To tag of our responses: the dialog's local tag, or a fresh one (the app may choose it) */
  toTag: string;
  done: boolean;
  timeout: TimerHandle;
  /** RFC 3262: the last RSeq we used and the reliable 1xx waiting for its PRACK */
  rseq?: number;
  reliable1xx?: ReliableProvisional;
}

/**
 * Pending-request expiry: the network requests apps have not answered yet, by drachtio transaction id.
 * drachtio drops a request its app never answers after 64 s; here each entry expires after 2*64*T1
 * and its transaction is closed with 408. `finish` is the one way an entry leaves.
 */
export class PendingServerRequests {
  private readonly byTxnId = new Map<string, PendingServerRequest>();

  constructor(private readonly clock: Clock, private readonly timers: TimerConfig) {}

  /** Registers a request handed to app `appId` and starts its expiry. */
  add(req: SipRequest, flow: Flow, key: string, txn: ServerTransaction, appId: string, dialog: Dialog | undefined): PendingServerRequest {
    const pending: PendingServerRequest = {
      txnId: randomUUID(), request: req, flow, key, txn, appId, dialog, toTag: dialog ? dialog.localTag : randomToken(), done: false,
      timeout: this.clock.setTimeout(() => this.expire(pending), 64 * this.timers.t1 * 2),
    };
    this.byTxnId.set(pending.txnId, pending);
    return pending;
  }

  get(txnId: string): PendingServerRequest | undefined {
    return this.byTxnId.get(txnId);
  }

  values(): PendingServerRequest[] {
    return [...this.byTxnId.values()];
  }

  get size(): number {
    return this.byTxnId.size;
  }

  /** The request is answered (or given up): its expiry and reliable 1xx stop and it leaves the table. */
  finish(p: PendingServerRequest): void {
    p.reliable1xx?.stop();
    p.done = true;
    p.timeout.cancel();
    this.byTxnId.delete(p.txnId);
  }

  /** The unanswered INVITE an early-dialog UPDATE/PRACK belongs to (same Call-ID and tags, no dialog yet). */
  inviteFor(callId: string, fromTag: string, toTag: string): PendingServerRequest | undefined {
    for (const p of this.byTxnId.values()) {
      if (p.request.method === 'INVITE' && !p.dialog && p.toTag === toTag && callIdOf(p.request) === callId
        && tagOf(p.request.headers.get('From')) === fromTag) return p;
    }
    return undefined;
  }

  private expire(p: PendingServerRequest): void {
    if (p.done) return;
    this.finish(p);
    if (!p.txn.finalSent && p.request.method !== 'ACK') p.txn.respond(makeResponse(p.request, 408, p.toTag));
  }
}
