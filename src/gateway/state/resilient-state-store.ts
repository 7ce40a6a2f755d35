import { Clock, systemClock } from '../../common/clock';
import { Logger } from '../../common/logger';
import { CallRecord } from './call-record';
import { Registration } from './registration';
import { StateStore, StoreHealth } from './state-store';
import { bindingKey, StateStoreMirror } from './state-store-mirror';
import { StoreUnavailableError } from './store-unavailable-error';

/** A store that can tell when its connection is lost and when it is ready again (RedisStateStore). */
export interface ConnectionAwareStore extends StateStore {
  onConnectionChange?(listener: (up: boolean) => void): void;
  /** puts back a shared secret (SET NX) after the store lost it */
  restoreSharedKey?(name: string, key: Buffer): Promise<void>;
}

export interface ResilientStateStoreOptions {
  /** bound of every operation (FERRY_STORE_TIMEOUT_MS) */
  timeoutMs: number;
  /** bound of `sharedKey`, asked once at start-up while the first connection may still be opening */
  startupTimeoutMs?: number;
  log: Logger;
  clock?: Clock;
}

/**
 * The state store as the gateway uses it when the store can fail (Redis):
 * - every operation is bounded (`timeoutMs`); a failure is counted (`health().errorsTotal`) and the
 *   transitions are logged once each ("state store unavailable" / "available again"), not per operation;
 * - writes (calls, registrations, lease) go to a local mirror first and always resolve: a write the
 *   store did not take is written again when it answers again;
 * - reads that fail reject with StoreUnavailableError (the HTTP API answers 503, adoption skips the
 *   scan: a peer's lease that could not be read is never taken for expired), except the lookup of a
 *   user's bindings, which falls back to the bindings this gateway accepted (calls still route);
 *   for one lease time after the store returned, a lapsed lease still counts as alive (leaseAlive);
 * - when the store is back (ready after a lost connection, or answering after failures), the lease,
 *   the shared keys, every live call record and every unexpired binding this gateway wrote are
 *   written back, and the ends, deletions and removals it has not confirmed are applied; a call that
 *   ended is never written back as live.
 * Writes to one call or one binding are serialised, so a write-back never overtakes a newer write.
 */
export class ResilientStateStore implements StateStore {
  readonly kind: StateStore['kind'];
  private readonly mirror: StateStoreMirror;
  private readonly clock: Clock;
  private readonly chains = new Map<string, Promise<unknown>>();
  /** shared secrets this gateway uses (the digest nonce key): written back too, so challenges stay answerable everywhere */
  private readonly sharedKeys = new Map<string, Buffer>();
  private up = true;
  /** false while the inner store reports its connection lost: operations then fail at once */
  private connected = true;
  private downSince = 0;
  /** when the store last came back after an outage */
  private recoveredAt: number | undefined;
  private failedWhileDown = 0;
  private errorsTotal = 0;
  private writingBack: Promise<void> | undefined;
  private writeBackAgain = false;
  private closed = false;

  constructor(private readonly inner: ConnectionAwareStore, private readonly opts: ResilientStateStoreOptions) {
    this.kind = inner.kind;
    this.clock = opts.clock ?? systemClock;
    this.mirror = new StateStoreMirror(() => this.clock.now());
    inner.onConnectionChange?.((connected) => {
      if (this.closed) return;
      this.connected = connected;
      if (connected) this.markUp('reconnected');
      else this.markDown('connection', 'connection lost');
    });
  }

  health(): StoreHealth {
    return { up: this.up && this.inner.health().up, errorsTotal: this.errorsTotal };
  }

  /** resolves when a write-back in progress (if any) has finished (tests, shutdown) */
  async settled(): Promise<void> {
    while (this.writingBack) await this.writingBack;
  }

  // --- writes: mirrored, attempted, never rejected; while the store is down they do not wait for it ---

  async putCall(record: CallRecord, ttlMs?: number): Promise<void> {
    this.mirror.callWritten(record, ttlMs);
    await this.unlessDown(this.syncCall(record.id));
  }

  async deleteCall(id: string): Promise<void> {
    this.mirror.callDeleted(id);
    await this.unlessDown(this.syncCall(id));
  }

