import { randomBytes } from 'node:crypto';
import { Clock, systemClock } from '../../common/clock';
import { CallRecord } from './call-record';
import { Registration } from './registration';
import { StateStore, StoreHealth } from './state-store';

/**
 * The state store used when no REDIS_URL is set: same behaviour as the Redis store (expiry
 * included, driven by the injected clock), but it dies with the gateway process.
 */
export class MemoryStateStore implements StateStore {
  readonly kind = 'memory' as const;
  private readonly regs = new Map<string, Map<string, Registration>>();
  private readonly calls = new Map<string, { json: string; expiresAt?: number }>();
  private readonly leases = new Map<string, number>();
  private readonly claims = new Map<string, { owner: string; expiresAt: number }>();
  private readonly keys = new Map<string, Buffer>();
  /** digest nonce -> highest claimed count; auth failure counters; lockouts (all expiring) */
  private readonly nonceCounts = new ExpiringMap<number>();
  private readonly authFailures = new ExpiringMap<number>();
  private readonly authLockouts = new ExpiringMap<true>();

  constructor(private readonly clock: Clock = systemClock) {}

  async putRegistration(reg: Registration): Promise<void> {
    let byContact = this.regs.get(reg.user);
    if (!byContact) this.regs.set(reg.user, (byContact = new Map()));
    byContact.set(reg.contact, { ...reg });
  }

  async getRegistrations(user: string): Promise<Registration[]> {
    this.pruneRegistrations();
    return [...(this.regs.get(user)?.values() ?? [])].map((r) => ({ ...r }));
  }

  async removeRegistration(user: string, contact: string): Promise<void> {
    const byContact = this.regs.get(user);
    byContact?.delete(contact);
    if (byContact?.size === 0) this.regs.delete(user);
  }

  async removeRegistrationIf(user: string, contact: string, registeredAt: number): Promise<boolean> {
    if (this.regs.get(user)?.get(contact)?.registeredAt !== registeredAt) return false;
    await this.removeRegistration(user, contact);
    return true;
  }

  async countRegistrations(): Promise<number> {
    this.pruneRegistrations();
    let n = 0;
    for (const m of this.regs.values()) n += m.size;
    return n;
  }

  async putCall(record: CallRecord, ttlMs?: number): Promise<void> {
    this.calls.set(record.id, {
      json: JSON.stringify(record),
      ...(ttlMs !== undefined ? { expiresAt: this.clock.now() + ttlMs } : {}),
    });
  }

  async getCall(id: string): Promise<CallRecord | undefined> {
    this.pruneCalls();
    const c = this.calls.get(id);
    return c ? (JSON.parse(c.json) as CallRecord) : undefined;
  }

  async listCalls(): Promise<CallRecord[]> {
    this.pruneCalls();
    return [...this.calls.values()].map((c) => JSON.parse(c.json) as CallRecord);
  }

  async deleteCall(id: string): Promise<void> {
    this.calls.delete(id);
    this.claims.delete(id);
  }

  async countCallKeys(): Promise<number> {
    this.pruneCalls();
    return this.calls.size;
  }

  async renewLease(instanceId: string, ttlMs: number): Promise<void> {
    this.leases.set(instanceId, this.clock.now() + ttlMs);
  }

  async dropLease(instanceId: string): Promise<void> {
    this.leases.delete(instanceId);
  }

  async leaseAlive(instanceId: string): Promise<boolean> {
    const until = this.leases.get(instanceId);
    return until !== undefined && until > this.clock.now();
  }

  async claimAdoption(callId: string, instanceId: string, ttlMs: number): Promise<boolean> {
    const now = this.clock.now();
    const c = this.claims.get(callId);
    if (c && c.expiresAt > now && c.owner !== instanceId) return false;
    this.claims.set(callId, { owner: instanceId, expiresAt: now + ttlMs });
    return true;
  }

  async sharedKey(name: string): Promise<Buffer> {
    let k = this.keys.get(name);
    if (!k) this.keys.set(name, (k = randomBytes(32)));
    return k;
  }

  async claimNonceCount(nonce: string, nc: number, ttlMs: number): Promise<boolean> {
    const now = this.clock.now();
    const seen = this.nonceCounts.get(nonce, now);
    if (seen !== undefined && seen >= nc) return false;
    this.nonceCounts.set(nonce, nc, now + ttlMs, now);
    return true;
  }

  async countAuthFailure(subject: string, limit: number, windowMs: number, lockoutMs: number): Promise<boolean> {
    const now = this.clock.now();
    const count = (this.authFailures.get(subject, now) ?? 0) + 1;
    if (count >= limit) {
      this.authFailures.delete(subject);
      this.authLockouts.set(subject, true, now + lockoutMs, now);
      return true;
    }
    this.authFailures.set(subject, count, this.authFailures.expiresAt(subject, now) ?? now + windowMs, now);
    return false;
  }

  async authLockoutLeft(subject: string): Promise<number> {
    const now = this.clock.now();
    const until = this.authLockouts.expiresAt(subject, now);
    return until === undefined ? 0 : until - now;
  }

  /** in the gateway's own memory: it cannot be down */
  health(): StoreHealth {
    return { up: true, errorsTotal: 0 };
  }

  async close(): Promise<void> {}

  private pruneRegistrations(): void {
    const now = this.clock.now();
    for (const [user, m] of this.regs) {
      for (const [contact, r] of m) if (r.expiresAt <= now) m.delete(contact);
      if (m.size === 0) this.regs.delete(user);
    }
  }

  private pruneCalls(): void {
    const now = this.clock.now();
    for (const [id, c] of this.calls) if (c.expiresAt !== undefined && c.expiresAt <= now) this.calls.delete(id);
  }
}

/** A map whose entries expire; expired entries are swept as it grows, so it stays bounded by what is live. */
class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private sweepAt = 1024;

  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  expiresAt(key: string, now: number): number | undefined {
    return this.get(key, now) === undefined ? undefined : this.entries.get(key)!.expiresAt;
  }

  set(key: string, value: V, expiresAt: number, now: number): void {
    this.entries.set(key, { value, expiresAt });
    if (this.entries.size >= this.sweepAt) {
      for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
      this.sweepAt = Math.max(1024, this.entries.size * 2);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}
