/**
 * One log line per key per interval for events a stranger can repeat at will (refused connections,
 * refused creates): the first is logged at once, later ones within the interval are only counted and
 * reported as `suppressed` on the next line that is logged for that key.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly intervalMs: number, private readonly now: () => number = Date.now, private readonly maxKeys = 1000) {}

  /** undefined: do not log now; otherwise log, with how many were suppressed since the last line. */
  admit(key: string): { suppressed: number } | undefined {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    if (!entry && this.last.size >= this.maxKeys) {
      for (const [k, e] of this.last) if (t - e.at >= this.intervalMs) this.last.delete(k);
      if (this.last.size >= this.maxKeys) return undefined;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: t, suppressed: 0 });
    return { suppressed };
  }
}
