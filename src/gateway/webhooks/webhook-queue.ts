/** One event waiting for a receiver: the exact body that is signed and POSTed. */
export interface QueuedWebhook {
  /** the event id (X-Ferry-Event-Id) */
  id: string;
  type: string;
  /** epoch ms it was queued (its age decides when it is dropped) */
  queuedAt: number;
  body: string;
}

/**
 * One receiver's queue, oldest first. Delivery is in order: the head is POSTed until it is taken
 * (or too old), then removed. Only the holder of the receiver's lease delivers (acquire), so two
 * gateways sharing a Redis queue never POST the same event at the same time.
 */
export interface WebhookQueue {
  readonly kind: 'memory' | 'redis';
  /** false when the queue is full (the event is dropped) */
  push(item: QueuedWebhook): Promise<boolean>;
  /** `malformed`: the head was unreadable and has been removed (counted as dropped) */
  head(): Promise<{ item: QueuedWebhook | undefined; length: number; malformed?: boolean }>;
  /** removes the head if it is still this event */
  remove(id: string): Promise<void>;
  /** true while this gateway may deliver (takes or renews the lease) */
  acquire(): Promise<boolean>;
  release(): Promise<void>;
}

/** In-process queue: lost when the gateway stops (docs/webhooks.md). */
export class MemoryWebhookQueue implements WebhookQueue {
  readonly kind = 'memory' as const;
  private readonly items: QueuedWebhook[] = [];

  constructor(private readonly maxQueue: number) {}

  async push(item: QueuedWebhook): Promise<boolean> {
    if (this.items.length >= this.maxQueue) return false;
    this.items.push(item);
    return true;
  }

  async head(): Promise<{ item: QueuedWebhook | undefined; length: number }> {
    return { item: this.items[0], length: this.items.length };
  }

  async remove(id: string): Promise<void> {
    if (this.items[0]?.id === id) this.items.shift();
  }

  async acquire(): Promise<boolean> {
    return true;
  }

  async release(): Promise<void> {}
}
