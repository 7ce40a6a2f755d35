import { monitorEventLoopDelay, IntervalHistogram } from 'node:perf_hooks';
import { guarded } from '../../common/process-faults';

/**
 * How late ferry media's event loop runs, for operators and the benchmark (/stats
 * `eventLoopLagP99Ms`, `eventLoopLagMaxMs`). The relay is one event loop: when it lags, every
 * call's audio is late by that much. Figures are over the last complete window (default 10 s).
 */
export class EventLoopLag {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private readonly timer: NodeJS.Timeout;
  private last = { p99Ms: 0, maxMs: 0 };

  /** `onRoll`: called with the new figures at the end of each window (a relay worker reports them). */
  constructor(windowMs = 10_000, private readonly onRoll?: (s: { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number }) => void) {
    this.histogram.enable();
    this.timer = setInterval(guarded('media.event-loop-lag', () => this.roll()), windowMs);
    this.timer.unref();
  }

  /** p99 and max lag in ms over the last complete window (0 before the first window ends). */
  snapshot(): { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number } {
    return { eventLoopLagP99Ms: this.last.p99Ms, eventLoopLagMaxMs: this.last.maxMs };
  }

  close(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }

  private roll(): void {
    // the histogram holds timer delays in nanoseconds
    this.last = { p99Ms: round(this.histogram.percentile(99) / 1e6), maxMs: round(this.histogram.max / 1e6) };
    this.histogram.reset();
    this.onRoll?.(this.snapshot());
  }
}

function round(ms: number): number {
  return Number.isFinite(ms) ? Math.round(ms * 10) / 10 : 0;
}
