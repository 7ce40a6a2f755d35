/**
 * Runs tasks one at a time per key, in submission order: one connection's
 * requests are processed in FIFO order, at least per target object. Different keys run concurrently,
 * so one slow WebRTC negotiation does not hold up other calls on the same control connection.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>): void {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task).catch(() => undefined);
    this.tails.set(key, next);
    void next.then(() => {
      if (this.tails.get(key) === next) this.tails.delete(key);
    });
  }

  get size(): number {
    return this.tails.size;
  }
}
