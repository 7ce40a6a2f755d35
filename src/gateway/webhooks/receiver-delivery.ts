import { Logger } from '../../common/logger';
import { WebhookReceiver } from './webhook-config';
import { WebhookCounters } from './webhook-counters';
import { QueuedWebhook, WebhookQueue } from './webhook-queue';
import { SendOutcome, sendWebhook } from './webhook-sender';

/** how often an idle worker looks at a queue other gateways may fill, or at a lease another holds */
const IDLE_POLL_MS = 500;
/** pause after a queue (Redis) operation failed */
const STORE_RETRY_MS = 1000;

export interface ReceiverDeliveryOptions {
  now?: () => number;
  send?: (receiver: WebhookReceiver, item: QueuedWebhook, nowMs: number, attempt: number, signal?: AbortSignal) => Promise<SendOutcome>;
}

/**
 * Delivers one receiver's queue, in order, one POST at a time: the head is POSTed until the
 * receiver takes it (2xx), with exponential back-off between attempts (retryInitialMs doubling up
 * to retryMaxMs, ±20 % jitter), and dropped once older than maxAgeMs. Runs on its own, off every
 * call's path: a slow or dead receiver only makes its own queue longer.
 */
export class ReceiverDelivery {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  /** a wake that came while no sleep was waiting: the next sleep returns at once (no lost wake-up) */
  private woken = false;
  /** aborts the POST in flight when the gateway stops */
  private readonly stopping = new AbortController();
  /** the head's failed attempts and when it may be tried again (per event id) */
  private retry: { id: string; attempts: number; nextAt: number } | undefined;
  private readonly now: () => number;
  private readonly send: NonNullable<ReceiverDeliveryOptions['send']>;
  private lastWarnAt = 0;
  private lastStoreWarnAt = 0;

  constructor(
    readonly receiver: WebhookReceiver,
    readonly queue: WebhookQueue,
    readonly counters: WebhookCounters,
    private readonly log: Logger,
    opts: ReceiverDeliveryOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.send = opts.send ?? sendWebhook;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** a new event was queued here */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.wake();
    await this.loop;
    await this.queue.release().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || this.stopped) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (err) {
        // one line every few seconds while the queue's store is down, not one per retry
        if (this.now() - this.lastStoreWarnAt > 5000) {
          this.lastStoreWarnAt = this.now();
          this.log.warn('webhook queue unavailable', { receiver: this.receiver.name, err: (err as Error).message });
        }
        await this.sleep(STORE_RETRY_MS);
      }
    }
  }

  private async step(): Promise<void> {
    if (!(await this.queue.acquire())) {
      // another gateway delivers this receiver's queue
      this.counters.queueLength = (await this.queue.head()).length;
      await this.sleep(IDLE_POLL_MS);
      return;
    }
    const { item, length, malformed } = await this.queue.head();
    this.counters.queueLength = length;
    if (malformed) this.counters.drop('malformed');
    if (!item) {
      if (!malformed) await this.sleep(this.queue.kind === 'memory' ? 60_000 : IDLE_POLL_MS);
      return;
    }
    const now = this.now();
    if (now - item.queuedAt > this.receiver.maxAgeMs) {
      await this.queue.remove(item.id);
      this.counters.drop('expired');
      this.log.warn('webhook event dropped: too old', { receiver: this.receiver.name, eventId: item.id, eventType: item.type, attempts: this.retry?.id === item.id ? this.retry.attempts : 0 });
      this.retry = undefined;
      return;
    }
    if (this.retry?.id !== item.id) this.retry = { id: item.id, attempts: 0, nextAt: now };
    const retry = this.retry;
    if (retry.nextAt > now) {
      await this.sleepUntil(retry.nextAt);
      return;
    }
    const outcome = await this.send(this.receiver, item, this.now(), retry.attempts + 1, this.stopping.signal);
    if (this.stopped && !outcome.ok) return;
    if (outcome.ok) {
      await this.queue.remove(item.id);
      this.counters.delivered++;
      this.counters.queueLength = Math.max(0, length - 1);
      if (retry.attempts > 0) this.log.info('webhook delivered after retries', { receiver: this.receiver.name, eventId: item.id, attempts: retry.attempts + 1 });
      this.retry = undefined;
      return;
    }
    retry.attempts++;
    this.counters.retried++;
    const backoff = Math.min(this.receiver.retryMaxMs, this.receiver.retryInitialMs * 2 ** Math.min(retry.attempts - 1, 30));
    retry.nextAt = this.now() + Math.round(backoff * (0.8 + Math.random() * 0.4));
    // one line per receiver every few seconds at most, not one per attempt
    if (this.now() - this.lastWarnAt > 5000) {
      this.lastWarnAt = this.now();
      this.log.warn('webhook delivery failed, will retry', { receiver: this.receiver.name, eventId: item.id, attempt: retry.attempts, error: outcome.error, retryInMs: retry.nextAt - this.now(), queued: length });
    }
  }

  /** waits for a retry time (renewing the lease); a pushed event does not cut the wait short (the head goes first) */
  private async sleepUntil(at: number): Promise<void> {
    while (!this.stopped && this.now() < at) {
      await this.sleep(Math.min(at - this.now(), IDLE_POLL_MS));
      if (!(await this.queue.acquire())) return;
    }
  }
}
