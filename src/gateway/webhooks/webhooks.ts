import Redis from 'ioredis';
import { Logger } from '../../common/logger';
import { CallEvent, CallEventBus } from '../events/call-events';
import { ReceiverDelivery } from './receiver-delivery';
import { RedisWebhookQueue } from './redis-webhook-queue';
import { WebhookReceiver } from './webhook-config';
import { renderWebhookMetrics, WebhookCounters } from './webhook-counters';
import { MemoryWebhookQueue, WebhookQueue } from './webhook-queue';
import { SendOutcome } from './webhook-sender';

export interface WebhooksOptions {
  receivers: WebhookReceiver[];
  events: CallEventBus;
  log: Logger;
  /** the gateway's instance id: it holds the receivers' delivery leases under it */
  instanceId: string;
  /** queue in Redis (kept across restarts, shared by the gateways) when set; in memory otherwise */
  redisUrl?: string;
  redisPrefix?: string;
  now?: () => number;
  /** replaces the HTTP POST (tests) */
  send?: (receiver: WebhookReceiver, item: { id: string; type: string; body: string }, nowMs: number, attempt: number, signal?: AbortSignal) => Promise<SendOutcome>;
}

/**
 * Webhook delivery (docs/webhooks.md): every bus event a receiver asked for is queued for it at
 * once (in Redis or in memory; the publisher never waits), and one ReceiverDelivery per receiver
 * POSTs its queue. Counters for /metrics per receiver.
 */
export class Webhooks {
  private readonly deliveries: ReceiverDelivery[] = [];
  readonly counters = new Map<string, WebhookCounters>();
  private readonly redis: Redis | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: WebhooksOptions) {
    if (opts.redisUrl && opts.receivers.length > 0) {
      this.redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2, commandTimeout: 2000, retryStrategy: (n: number) => Math.min(n * 100, 2000) });
      this.redis.on('error', () => {});
    }
    for (const receiver of opts.receivers) {
      const counters = new WebhookCounters();
      this.counters.set(receiver.name, counters);
      // the lease outlives one POST with room to spare: no two gateways POST one event at once
      const leaseMs = receiver.timeoutMs * 2 + 5000;
      const queue: WebhookQueue = this.redis
        ? new RedisWebhookQueue(this.redis, opts.redisPrefix ?? 'ferry:', receiver.name, opts.instanceId, leaseMs, receiver.maxQueue)
        : new MemoryWebhookQueue(receiver.maxQueue);
      this.deliveries.push(
        new ReceiverDelivery(receiver, queue, counters, opts.log, { ...(opts.now ? { now: opts.now } : {}), ...(opts.send ? { send: opts.send } : {}) }),
      );
    }
  }

  get queueKind(): 'memory' | 'redis' {
    return this.redis ? 'redis' : 'memory';
  }

  start(): void {
    if (this.deliveries.length === 0) return;
    this.unsubscribe = this.opts.events.subscribe((e) => this.enqueue(e));
    for (const d of this.deliveries) d.start();
    this.opts.log.info('webhooks started', { receivers: this.deliveries.map((d) => d.receiver.name).join(','), queue: this.queueKind });
  }

  /** synchronous for the publisher: the body is made here, the queue write runs on its own */
  private enqueue(e: CallEvent): void {
    const body = JSON.stringify(e);
    const now = this.opts.now?.() ?? Date.now();
    for (const d of this.deliveries) {
      if (d.receiver.events && !d.receiver.events.includes(e.type)) continue;
      d.queue.push({ id: e.id, type: e.type, queuedAt: now, body }).then(
        (pushed) => {
          if (pushed) d.wake();
          else {
            d.counters.drop('queue-full');
            this.opts.log.warn('webhook event dropped: queue full', { receiver: d.receiver.name, eventId: e.id, eventType: e.type, maxQueue: d.receiver.maxQueue });
          }
        },
        (err: Error) => {
          d.counters.drop('store-error');
          this.opts.log.warn('webhook event dropped: queue unavailable', { receiver: d.receiver.name, eventId: e.id, eventType: e.type, err: err.message });
        },
      );
    }
  }

  metricLines(): string[] {
    return renderWebhookMetrics(this.counters);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all(this.deliveries.map((d) => d.stop()));
    if (this.redis) await this.redis.quit().catch(() => this.redis?.disconnect());
  }
}
