import type { CallEventBus } from '../../events/call-events';

/** One minute of the status page's charts. */
export interface MinuteSample {
  /** epoch ms of the minute's start */
  minute: number;
  /** the most live calls seen in that minute (undefined: the gateway took no sample then) */
  activeMax?: number;
  /** calls this gateway ended in that minute, by end reason */
  ended: Record<string, number>;
}

const MINUTE = 60_000;
/** end reasons kept apart per minute; more distinct reasons in one minute are counted as `other` */
const MAX_REASONS = 24;

/**
 * The last hour of this gateway, a minute at a time, for the status page's charts: a ring buffer of
 * 60 per-minute samples (live calls, most seen; ends by reason from `call.ended` on the bus). Memory
 * is fixed: 60 entries, each with at most MAX_REASONS reasons.
 */
export class StatusHistory {
  private readonly ring: MinuteSample[] = [];
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly now: () => number, readonly minutes = 60) {}

  /** counts this gateway's call ends from the bus */
  start(events: CallEventBus): void {
    this.unsubscribe = events.subscribe((e) => {
      if (e.type === 'call.ended') this.noteEnded(String((e.data as { reason?: unknown }).reason ?? 'failed'), e.at);
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private bucket(at: number): MinuteSample {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const last = this.ring[this.ring.length - 1];
    if (last && last.minute === minute) return last;
    if (last && minute < last.minute) {
      // a late event for an earlier minute still in the window
      return this.ring.find((s) => s.minute === minute) ?? last;
    }
    const s: MinuteSample = { minute, ended: {} };
    this.ring.push(s);
    while (this.ring.length > this.minutes) this.ring.shift();
    return s;
  }

  noteActive(count: number, at = this.now()): void {
    const s = this.bucket(at);
    s.activeMax = Math.max(s.activeMax ?? 0, count);
  }

  noteEnded(reason: string, at = this.now()): void {
    const s = this.bucket(at);
    const key = /^[a-z0-9-]{1,40}$/.test(reason) ? reason : 'other';
    const use = key in s.ended || Object.keys(s.ended).length < MAX_REASONS ? key : 'other';
    s.ended[use] = (s.ended[use] ?? 0) + 1;
  }

  /** the last `minutes` minutes up to now, oldest first, one entry per minute (empty minutes included) */
  snapshot(at = this.now()): MinuteSample[] {
    const current = Math.floor(at / MINUTE) * MINUTE;
    const byMinute = new Map(this.ring.map((s) => [s.minute, s]));
    const out: MinuteSample[] = [];
    for (let i = this.minutes - 1; i >= 0; i--) {
      const minute = current - i * MINUTE;
      const s = byMinute.get(minute);
      out.push(s ? { minute, ...(s.activeMax !== undefined ? { activeMax: s.activeMax } : {}), ended: { ...s.ended } } : { minute, ended: {} });
    }
    return out;
  }
}
