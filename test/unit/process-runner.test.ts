import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { systemClock } from '../../src/common/clock';
import { guarded, processFaultCounts } from '../../src/common/process-faults';
import { FORCED_EXIT_CODE, REPEATED_SIGNAL_WINDOW_MS } from '../../src/common/process-runner';
import { LineProcess } from '../helpers/line-process';
import { isRunning, waitUntilGone } from '../helpers/process-tree';

/**
 * The process runner's policy, on real processes (test/helpers/process-runner-child.ts): a signal
 * stops gracefully, a second signal forces exit, the watchdog forces a hung stop, a child whose
 * parent dies stops itself, and faults (stray rejection, uncaught exception, throwing guarded timer)
 * are counted while the process keeps running.
 */
const CHILD = path.join(__dirname, '..', 'helpers', 'process-runner-child.ts');
const started: LineProcess[] = [];
after(() => started.forEach((p) => p.kill('SIGKILL')));

function runnerChild(mode: 'graceful' | 'slow' | 'hang', env: Record<string, string> = {}): LineProcess {
  const p = LineProcess.spawn(process.execPath, ['--import', 'tsx', CHILD, mode], { FERRY_LOG_LEVEL: 'info', ...env });
  started.push(p);
  return p;
}

describe('process runner', { timeout: 60_000 }, () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    test(`${signal} stops the process gracefully (exit 0)`, async () => {
      const p = runnerChild('graceful');
      await p.waitForLine(/^ready \d+$/, 15_000);
      p.kill(signal);
      const exit = await p.exited;
      assert.equal(exit.code, 0, p.stderr.join('\n'));
      assert.ok(p.stdout.includes(`stopping ${signal}`), p.stdout.join('\n'));
      assert.ok(!p.stdout.includes('forced'));
    });
  }

  test('a second signal while the stop hangs forces exit at once', async () => {
    const p = runnerChild('hang', { RUNNER_WATCHDOG_MS: '30000' });
    await p.waitForLine(/^ready \d+$/, 15_000);
    const firstAt = Date.now();
    p.kill('SIGTERM');
    await p.waitForLine(/^stopping SIGTERM$/, 5000);
    // a signal right after the first is the same request; a later one means "force it"
    while (Date.now() - firstAt <= REPEATED_SIGNAL_WINDOW_MS + 50) await new Promise((r) => setTimeout(r, 20));
    // positive control: the hung stop keeps it running (the watchdog is 30 s away)
    assert.ok(isRunning(p.pid));
    const sentAt = Date.now();
    p.kill('SIGINT');
    const exit = await p.exited;
    assert.equal(exit.code, FORCED_EXIT_CODE);
    assert.ok(p.stdout.includes('forced'), 'forceStop ran before the exit');
    assert.ok(exit.at - sentAt < 2000, `forced exit took ${exit.at - sentAt} ms`);
  });

  test('one Ctrl-C delivered twice at once (terminal and npm) is one graceful stop, not a forced one', async () => {
    const p = runnerChild('slow', { RUNNER_STOP_MS: '400' });
    await p.waitForLine(/^ready \d+$/, 15_000);
    p.kill('SIGINT');
    p.kill('SIGINT');
    const exit = await p.exited;
    assert.equal(exit.code, 0, `graceful: ${p.stdout.join('\n')}`);
    assert.ok(!p.stdout.includes('forced'));
    assert.equal(p.stdout.filter((l) => l.startsWith('stopping')).length, 1, 'one stop');
  });

  test('the shutdown watchdog forces exit when the graceful stop hangs', async () => {
    const p = runnerChild('hang', { RUNNER_WATCHDOG_MS: '400' });
    await p.waitForLine(/^ready \d+$/, 15_000);
    const sentAt = Date.now();
    p.kill('SIGTERM');
    const exit = await p.exited;
    const took = exit.at - sentAt;
    assert.equal(exit.code, FORCED_EXIT_CODE);
    assert.ok(p.stdout.includes('forced'));
    assert.ok(took >= 350, `not before the watchdog (${took} ms)`);
    assert.ok(took < 3000, `watchdog bound held (${took} ms)`);
    assert.ok(p.stderr.some((l) => l.includes('ferry process stop forced') && l.includes('graceful stop exceeded 400 ms')), p.stderr.join('\n'));
  });

  test('a child whose parent is SIGKILLed stops itself (FERRY_PARENT_PID watch)', async () => {
    // a middle process spawns the runner child with FERRY_PARENT_PID = its own pid, then is killed
    const middle = LineProcess.spawn(process.execPath, [
      '-e',
      `const c = require('node:child_process').spawn(process.execPath, ['--import', 'tsx', ${JSON.stringify(CHILD)}, 'graceful'],
         { env: { ...process.env, FERRY_PARENT_PID: String(process.pid) }, stdio: ['ignore', 'inherit', 'inherit'] });
       setInterval(() => {}, 60000);`,
    ]);
    started.push(middle);
    const grandchild = Number((await middle.waitForLine(/^ready (\d+)$/, 15_000))[1]);
    try {
      assert.ok(isRunning(grandchild), 'positive control: it runs while its parent lives');
      const killedAt = Date.now();
      middle.kill('SIGKILL');
      const took = await waitUntilGone([grandchild], 3000, killedAt);
      assert.ok(middle.stdout.includes('stopping parent-exited'), middle.stdout.join('\n'));
      assert.ok(took < 3000);
    } finally {
      if (isRunning(grandchild)) process.kill(grandchild, 'SIGKILL');
    }
  });

  test('faults are logged and counted, the process keeps running', async () => {
    const p = runnerChild('graceful');
    await p.waitForLine(/^ready \d+$/, 15_000);
    p.kill('SIGUSR2');
    const m = await p.waitForLine(/^faults (\{.*\})$/, 5000);
    const counts = JSON.parse(m[1]!) as Record<string, number>;
    assert.deepEqual(counts, { unhandledRejection: 1, uncaughtException: 1, guardedCallback: 1 });
    const faultLines = p.stderr.filter((l) => l.includes('process fault survived')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(faultLines.map((l) => l.kind).sort(), ['guardedCallback', 'uncaughtException', 'unhandledRejection']);
    for (const l of faultLines) {
      assert.equal(typeof l.error, 'string');
      assert.ok(!String(l.error).includes('\n'), 'one line, no stack dump');
      assert.equal(l.component, 'runner-test-child');
    }
    assert.equal(faultLines.find((l) => l.kind === 'guardedCallback')?.callback, 'runner-test.throwing-timer');
    assert.ok(isRunning(p.pid), 'still running after three faults');
    p.kill('SIGTERM');
    assert.equal((await p.exited).code, 0, 'and still stops gracefully');
  });
});

