import { Clock } from '../../common/clock';

/**
 * How long to hold the answer to a failed authentication: nothing for a source's first failure in
 * its window (a typo), then `baseMs`, doubling with each further failure, at most `maxMs`. It slows
 * password guessing down before the lockout (SipAuthenticator) stops it. Kept in this gateway's
 * memory only, for at most `maxSources` sources (the least recently failed are forgotten first).
 * A source is the key the caller counts by: an IPv4 address or an IPv6 prefix (src/common/source-key.ts),
 * never a bare IPv6 address, or a guesser would get a fresh back-off from each address of its /64.
 */
export class FailureBackoff {
  private readonly recent = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
    private readonly maxSources = 10_000,
  ) {}

  /** records a failure from `source` (a source key); returns how long to hold its answer (ms) */
  delayFor(source: string): number {
    if (this.baseMs <= 0) return 0;
    const now = this.clock.now();
    const previous = this.recent.get(source);
    const entry = previous && previous.until > now ? previous : { count: 0, until: now + this.windowMs };
    entry.count++;
    this.recent.delete(source);
    this.recent.set(source, entry);
    if (this.recent.size > this.maxSources) this.recent.delete(this.recent.keys().next().value as string);
    return entry.count <= 1 ? 0 : Math.min(this.maxMs, this.baseMs * 2 ** (entry.count - 2));
  }

  /** wait `ms` on the clock */
  hold(ms: number): Promise<void> {
    return ms <= 0 ? Promise.resolve() : new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }
}
