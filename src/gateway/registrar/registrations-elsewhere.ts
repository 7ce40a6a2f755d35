import Redis from 'ioredis';
import type { Logger } from '../../common/logger';
import { LogThrottle } from '../../common/log-throttle';

/** Contacts a REGISTER added to a user's bindings (what a ringing call of that user may join) */
export interface AddedRegistrations {
  user: string;
  added: readonly string[];
}

/** news of registrations made at the other gateways sharing the store */
export interface RegistrationsElsewhere {
  /** returns the unsubscribe function */
  subscribe(fn: (change: AddedRegistrations) => void): () => void;
}

export interface SharedRegistrationNewsOptions {
  redisUrl: string;
  /** the store's key prefix: gateways share news only with the gateways sharing their store */
  prefix: string;
  /** this gateway's id: its own news is not told back to it (its registrar tells it at once) */
  instanceId: string;
  log: Logger;
  now?: () => number;
}

interface Message {
  gw: string;
  user: string;
  added: string[];
}

/**
 * New bindings told between the gateways sharing one Redis store (docs/gateway.md, "A call", step 2,
 * "A registration made while ringing"): the registrar of the gateway that took a REGISTER announces the
 * Contacts it added on the channel `<prefix>registrations:added` once they are stored, and every other
 * gateway hears it at once (Redis pub/sub), so a call ringing that user there rings the new device too.
 * The news is best effort, as pub/sub is: a gateway whose connection to Redis is down while the REGISTER
 * is made (or while it is being re-established) does not hear it; the binding itself is in the store and
 * the next call rings it.
 */
export class SharedRegistrationNews implements RegistrationsElsewhere {
  private readonly channel: string;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly listeners = new Set<(change: AddedRegistrations) => void>();
  private readonly failureLog: LogThrottle;
  private closed = false;

  constructor(private readonly o: SharedRegistrationNewsOptions) {
    this.channel = `${o.prefix}registrations:added`;
    this.failureLog = new LogThrottle(10_000, o.now ?? (() => Date.now()));
    // an announcement is of use now or never: nothing is queued while Redis is away
    this.pub = new Redis(o.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: (n: number) => Math.min(n * 50, 500) });
    this.sub = new Redis(o.redisUrl, { maxRetriesPerRequest: null, retryStrategy: (n: number) => Math.min(n * 50, 500) });
    this.pub.on('error', () => {});
    this.sub.on('error', () => {});
    this.sub.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.onMessage(text);
    });
  }

  /** listening from once Redis answers (never waited for; ioredis subscribes again by itself after a reconnection) */
  start(): void {
    void this.sub.subscribe(this.channel).catch((err: unknown) => this.failed('subscribe', err));
  }

  /** the Contacts a REGISTER at this gateway added (none: nothing is told) */
  announce(change: AddedRegistrations): void {
    if (this.closed || change.added.length === 0) return;
    const m: Message = { gw: this.o.instanceId, user: change.user, added: [...change.added] };
    void this.pub.publish(this.channel, JSON.stringify(m)).catch((err: unknown) => this.failed('publish', err));
  }

  subscribe(fn: (change: AddedRegistrations) => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.pub.disconnect();
    this.sub.disconnect();
  }

  private onMessage(text: string): void {
    let m: Partial<Message>;
    try {
      m = JSON.parse(text) as Partial<Message>;
    } catch {
      return;
    }
    if (m.gw === this.o.instanceId || typeof m.user !== 'string' || !Array.isArray(m.added)) return;
    const added = m.added.filter((c): c is string => typeof c === 'string');
    if (added.length === 0) return;
    for (const fn of [...this.listeners]) {
      try {
        fn({ user: m.user, added });
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  private failed(what: 'publish' | 'subscribe', err: unknown): void {
    const logged = this.failureLog.admit(what);
    if (logged) this.o.log.warn('registration news not shared', { what, err: String((err as Error | undefined)?.message ?? err), suppressed: logged.suppressed });
  }
}
