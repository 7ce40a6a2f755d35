/**
 * The gateway's back-off between attempts to reach a lost media server: doubling from `firstMs` up
 * to `maxMs` (100 ms .. 500 ms), starting over once the server is back. Short on purpose: new calls
 * are refused (503) while the media server is away, and calls whose pipeline died must be told
 * within 2 s of its return, so a server that returns must be found within `maxMs`.
 */
export class RedialSchedule {
  private attempt = 0;

  constructor(
    private readonly firstMs = 100,
    private readonly maxMs = 500,
  ) {}

  /** the wait before the next attempt */
  next(): number {
    const ms = Math.min(this.maxMs, this.firstMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return ms;
  }

  reset(): void {
    this.attempt = 0;
  }
}
