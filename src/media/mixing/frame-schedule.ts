import type { Clock, TimerHandle } from '../../common/clock';

/** One frame every 20 ms. */
export const FRAME_MS = 20;
/** Frames run at once to catch up after a late timer; further behind, the schedule restarts (a gap, no burst). */
const MAX_CATCH_UP_FRAMES = 10;

/**
 * The 20 ms pacing of a mixer, on the injected clock: frame n of a run is due at start + (n + 1) * 20 ms;
 * a timer that fires late runs the frames it missed (up to MAX_CATCH_UP_FRAMES), and one that is later
 * than that restarts the run instead (counted in `restarts`). Runs only between start() and stop().
 */
export class FrameSchedule {
  private timer: TimerHandle | undefined;
  private runStart = 0;
  private framesInRun = 0;
  restarts = 0;

  constructor(
    private readonly clock: Clock,
    private readonly frame: () => void,
  ) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  start(): void {
    if (this.timer) return;
    this.runStart = this.clock.now();
    this.framesInRun = 0;
    this.timer = this.clock.setInterval(() => this.tick(), FRAME_MS);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private tick(): void {
    const now = this.clock.now();
    let due = Math.floor((now - this.runStart) / FRAME_MS);
    if (due - this.framesInRun > MAX_CATCH_UP_FRAMES) {
      this.restarts++;
      this.runStart = now - (this.framesInRun + 1) * FRAME_MS;
      due = this.framesInRun + 1;
    }
    while (this.framesInRun < due && this.timer) {
      this.framesInRun++;
      this.frame();
    }
  }
}
