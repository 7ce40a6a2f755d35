import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { SupervisedChild } from '../../src/cli/supervisor/child-process-supervisor';
import { parentDeathSignalAvailable } from '../../src/cli/supervisor/parent-death-signal';
import { stopChildrenInOrder } from '../../src/cli/supervisor/stop-children';
import { LineProcess } from '../helpers/line-process';
import { isRunning, waitUntilGone } from '../helpers/process-tree';

/**
 * The supervisor runs any program (not only ferry parts): readiness from an output line, restart
 * with back-off when it dies, no restart after stop(), and the program dies with its supervisor even
 * when the supervisor is SIGKILLed (parent-death signal through setpriv).
 */
const HOST = path.join(__dirname, '..', 'helpers', 'supervisor-host.ts');
const cleanup: (() => void)[] = [];
after(() => cleanup.forEach((c) => c()));

describe('child process supervisor', { timeout: 60_000 }, () => {
  test('any command: ready on its line, restarted after it dies, not after stop()', async () => {
    const out: string[] = [];
    const child = new SupervisedChild(
      {
        name: 'echoer',
        command: process.execPath,
        args: ['-e', "console.log('listening on ' + process.pid); setInterval(() => {}, 60000)"],
        ready: (line) => {
          const m = /^listening on (\d+)$/.exec(line);
          return m ? { pid: Number(m[1]) } : undefined;
        },
      },
      (l) => out.push(l),
    );
    cleanup.push(() => child.kill());
    const info = await child.start(15_000);
    const firstPid = child.pid!;
    assert.equal(info.pid, firstPid, 'readiness info parsed from its line');
    assert.ok(isRunning(firstPid));
    const readyAgain = once(child, 'ready');
    process.kill(firstPid, 'SIGKILL');
    const [again] = (await readyAgain) as [{ pid: number }]; // bounded by the suite's timeout
    assert.notEqual(again.pid, firstPid);
    assert.equal(child.pid, again.pid);
    assert.ok(out.some((l) => l.startsWith('[echoer] exited unexpectedly (SIGKILL); restarting')), out.join('\n'));
    // the positive control of "no restart after stop()": an identical supervised program, killed once the
    // first one is stopped and gone, is restarted (back-off, start-up, ready line) in the same window
    const control = new SupervisedChild(
      {
        name: 'control',
        command: process.execPath,
        args: ['-e', "console.log('listening on ' + process.pid); setInterval(() => {}, 60000)"],
        ready: (line) => {
          const m = /^listening on (\d+)$/.exec(line);
          return m ? { pid: Number(m[1]) } : undefined;
        },
      },
      (l) => out.push(l),
    );
    cleanup.push(() => control.kill());
    await control.start(15_000);
    const secondPid = child.pid!;
    await child.stop(2000);
    await waitUntilGone([secondPid], 2000);
    const controlAgain = once(control, 'ready');
    process.kill(control.pid!, 'SIGKILL');
    await controlAgain;
    assert.equal(child.pid, undefined, 'not restarted after stop()');
    await control.stop(2000);
  });

  test('a supervised program dies with its supervisor, SIGKILL of the supervisor included', async () => {
    assert.ok(parentDeathSignalAvailable(), 'setpriv --pdeathsig works on this machine');
    const host = LineProcess.spawn(process.execPath, ['--import', 'tsx', HOST]);
    cleanup.push(() => host.kill('SIGKILL'));
    const pid = Number((await host.waitForLine(/^child (\d+)$/, 15_000))[1]);
    cleanup.push(() => isRunning(pid) && process.kill(pid, 'SIGKILL'));
    assert.ok(isRunning(pid), 'positive control: the program runs while its supervisor lives');
    const killedAt = Date.now();
    host.kill('SIGKILL');
    const took = await waitUntilGone([pid], 2000, killedAt);
    assert.ok(took < 2000, `gone ${took} ms after the supervisor's SIGKILL`);
  });

  test('stopChildrenInOrder: group by group, a child deaf to SIGTERM is SIGKILLed within the budget', async () => {
    const sleeper = (name: string, ignoreTerm: boolean): SupervisedChild => {
      const c = new SupervisedChild(
        {
          name,
          command: 'sh',
          args: ['-c', `${ignoreTerm ? "trap '' TERM; " : ''}echo up; exec sleep 300`],
          ready: (l) => (l === 'up' ? {} : undefined),
        },
        () => undefined,
      );
      cleanup.push(() => c.kill());
      return c;
    };
    const deaf = sleeper('deaf', true);
    const polite = sleeper('polite', false);
    await Promise.all([deaf.start(10_000), polite.start(10_000)]);
    const exits: Record<string, number> = {};
    let deafSignal: string | null = null;
    deaf.once('exit', (_code: number | null, signal: string | null) => {
      exits.deaf = Date.now();
      deafSignal = signal;
    });
    polite.once('exit', () => (exits.polite = Date.now()));
    const t0 = Date.now();
    await stopChildrenInOrder([[deaf], [polite]], 800);
    const took = Date.now() - t0;
    assert.ok(exits.deaf && exits.polite, 'both exited');
    assert.equal(deafSignal, 'SIGKILL', 'SIGTERM alone did not stop it (positive control: it really is deaf)');
    assert.ok(exits.deaf - t0 >= 300, `the deaf child got its grace share first (${exits.deaf - t0} ms)`);
    assert.ok(exits.polite >= exits.deaf, 'the second group is stopped after the first');
    assert.ok(took < 1500, `all stopped within the budget (+ slack): ${took} ms`);
  });
});
