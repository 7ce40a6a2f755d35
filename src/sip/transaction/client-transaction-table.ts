import type { Clock } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { parseCSeq } from '../message/sip-message';
import { parseVia } from '../message/via';
import type { Flow } from '../transport/flow';
import { ClientInviteTransaction, type ClientTransactionUser } from './client-invite-transaction';
import { ClientNonInviteTransaction } from './client-non-invite-transaction';
import type { TimerConfig } from './timer-config';

export type ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction;

export interface ClientTransactionEntry {
  /** drachtio transaction id the app knows this request by ('' for requests the engine sends for itself) */
  txnId: string;
  txn: ClientTransaction;
}

/**
 * Client transactions by RFC 3261 §17.1.3 key (top Via branch + CSeq method) and by drachtio
 * transaction id; an entry leaves both maps when its transaction terminates.
 */
export class ClientTransactionTable<E extends ClientTransactionEntry> {
  private readonly byBranch = new Map<string, E>();
  private readonly byTxnId = new Map<string, E>();

  constructor(private readonly clock: Clock, private readonly timers: TimerConfig) {}

  /** Creates the transaction for `req` (its top Via must carry the branch), registers and starts it. */
  start(req: SipRequest, flow: Flow, entry: Omit<E, 'txn'>, userFor: (entry: E) => ClientTransactionUser): E {
    const branch = parseVia(req.headers.getAll('Via')[0] ?? '')?.params.get('branch');
    if (!branch) throw new Error('request has no Via branch');
    const key = `${branch}|${req.method}`;
    const full = entry as E;
    const done = (): void => {
      if (this.byBranch.get(key) === full) this.byBranch.delete(key); // not a later transaction of the same key
      if (full.txnId && this.byTxnId.get(full.txnId) === full) this.byTxnId.delete(full.txnId);
    };
    const user = userFor(full);
    full.txn = req.method === 'INVITE'
      ? new ClientInviteTransaction(req, flow, this.clock, this.timers, done, user)
      : new ClientNonInviteTransaction(req, flow, this.clock, this.timers, done, user);
    this.byBranch.set(key, full);
    if (full.txnId) this.byTxnId.set(full.txnId, full);
    full.txn.start();
    return full;
  }

  /** Hands a response to its transaction; false when none matches (stray or late response). */
  dispatch(res: SipResponse): boolean {
    const top = res.headers.getAll('Via')[0];
    const branch = top ? parseVia(top)?.params.get('branch') : undefined;
    const cseq = parseCSeq(res.headers.get('CSeq'));
    if (!branch || !cseq) return false;
    const entry = this.byBranch.get(`${branch}|${cseq.method}`);
    if (!entry) return false;
    entry.txn.receiveResponse(res);
    return true;
  }

  get(txnId: string): E | undefined {
    return this.byTxnId.get(txnId);
  }

  entries(): E[] {
    return [...this.byBranch.values()];
  }

  get size(): number {
    return this.byBranch.size;
  }

  abortAll(): void {
    for (const e of [...this.byBranch.values()]) e.txn.abort();
  }
}
