import os from 'node:os';

/**
 * `--nice <n>`: start the servers under test and the load workers with `nice -n <n>` (all their
 * threads inherit it), so that on a shared machine other people's processes disturb the measurement
 * less. rtpengine and ferry get the same treatment. run.ts passes the value down in
 * FERRY_BENCH_NICE; 0 or unset = plain start.
 */
export function benchNice(): number {
  const n = Number(process.env.FERRY_BENCH_NICE ?? '0');
  return Number.isInteger(n) ? n : 0;
}

/**
 * `[command, args]` to spawn at niceness n when one is set. `nice -n` adds to the spawning process's own
 * niceness (run.ts sets its own to n first), so the increment is n minus that: the servers and load workers
 * end at n, not at twice n (before 2026-12-06 15:00 UTC they ran at 2n: -10 for `--nice -5`).
 */
export function niced(command: string, args: readonly string[], ownNiceness = os.getPriority()): [string, string[]] {
  const n = benchNice();
  const increment = n - ownNiceness;
  return n === 0 || increment === 0 ? [command, [...args]] : ['nice', ['-n', String(increment), command, ...args]];
}
