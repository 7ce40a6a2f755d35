/**
 * A mergeable histogram of non-negative microsecond values with ~5 % wide buckets, so workers can
 * send their counts to the orchestrator and percentiles can be taken over the union.
 */
const GROWTH = 1.05;
const BUCKETS = 400; // 1.05^400 us is far beyond any latency we could see
const LOG_GROWTH = Math.log(GROWTH);

export class LogHistogram {
  readonly counts: number[];
  total = 0;

  constructor(counts?: readonly number[]) {
    this.counts = counts ? [...counts] : new Array<number>(BUCKETS).fill(0);
    this.total = this.counts.reduce((a, b) => a + b, 0);
  }

  record(valueUs: number): void {
    const v = valueUs < 1 ? 1 : valueUs;
    let i = Math.floor(Math.log(v) / LOG_GROWTH);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.counts[i]! += 1;
    this.total += 1;
  }

  merge(other: { counts: readonly number[] }): void {
    for (let i = 0; i < BUCKETS; i++) {
      const c = other.counts[i] ?? 0;
      this.counts[i]! += c;
      this.total += c;
    }
  }

  /** The value (us, bucket upper bound) at percentile p (0..100); undefined when empty. */
  percentile(p: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.pow(GROWTH, i + 1);
    }
    return Math.pow(GROWTH, BUCKETS);
  }
}

/** Exact percentile over a list of numbers (nearest rank); undefined for an empty list. */
export function percentileOf(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}
