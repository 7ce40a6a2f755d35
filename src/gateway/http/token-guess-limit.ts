import { sourceKeyer, type SourceKeyer } from '../../common/source-key';

/** Wrong bearer tokens one source may present within the window before it is locked out. */
export const TOKEN_FAILURES_PER_WINDOW = 30;
export const TOKEN_FAILURE_WINDOW_MS = 5 * 60_000;
/** How long a locked-out source gets 429 for every API request, whatever token it presents. */
export const TOKEN_LOCKOUT_MS = 5 * 60_000;

/**
 * Online guessing of the API token (FERRY_API_TOKEN): a source (an IPv4 address or an IPv6 /64,
 * src/common/source-key.ts) that presents 30 wrong bearer tokens within 5 minutes is locked out for 5
 * minutes: every API request from it is answered 429 without its token being looked at, so the lockout
 * is no oracle (a right token gets the same 429). A request without a token is not a guess and does not
 * count. At most `maxSources` sources are tracked (the least recently failed go first). A generated token
 * (32 random bytes) cannot be guessed anyway; this bounds a weak, chosen one to 30 guesses per 5 minutes.
 */
export class TokenGuessLimit {
  private readonly failures = new Map<string, { count: number; windowEnds: number; lockedUntil: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly keyOf: SourceKeyer = sourceKeyer(),
    private readonly maxSources = 10_000,
  ) {}

  /** ms left of `address`'s lockout (0: not locked out) */
  lockedFor(address: string): number {
    const e = this.failures.get(this.keyOf(address));
    return e ? Math.max(0, e.lockedUntil - this.now()) : 0;
  }

  /** records a wrong token from `address`; true when this failure locked the source out */
  failed(address: string): boolean {
    const key = this.keyOf(address);
    const now = this.now();
    const previous = this.failures.get(key);
    const e = previous && previous.windowEnds > now ? previous : { count: 0, windowEnds: now + TOKEN_FAILURE_WINDOW_MS, lockedUntil: 0 };
    e.count++;
    this.failures.delete(key);
    this.failures.set(key, e);
    if (this.failures.size > this.maxSources) this.failures.delete(this.failures.keys().next().value as string);
    if (e.count < TOKEN_FAILURES_PER_WINDOW || e.lockedUntil > now) return false;
    e.lockedUntil = now + TOKEN_LOCKOUT_MS;
    e.count = 0;
    e.windowEnds = e.lockedUntil + TOKEN_FAILURE_WINDOW_MS;
    return true;
  }

  get trackedSources(): number {
    return this.failures.size;
  }
}