  async putRegistration(reg: Registration): Promise<void> {
    this.mirror.registrationWritten(reg);
    await this.unlessDown(this.syncRegistration(bindingKey(reg.user, reg.contact)));
  }

  async removeRegistration(user: string, contact: string): Promise<void> {
    this.mirror.registrationRemoved(user, contact);
    await this.unlessDown(this.syncRegistration(bindingKey(user, contact)));
  }

  /**
   * Only with the store answering (queued behind this gateway's other writes of the binding): while it
   * does not, nothing is removed, the binding stays as written (it still expires), and false is returned.
   */
  async removeRegistrationIf(user: string, contact: string, registeredAt: number): Promise<boolean> {
    const key = bindingKey(user, contact);
    return this.serial(`reg ${key}`, async () => {
      const mine = this.mirror.desiredRegistration(key);
      if (mine?.kind === 'bound' && mine.reg.registeredAt !== registeredAt) return false;
      let removed = false;
      try {
        removed = await this.bounded('removeRegistrationIf', () => this.inner.removeRegistrationIf(user, contact, registeredAt));
      } catch {
        return false;
      }
      if (removed) this.mirror.registrationForgotten(user, contact, registeredAt);
      return removed;
    });
  }

  async renewLease(instanceId: string, ttlMs: number): Promise<void> {
    this.mirror.lease = { instanceId, ttlMs };
    await this.unlessDown(this.bounded('renewLease', () => this.inner.renewLease(instanceId, ttlMs)).catch(() => {}));
  }

  async dropLease(instanceId: string): Promise<void> {
    if (this.mirror.lease?.instanceId === instanceId) this.mirror.lease = undefined;
    await this.bounded('dropLease', () => this.inner.dropLease(instanceId)).catch(() => {});
  }

  /**
   * While the store is up, a write waits for it (bounded). While it is known down, the write is in
   * the mirror already and goes on in the background: a frozen Redis must not delay a BYE by its
   * timeout on every write. (The attempt still runs: its success is how a return is noticed.)
   */
  private async unlessDown(write: Promise<unknown>): Promise<void> {
    if (this.up) await write;
  }

  // --- reads ---

  async getRegistrations(user: string): Promise<Registration[]> {
    try {
      return await this.bounded('getRegistrations', () => this.inner.getRegistrations(user));
    } catch {
      return this.mirror.registrationsOf(user);
    }
  }

  async countRegistrations(): Promise<number> {
    try {
      return await this.bounded('countRegistrations', () => this.inner.countRegistrations());
    } catch {
      return this.mirror.liveRegistrationCount;
    }
  }

  getCall(id: string): Promise<CallRecord | undefined> {
    return this.bounded('getCall', () => this.inner.getCall(id));
  }

  listCalls(): Promise<CallRecord[]> {
    return this.bounded('listCalls', () => this.inner.listCalls());
  }

  countCallKeys(): Promise<number> {
    return this.bounded('countCallKeys', () => this.inner.countCallKeys());
  }

  /**
   * A lease that lapsed while the store was out of reach says nothing about its owner: the owner
   * could not renew it either. For one lease time after the store returned, a lapsed lease is
   * reported alive (its owner writes it back as soon as it sees the store again); after that, as is.
   */
  async leaseAlive(instanceId: string): Promise<boolean> {
    const alive = await this.bounded('leaseAlive', () => this.inner.leaseAlive(instanceId));
    if (alive || this.recoveredAt === undefined) return alive;
    return this.clock.now() < this.recoveredAt + (this.mirror.lease?.ttlMs ?? 0);
  }

  claimAdoption(callId: string, instanceId: string, ttlMs: number): Promise<boolean> {
    return this.bounded('claimAdoption', () => this.inner.claimAdoption(callId, instanceId, ttlMs));
  }

  async sharedKey(name: string): Promise<Buffer> {
    const key = await this.bounded('sharedKey', () => this.inner.sharedKey(name), this.opts.startupTimeoutMs ?? Math.max(10000, this.opts.timeoutMs));
    this.sharedKeys.set(name, key);
    return key;
  }

  claimNonceCount(nonce: string, nc: number, ttlMs: number): Promise<boolean> {
    return this.bounded('claimNonceCount', () => this.inner.claimNonceCount(nonce, nc, ttlMs));
  }

