/**
 * A tiny process under src/common/process-runner.ts for the runner's tests:
 * `node --import tsx process-runner-child.ts <graceful|slow|hang>`. Prints `ready <pid>`; its graceful
 * stop prints `stopping <reason>` and then returns (graceful), returns after RUNNER_STOP_MS (slow,
 * default 400) or never returns (hang); a forced stop
 * prints `forced`. SIGUSR2 injects a stray rejection, an uncaught exception and a throwing guarded
 * timer, then prints `faults <counts JSON>` once all three are counted.
 * Watchdog: RUNNER_WATCHDOG_MS (default the runner's).
 */
import { createLogger } from '../../src/common/logger';
import { guarded, processFaultCounts } from '../../src/common/process-faults';
import { runProcess } from '../../src/common/process-runner';

const mode = process.argv[2] ?? 'graceful';
const watchdog = process.env.RUNNER_WATCHDOG_MS;
runProcess({
  name: 'runner-test-child',
  logger: createLogger('runner-test-child'),
  watchdogMs: watchdog ? Number(watchdog) : undefined,
  stop: async (reason) => {
    process.stdout.write(`stopping ${reason}\n`);
    if (mode === 'hang') await new Promise(() => undefined);
    if (mode === 'slow') await new Promise((r) => setTimeout(r, Number(process.env.RUNNER_STOP_MS ?? 400)));
  },
  forceStop: () => {
    process.stdout.write('forced\n');
  },
});
setInterval(() => undefined, 60_000);
process.on('SIGUSR2', () => {
  void Promise.reject(new Error('injected stray rejection'));
  setTimeout(() => {
    throw new Error('injected uncaught exception');
  }, 0);
  setTimeout(guarded('runner-test.throwing-timer', () => {
    throw new Error('injected throw in a guarded timer');
  }), 0);
  const report = setInterval(() => {
    const c = processFaultCounts();
    if (c.unhandledRejection >= 1 && c.uncaughtException >= 1 && c.guardedCallback >= 1) {
      clearInterval(report);
      process.stdout.write(`faults ${JSON.stringify(c)}\n`);
    }
  }, 5);
});
process.stdout.write(`ready ${process.pid}\n`);
