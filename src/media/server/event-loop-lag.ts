import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { guarded } from '../../common/process-faults';

/** How often the loop is sampled (ms): a timer that records how late it fires. */
const SAMPLE_MS = 10;
/** The window is kept as this many slices, so it slides by one slice instead of jumping by a whole window. */
const SLICES = 10;

/**
 * How late ferry media's event loop runs, for operators and the benchmark (/stats
 * `eventLoopLagP99Ms`, `eventLoopLagMaxMs`). The relay is one event loop: when it lags, every
 * call's audio is late by that much.
 *
 * A timer every 10 ms records how much later than due it ran (the time the loop was busy elsewhere:
 * relaying, a garbage collection, a burst of call set-ups), not the interval itself, so a quiet loop
 * reads close to 0. (`perf_hooks.monitorEventLoopDelay`, used before, records the interval between its
 * timer's runs: its figures carry the 10 ms resolution on top of the lag.) The figures are over the
 * last `windowMs` (default 10 s) up to the last completed tenth of it, a window that slides every
 * tenth, so a read right after a busy period (say, 100 calls being set up) shows that period for one
 * window length and no longer, whenever the window happened to start.
 */
export class EventLoopLag {
  private readonly sliceMs: number;
  /** The completed slices of the window, oldest first (at most SLICES). */
  private readonly slices: RecordableHistogram[] = [];
  private current: RecordableHistogram = createHistogram();
  private currentEndsAt: number;
  private readonly merged: RecordableHistogram = createHistogram();
  private expected: number;
  private readonly sampler: NodeJS.Timeout;
  private readonly rollTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private cached: { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number } | undefined;
  /** Samples taken so far (tests wait for the first). */
  samples = 0;

  /** `onRoll`: called with the figures every `windowMs` (a relay worker reports them). */
  constructor(windowMs = 10_000, onRoll?: (s: { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number }) => void) {
    this.sliceMs = Math.max(SAMPLE_MS, windowMs / SLICES);
    const now = performance.now();
    this.currentEndsAt = now + this.sliceMs;
    this.expected = now + SAMPLE_MS;
    this.sampler = setTimeout(this.tick, SAMPLE_MS);
    this.sampler.unref();
    if (onRoll) {
      this.rollTimer = setInterval(guarded('media.event-loop-lag', () => onRoll(this.snapshot())), windowMs);
      this.rollTimer.unref();
    }
  }

  /** p99 and max lag in ms over the window (0 before its first tenth completed). */
  snapshot(): { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number } {
    if (this.cached) return this.cached;
    if (this.slices.length === 0) return { eventLoopLagP99Ms: 0, eventLoopLagMaxMs: 0 };
    const m = this.merged;
    m.reset();
    for (const s of this.slices) m.add(s);
    this.cached = { eventLoopLagP99Ms: round(m.percentile(99) / 1000), eventLoopLagMaxMs: round(m.max / 1000) };
    return this.cached;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.sampler);
    if (this.rollTimer) clearInterval(this.rollTimer);
  }

  private readonly tick = (): void => {
    if (this.closed) return;
    const now = performance.now();
    // µs late (at least 1: a histogram records positive integers)
    this.current.record(Math.max(1, Math.round((now - this.expected) * 1000)));
    this.samples++;
    if (now >= this.currentEndsAt) this.completeSlice(now);
    this.expected = now + SAMPLE_MS;
    this.sampler.refresh();
  };

  private completeSlice(now: number): void {
    const reused = this.slices.length >= SLICES ? this.slices.shift()! : createHistogram();
    this.slices.push(this.current);
    reused.reset();
    this.current = reused;
    this.currentEndsAt = now + this.sliceMs;
    this.cached = undefined;
  }
}

function round(ms: number): number {
  return Number.isFinite(ms) ? Math.round(ms * 10) / 10 : 0;
}
