/** RFC 3261 §17 / Table 4 timer base values (ms). Configurable so tests and lossy links can shorten them. */
export interface TimerConfig {
  t1: number;
  t2: number;
  t4: number;
}

export const DEFAULT_TIMERS: TimerConfig = { t1: 500, t2: 4000, t4: 5000 };
