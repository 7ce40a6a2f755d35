import { CallRecord } from './call-record';
import { Registration } from './registration';

/** What /metrics shows about the store: whether it answers, and how many operations failed. */
export interface StoreHealth {
  up: boolean;
  errorsTotal: number;
}

/**
 * Where the gateway keeps everything that must outlive it: registrations, call records and
 * instance leases. Two implementations with the same behaviour: Redis (ioredis) and in-memory.
 */
export interface StateStore {
  readonly kind: 'redis' | 'memory';

  putRegistration(reg: Registration): Promise<void>;
  /** live (unexpired) bindings of an AOR user */
  getRegistrations(user: string): Promise<Registration[]>;
  removeRegistration(user: string, contact: string): Promise<void>;
  /**
   * Removes a binding only while it is still the one registered at `registeredAt`, in one step (across
   * gateways sharing the store too): a REGISTER that renewed it meanwhile, at any gateway, keeps it.
   * Resolves whether it removed it.
   */
  removeRegistrationIf(user: string, contact: string, registeredAt: number): Promise<boolean>;
  countRegistrations(): Promise<number>;

  /** create or replace a call record; `ttlMs` only after the call ended (a backstop, never while live) */
  putCall(record: CallRecord, ttlMs?: number): Promise<void>;
  getCall(id: string): Promise<CallRecord | undefined>;
  listCalls(): Promise<CallRecord[]>;
  deleteCall(id: string): Promise<void>;
  /** number of call keys present (S16 leak checks) */
  countCallKeys(): Promise<number>;

  /** renew the lease of a gateway instance */
  renewLease(instanceId: string, ttlMs: number): Promise<void>;
  dropLease(instanceId: string): Promise<void>;
  leaseAlive(instanceId: string): Promise<boolean>;
  /** atomically take the right to adopt a call for `ttlMs`; false when another gateway holds it */
  claimAdoption(callId: string, instanceId: string, ttlMs: number): Promise<boolean>;

  /** a random secret shared by every gateway on this store (created by the first to ask), e.g. the digest nonce key */
  sharedKey(name: string): Promise<Buffer>;

  /**
   * Claims count `nc` of digest nonce `nonce`: true when it is higher than every count claimed for
   * that nonce before (atomic, so across gateways sharing the store too), false for a replay. The
   * record is kept `ttlMs` (the nonce's lifetime).
   */
  claimNonceCount(nonce: string, nc: number, ttlMs: number): Promise<boolean>;
  /**
   * Counts one authentication failure of `subject` (e.g. `ip:10.0.0.9`, `user:alice`) in a window
   * of `windowMs` from its first failure; the failure that reaches `limit` locks the subject out
   * for `lockoutMs` and returns true.
   */
  countAuthFailure(subject: string, limit: number, windowMs: number, lockoutMs: number): Promise<boolean>;
  /** ms left of a subject's lockout, 0 when it is not locked out */
  authLockoutLeft(subject: string): Promise<number>;

  /** whether the store currently answers, and the number of failed operations so far */
  health(): StoreHealth;

  close(): Promise<void>;
}