describe('guarded()', () => {
  test('a throw or a rejection inside a guarded callback is counted, not thrown', { timeout: 30_000 }, async () => {
    const before = processFaultCounts().guardedCallback;
    const sync = guarded('test.sync', () => {
      throw new Error('boom');
    });
    assert.doesNotThrow(() => sync());
    assert.equal(processFaultCounts().guardedCallback, before + 1);
    let settled!: () => void;
    const done = new Promise<void>((r) => (settled = r));
    const asyncCb = guarded('test.async', async () => {
      settled();
      throw new Error('async boom');
    });
    asyncCb();
    await done;
    const deadline = Date.now() + 2000;
    while (processFaultCounts().guardedCallback < before + 2 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.equal(processFaultCounts().guardedCallback, before + 2);
    // positive control: a callback that does not throw is not counted and its arguments reach it
    let got = 0;
    guarded('test.ok', (n: number) => {
      got = n;
    })(7);
    assert.equal(got, 7);
    assert.equal(processFaultCounts().guardedCallback, before + 2);
  });

  test('systemClock timers are guarded: a throw in one is counted and the next timers still run', { timeout: 30_000 }, async () => {
    const before = processFaultCounts().guardedCallback;
    let ticks = 0;
    await new Promise<void>((resolve, reject) => {
      // systemClock's timers do not hold the event loop open: this deadline does
      const deadline = setTimeout(() => reject(new Error(`only ${ticks} ticks within 5 s`)), 5000);
      systemClock.setTimeout(() => {
        throw new Error('timer boom');
      }, 1);
      const interval = systemClock.setInterval(() => {
        ticks += 1;
        if (ticks === 3) {
          interval.cancel();
          clearTimeout(deadline);
          resolve();
        }
        if (ticks === 1) throw new Error('interval boom');
      }, 5);
    });
    assert.equal(ticks, 3, 'the interval kept running after its own throw');
    assert.equal(processFaultCounts().guardedCallback, before + 2);
  });
});
