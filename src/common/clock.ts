/**
 * Time source for every timer that decides something (SIP transaction timers, media liveness,
 * leases). Production uses `systemClock`; tests inject a `FakeClock` and advance it, so a
 * 30-minute call or a 10-minute mute runs in milliseconds instead of a long sleep.
 */
import { guarded } from './process-faults';

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/**
 * Real time. Its callbacks are guarded (src/common/process-faults.ts): a throw in a timer is logged
 * and counted, never fatal to the process.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(guarded(`timer.${fn.name || 'timeout'}`, fn), ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(guarded(`timer.${fn.name || 'interval'}`, fn), ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  },
};

interface Scheduled {
  at: number;
  every: number | undefined;
  fn: () => void;
  cancelled: boolean;
  seq: number;
}

/** A manually advanced clock. `advance(ms)` runs due timers in time order, including ones they schedule. */
export class FakeClock implements Clock {
  private current: number;
  private queue: Scheduled[] = [];
  private seq = 0;

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, Math.max(1, ms));
  }

  /** Number of timers still pending (tests assert this returns to 0: no timer outlives its owner). */
  pending(): number {
    return this.queue.filter((s) => !s.cancelled).length;
  }

  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      this.queue = this.queue.filter((s) => !s.cancelled);
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.queue[0];
      if (!next || next.at > target) break;
      this.current = next.at;
      if (next.every !== undefined) next.at += next.every;
      else next.cancelled = true;
      next.fn();
    }
    this.current = target;
  }

  private schedule(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const s: Scheduled = { at: this.current + Math.max(0, ms), every, fn, cancelled: false, seq: this.seq++ };
    this.queue.push(s);
    return { cancel: () => { s.cancelled = true; } };
  }
}
