/** Delivery counters of one receiver, behind /metrics. */
export class WebhookCounters {
  delivered = 0;
  /** failed attempts that will be tried again */
  retried = 0;
  readonly dropped = new Map<WebhookDropReason, number>();
  /** events waiting, as last seen by this gateway */
  queueLength = 0;

  drop(reason: WebhookDropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }
}

/**
 * queue-full: the receiver's queue was at its cap; expired: not delivered within maxAgeSeconds;
 * store-error: Redis did not take it; malformed: an unreadable queue entry.
 */
export type WebhookDropReason = 'queue-full' | 'expired' | 'store-error' | 'malformed';
export const webhookDropReasons: readonly WebhookDropReason[] = ['queue-full', 'expired', 'store-error', 'malformed'];

export function renderWebhookMetrics(counters: ReadonlyMap<string, WebhookCounters>): string[] {
  if (counters.size === 0) return [];
  const lines: string[] = [];
  const family = (name: string, type: string, help: string, value: (c: WebhookCounters) => number): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [receiver, c] of counters) lines.push(`${name}{receiver="${receiver}"} ${value(c)}`);
  };
  family('ferry_webhook_delivered_total', 'counter', 'Webhook events a receiver took (2xx), by receiver.', (c) => c.delivered);
  family('ferry_webhook_retried_total', 'counter', 'Webhook POSTs that failed (error, timeout, non-2xx) and will be tried again, by receiver.', (c) => c.retried);
  lines.push('# HELP ferry_webhook_dropped_total Webhook events given up, by receiver and reason (queue-full, expired, store-error, malformed).', '# TYPE ferry_webhook_dropped_total counter');
  for (const [receiver, c] of counters) {
    for (const reason of webhookDropReasons) lines.push(`ferry_webhook_dropped_total{receiver="${receiver}",reason="${reason}"} ${c.dropped.get(reason) ?? 0}`);
  }
  family('ferry_webhook_queue_length', 'gauge', 'Webhook events waiting for delivery, by receiver.', (c) => c.queueLength);
  return lines;
}
