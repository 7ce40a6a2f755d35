/** A rate per source: `perSecond` on average, up to `burst` at once after a quiet spell. */
export interface SourceRate {
  perSecond: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per source key (src/common/source-key.ts): each source may take `burst` at once and
 * then `perSecond` on average. Used to bound how many new connections needing a TLS handshake (ECDHE and
 * a signature: about a millisecond of CPU each) one source may open, however quickly it drops them again.
 *
 * Memory is bounded: a bucket that has refilled is the same as no bucket and is dropped (each `take`
 * retires up to two of the least recently used), and at most `maxSources` are kept; past that the least
 * recently used goes first (it refills within burst / perSecond seconds anyway).
 */
export class SourceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rate: SourceRate,
    private readonly now: () => number,
    readonly maxSources = 10_000,
  ) {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1)) throw new Error(`a source rate needs perSecond > 0 and burst >= 1 (got ${rate.perSecond}/s, burst ${rate.burst})`);
  }

  /** One for `key`: true when its bucket had a token (taken), false when the source is over its rate. */
  take(key: string): boolean {
    const t = this.now();
    this.retireRefilled(t, 2);
    const bucket = this.buckets.get(key);
    const tokens = bucket ? this.level(bucket, t) : this.rate.burst;
    // most recently used last: the map's first entries are the ones to retire or evict
    this.buckets.delete(key);
    const allowed = tokens >= 1;
    this.buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: t });
    if (this.buckets.size > this.maxSources) this.buckets.delete(this.buckets.keys().next().value as string);
    return allowed;
  }

  /** Sources with a bucket that has not refilled yet (at most `maxSources`). */
  get tracked(): number {
    return this.buckets.size;
  }

  private level(bucket: Bucket, t: number): number {
    return Math.min(this.rate.burst, bucket.tokens + (Math.max(0, t - bucket.at) * this.rate.perSecond) / 1000);
  }

  private retireRefilled(t: number, upTo: number): void {
    for (const [key, bucket] of this.buckets) {
      if (upTo-- <= 0 || this.level(bucket, t) < this.rate.burst) return;
      this.buckets.delete(key);
    }
  }
}
