import type { Clock, TimerHandle } from '../../common/clock';
import type { Logger } from '../../common/logger';

export interface TeardownRetryPolicy {
  /** delay before the first retry; doubled after each failure */
  baseMs: number;
  /** the longest delay between two attempts */
  maxMs: number;
  /** attempts after the first failure; then the failure is logged as abandoned */
  maxRetries: number;
}

export const DEFAULT_TEARDOWN_RETRY_POLICY: TeardownRetryPolicy = { baseMs: 1000, maxMs: 30_000, maxRetries: 8 };

interface PendingRetry {
  attempt: () => Promise<void>;
  meta: Record<string, unknown>;
  retries: number;
  timer: TimerHandle | undefined;
}

/**
 * Teardowns that failed (an element whose sockets would not close, a pipeline whose release threw):
 * each failure is logged on one line and counted, and the teardown is tried again on the injected
 * clock with doubling delays until it succeeds or `maxRetries` ran out (logged as abandoned). Nothing
 * that failed to release is silently forgotten. /stats shows `failures` and `pending`.
 */
export class TeardownRetries {
  private readonly retries = new Map<string, PendingRetry>();
  private failureCount = 0;
  private abandonedCount = 0;

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly policy: TeardownRetryPolicy = DEFAULT_TEARDOWN_RETRY_POLICY,
  ) {}

  /** `key` failed once (its first try, by the caller); log it and retry `attempt` later. A key already pending is kept as it is. */
  failed(key: string, err: unknown, attempt: () => Promise<void>, meta: Record<string, unknown> = {}): void {
    if (this.retries.has(key)) return; // its retry loop counts its own failures
    this.failureCount++;
    const pending: PendingRetry = { attempt, meta, retries: 0, timer: undefined };
    this.retries.set(key, pending);
    this.logger.error('teardown failed, will retry', { key, ...meta, error: errorText(err) });
    this.schedule(key, pending);
  }

  get pending(): number {
    return this.retries.size;
  }

  stats(): { failures: number; pending: number; abandoned: number } {
    return { failures: this.failureCount, pending: this.retries.size, abandoned: this.abandonedCount };
  }

  /** Shutdown: every pending teardown tried once more now; what still fails is logged as abandoned. */
  async flush(): Promise<void> {
    const all = [...this.retries.entries()];
    this.retries.clear();
    await Promise.all(all.map(async ([key, p]) => {
      p.timer?.cancel();
      try {
        await p.attempt();
        this.logger.info('teardown succeeded on retry', { key, ...p.meta, retries: p.retries + 1 });
      } catch (err) {
        this.failureCount++;
        this.abandonedCount++;
        this.logger.error('teardown abandoned', { key, ...p.meta, retries: p.retries + 1, error: errorText(err) });
      }
    }));
  }

  private schedule(key: string, p: PendingRetry): void {
    const delay = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** p.retries);
    p.timer = this.clock.setTimeout(() => {
      p.timer = undefined;
      p.retries++;
      p.attempt().then(
        () => {
          if (this.retries.get(key) !== p) return;
          this.retries.delete(key);
          this.logger.info('teardown succeeded on retry', { key, ...p.meta, retries: p.retries });
        },
        (err: unknown) => {
          if (this.retries.get(key) !== p) return;
          this.failureCount++;
          if (p.retries >= this.policy.maxRetries) {
            this.retries.delete(key);
            this.abandonedCount++;
            this.logger.error('teardown abandoned', { key, ...p.meta, retries: p.retries, error: errorText(err) });
            return;
          }
          this.logger.warn('teardown retry failed', { key, ...p.meta, retries: p.retries, error: errorText(err) });
          this.schedule(key, p);
        },
      );
    }, delay);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
