/**
 * The memory baseline of a server under test, read once its resident memory has stopped growing. A
 * process that has just printed "ready" is still finishing its own start-up (loading and compiling code,
 * filling its first buffers): ferry media's RSS grows by ~9 MiB in the seconds after it is ready. Read
 * then, that growth would be divided among the calls of the first steps as "memory per call".
 */
export interface SettleOptions {
  /** Time between two readings. */
  intervalMs: number;
  /** Settled: the RSS moved by at most this many bytes over `stableForMs`. */
  stableBytes: number;
  stableForMs: number;
  /** Give up waiting after this long and take the last reading. */
  maxWaitMs: number;
}

export const DEFAULT_SETTLE: SettleOptions = { intervalMs: 500, stableBytes: 512 * 1024, stableForMs: 3000, maxWaitMs: 20_000 };

/**
 * Reads `rss()` every `intervalMs` until the readings of the last `stableForMs` lie within `stableBytes` of
 * each other (or `maxWaitMs` passed); returns the reading it settled on and how long it waited.
 */
export async function settledRss(
  rss: () => number,
  options: SettleOptions = DEFAULT_SETTLE,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<{ rssBytes: number; waitedMs: number; settled: boolean }> {
  const window = Math.max(1, Math.round(options.stableForMs / options.intervalMs));
  const readings: number[] = [rss()];
  let waitedMs = 0;
  while (waitedMs < options.maxWaitMs) {
    if (readings.length > window) {
      const last = readings.slice(-window - 1);
      if (Math.max(...last) - Math.min(...last) <= options.stableBytes) return { rssBytes: readings[readings.length - 1]!, waitedMs, settled: true };
    }
    await sleep(options.intervalMs);
    waitedMs += options.intervalMs;
    readings.push(rss());
  }
  return { rssBytes: readings[readings.length - 1]!, waitedMs, settled: false };
}
