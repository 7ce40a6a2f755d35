import type { Clock } from '../../common/clock';
import type { SipRequest } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import { tagOf } from '../message/name-addr';
import { parseVia } from '../message/via';
import type { Flow } from '../transport/flow';
import { ServerInviteTransaction } from './server-invite-transaction';
import { ServerNonInviteTransaction } from './server-non-invite-transaction';
import type { TimerConfig } from './timer-config';

export type ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction;

/**
 * Server transactions open at once, at most (FERRY_SIP_MAX_SERVER_TRANSACTIONS). A transaction outlives
 * its final answer (32 s over UDP, Timers H/J) and a stranger can start one per datagram from any
 * source address, so without a bound the table grows with the attacker's rate (about 14 kB each).
 */
export const DEFAULT_MAX_SERVER_TRANSACTIONS = 10_000;

/**
 * Server transactions by RFC 3261 §17.2.3 key: top Via branch + sent-by + method (an ACK looks up
 * the INVITE's, a CANCEL has its own). Each may carry a value `V` (the engine's pending request).
 */
export class ServerTransactionTable<V> {
  private readonly byKey = new Map<string, { txn: ServerTransaction; value: V | undefined; flow: Flow }>();

  constructor(private readonly clock: Clock, private readonly timers: TimerConfig, readonly maxTransactions = DEFAULT_MAX_SERVER_TRANSACTIONS) {}

  /** at the bound: a new out-of-dialog request gets no transaction (the UAS core answers it statelessly) */
  get full(): boolean {
    return this.byKey.size >= this.maxTransactions;
  }

  /** The key of `req` for `method` (defaults to the request's own method). */
  static keyOf(req: SipRequest, method = req.method): string {
    const via = parseVia(req.headers.getAll('Via')[0] ?? '');
    const branch = via?.params.get('branch') || `${callIdOf(req)}|${req.headers.get('CSeq')}|${tagOf(req.headers.get('From'))}`;
    return `${branch}|${via?.host}:${via?.port ?? ''}|${method}`;
  }

  get(key: string): { txn: ServerTransaction; value: V | undefined } | undefined {
    return this.byKey.get(key);
  }

  create(req: SipRequest, flow: Flow, key: string): ServerTransaction {
    const done = (): void => { this.byKey.delete(key); };
    const txn: ServerTransaction = req.method === 'INVITE'
      ? new ServerInviteTransaction(req, flow, this.clock, this.timers, done)
      : new ServerNonInviteTransaction(req, flow, this.clock, this.timers, done);
    this.byKey.set(key, { txn, value: undefined, flow });
    return txn;
  }

  /** The keys of the INVITE server transactions that came over `flow` and have sent no final response yet. */
  unansweredInvitesOn(flow: Flow): string[] {
    const keys: string[] = [];
    for (const [key, e] of this.byKey) if (e.flow === flow && e.txn instanceof ServerInviteTransaction && !e.txn.finalSent) keys.push(key);
    return keys;
  }

  attach(key: string, value: V): void {
    const e = this.byKey.get(key);
    if (e) e.value = value;
  }

  get size(): number {
    return this.byKey.size;
  }

  abortAll(): void {
    for (const e of [...this.byKey.values()]) e.txn.abort();
  }
}
