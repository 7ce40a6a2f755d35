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

/** `[command, args]` to spawn, wrapped in `nice -n <n>` when a niceness is set. */
export function niced(command: string, args: readonly string[]): [string, string[]] {
  const n = benchNice();
  return n === 0 ? [command, [...args]] : ['nice', ['-n', String(n), command, ...args]];
}
