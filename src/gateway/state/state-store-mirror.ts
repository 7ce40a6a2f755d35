import { CallRecord } from './call-record';
import { Registration } from './registration';

/** What the store should hold for one key this gateway wrote, as far as this gateway knows. */
export type DesiredCall =
  | { kind: 'live'; record: CallRecord }
  | { kind: 'ended'; record: CallRecord; ttlMs: number }
  | { kind: 'deleted' };
export type DesiredRegistration = { kind: 'bound'; reg: Registration } | { kind: 'removed'; user: string; contact: string };

/**
 * The gateway's own copy of what it wrote to the state store: the records of the calls it drives,
 * the bindings it accepted (until they expire), its lease, and the ends, deletions and removals the
 * store has not confirmed yet. Kept so that after a store outage (Redis restarted empty, or writes
 * lost while it was unreachable) everything can be written again. Ended calls stay only until their
 * ended record is confirmed, so a call that ended is never written back as live.
 */
export class StateStoreMirror {
  private readonly liveCalls = new Map<string, CallRecord>();
  private readonly unconfirmedEnds = new Map<string, { record: CallRecord; expiresAt: number }>();
  private readonly unconfirmedDeletes = new Set<string>();
  private readonly bindings = new Map<string, Registration>();
  private readonly unconfirmedRemovals = new Map<string, { user: string; contact: string }>();
  lease: { instanceId: string; ttlMs: number } | undefined;

  constructor(private readonly now: () => number) {}

  callWritten(record: CallRecord, ttlMs: number | undefined): void {
    const copy = JSON.parse(JSON.stringify(record)) as CallRecord;
    this.unconfirmedDeletes.delete(record.id);
    if (ttlMs === undefined) {
      this.unconfirmedEnds.delete(record.id);
      this.liveCalls.set(record.id, copy);
    } else {
      this.liveCalls.delete(record.id);
      this.unconfirmedEnds.set(record.id, { record: copy, expiresAt: this.now() + ttlMs });
    }
  }

  callDeleted(id: string): void {
    this.liveCalls.delete(id);
    this.unconfirmedEnds.delete(id);
    this.unconfirmedDeletes.add(id);
  }

  /** what the store should hold for this call now (undefined: nothing to write) */
  desiredCall(id: string): DesiredCall | undefined {
    const live = this.liveCalls.get(id);
    if (live) return { kind: 'live', record: live };
    const ended = this.unconfirmedEnds.get(id);
    if (ended) {
      const ttlMs = ended.expiresAt - this.now();
      // past its backstop: the record should not exist at all any more
      return ttlMs > 0 ? { kind: 'ended', record: ended.record, ttlMs } : { kind: 'deleted' };
    }
    return this.unconfirmedDeletes.has(id) ? { kind: 'deleted' } : undefined;
  }

  /** the store confirmed `written` for this call: an end or deletion need not be kept any more */
  callConfirmed(id: string, written: DesiredCall): void {
    if (written.kind === 'ended') {
      if (this.unconfirmedEnds.get(id)?.record === written.record) this.unconfirmedEnds.delete(id);
    } else if (written.kind === 'deleted') {
      const ended = this.unconfirmedEnds.get(id);
      if (ended && ended.expiresAt <= this.now()) this.unconfirmedEnds.delete(id);
      if (!this.liveCalls.has(id) && !this.unconfirmedEnds.has(id)) this.unconfirmedDeletes.delete(id);
    }
  }

  callIds(): string[] {
    return [...new Set([...this.liveCalls.keys(), ...this.unconfirmedEnds.keys(), ...this.unconfirmedDeletes])];
  }

  get liveCallCount(): number {
    return this.liveCalls.size;
  }

  registrationWritten(reg: Registration): void {
    const key = bindingKey(reg.user, reg.contact);
    this.unconfirmedRemovals.delete(key);
    this.bindings.set(key, { ...reg });
  }

  registrationRemoved(user: string, contact: string): void {
    const key = bindingKey(user, contact);
    this.bindings.delete(key);
    this.unconfirmedRemovals.set(key, { user, contact });
  }

  /** the store removed this very binding (registered at `registeredAt`): nothing is left to write back */
  registrationForgotten(user: string, contact: string, registeredAt: number): void {
    const key = bindingKey(user, contact);
    if (this.bindings.get(key)?.registeredAt === registeredAt) this.bindings.delete(key);
  }

  desiredRegistration(key: string): DesiredRegistration | undefined {
    const reg = this.bindings.get(key);
    if (reg) {
      if (reg.expiresAt > this.now()) return { kind: 'bound', reg };
      this.bindings.delete(key);
      return undefined;
    }
    const removed = this.unconfirmedRemovals.get(key);
    return removed ? { kind: 'removed', ...removed } : undefined;
  }

  registrationConfirmed(key: string, written: DesiredRegistration): void {
    if (written.kind === 'removed' && !this.bindings.has(key)) this.unconfirmedRemovals.delete(key);
  }

  registrationKeys(): string[] {
    return [...new Set([...this.bindings.keys(), ...this.unconfirmedRemovals.keys()])];
  }

  /** the live bindings of a user this gateway accepted (routing while the store does not answer) */
  registrationsOf(user: string): Registration[] {
    const now = this.now();
    return [...this.bindings.values()].filter((r) => r.user === user && r.expiresAt > now).map((r) => ({ ...r }));
  }

  get liveRegistrationCount(): number {
    const now = this.now();
    let n = 0;
    for (const r of this.bindings.values()) if (r.expiresAt > now) n++;
    return n;
  }
}

export function bindingKey(user: string, contact: string): string {
  return `${user} ${contact}`;
}