  countAuthFailure(subject: string, limit: number, windowMs: number, lockoutMs: number): Promise<boolean> {
    return this.bounded('countAuthFailure', () => this.inner.countAuthFailure(subject, limit, windowMs, lockoutMs));
  }

  authLockoutLeft(subject: string): Promise<number> {
    return this.bounded('authLockoutLeft', () => this.inner.authLockoutLeft(subject));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close();
  }

  // --- internals ---

  private syncCall(id: string): Promise<boolean> {
    return this.serial(`call ${id}`, async () => {
      const want = this.mirror.desiredCall(id);
      if (!want) return true;
      try {
        await this.bounded(want.kind === 'deleted' ? 'deleteCall' : 'putCall', () =>
          want.kind === 'deleted' ? this.inner.deleteCall(id) : this.inner.putCall(want.record, want.kind === 'ended' ? want.ttlMs : undefined),
        );
        this.mirror.callConfirmed(id, want);
        return true;
      } catch {
        return false;
      }
    });
  }

  private syncRegistration(key: string): Promise<boolean> {
    return this.serial(`reg ${key}`, async () => {
      const want = this.mirror.desiredRegistration(key);
      if (!want) return true;
      try {
        await this.bounded(want.kind === 'bound' ? 'putRegistration' : 'removeRegistration', () =>
          want.kind === 'bound' ? this.inner.putRegistration(want.reg) : this.inner.removeRegistration(want.user, want.contact),
        );
        this.mirror.registrationConfirmed(key, want);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** runs `fn` after every earlier operation queued on `key` */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return run;
  }

  private async bounded<T>(operation: string, fn: () => Promise<T>, ms = this.opts.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!this.connected) throw new Error('not connected');
      const value = await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
        }),
      ]);
      this.markUp('answered');
      return value;
    } catch (err) {
      this.errorsTotal++;
      const message = (err as Error).message;
      if (this.up) this.markDown(operation, message);
      else this.failedWhileDown++;
      throw new StoreUnavailableError(operation, message);
    } finally {
      clearTimeout(timer);
    }
  }

  private markDown(operation: string, err: string): void {
    if (!this.up || this.closed) return;
    this.up = false;
    this.downSince = this.clock.now();
    this.failedWhileDown = 0;
    this.opts.log.warn('state store unavailable', { operation, err });
  }

  private markUp(how: 'reconnected' | 'answered'): void {
    if (this.up || this.closed) return;
    this.up = true;
    this.recoveredAt = this.clock.now();
    this.opts.log.info('state store available again', { how, downMs: this.clock.now() - this.downSince, failedOperations: this.failedWhileDown });
    void this.writeBack();
  }

  /** writes the lease, then every call record and binding the mirror holds */
  private writeBack(): Promise<void> {
    if (this.writingBack) {
      this.writeBackAgain = true;
      return this.writingBack;
    }
    this.writingBack = (async () => {
      do {
        this.writeBackAgain = false;
        const started = this.clock.now();
        // the lease first: another gateway must not see our written-back calls as ownerless
        const lease = this.mirror.lease;
        if (lease && !(await this.bounded('renewLease', () => this.inner.renewLease(lease.instanceId, lease.ttlMs)).then(() => true, () => false))) {
          // down again: the calls are written on the next return, after the lease
          this.opts.log.info('state store write-back deferred', { reason: 'lease not written' });
          continue;
        }
        const restore = this.inner.restoreSharedKey?.bind(this.inner);
        if (restore) for (const [name, key] of this.sharedKeys) await this.bounded('restoreSharedKey', () => restore(name, key)).catch(() => {});
        const callIds = this.mirror.callIds();
        const bindingKeys = this.mirror.registrationKeys();
        const results = await Promise.all([...callIds.map((id) => this.syncCall(id)), ...bindingKeys.map((k) => this.syncRegistration(k))]);
        this.opts.log.info('state store written back', {
          calls: callIds.length,
          registrations: bindingKeys.length,
          failed: results.filter((ok) => !ok).length,
          ms: this.clock.now() - started,
        });
      } while (this.writeBackAgain && this.up && !this.closed);
    })().finally(() => {
      this.writingBack = undefined;
    });
    return this.writingBack;
  }
}
