/** What a KeyedQueue does with a task that failed: its owner logs it (the queue goes on with the next task). */
export type KeyedTaskErrorHandler = (key: string, err: unknown) => void;

/**
 * Runs tasks one at a time per key, in submission order: one connection's
 * requests are processed in FIFO order, at least per target object. Different keys run concurrently,
 * so one slow WebRTC negotiation does not hold up other calls on the same control connection.
 * A task that throws or rejects does not stop its key's queue, and its error is handed to `onError`
 * (required: a queue cannot be built that drops errors).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly onError: KeyedTaskErrorHandler) {}

  run(key: string, task: () => Promise<void>): void {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task).catch((err: unknown) => this.report(key, err));
    this.tails.set(key, next);
    void next.then(() => {
      if (this.tails.get(key) === next) this.tails.delete(key);
    });
  }

  get size(): number {
    return this.tails.size;
  }

  private report(key: string, err: unknown): void {
    try {
      this.onError(key, err);
    } catch {
      // the handler itself failed (a logger that throws): nothing more can be done for this task
    }
  }
}
