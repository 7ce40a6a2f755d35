import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ferryMediaReadyPort } from '../helpers/ferry-media-ready';
import { loadMediaConfig } from '../../src/media/server/media-config';

/**
 * ferry media's main-loop watchdog (src/media/server/main-loop-watchdog.ts, docs/media-server.md,
 * "Main-loop watchdog"): a process whose main thread is stuck for FERRY_MEDIA_WATCHDOG_MS ends itself by
 * SIGKILL after one JSON line on stderr; a process whose loop runs is left alone; 0 turns it off.
 * Each case is a real child process: the watchdog kills the whole process, so it cannot run in this one.
 */

const ROOT = path.join(__dirname, '..', '..');
const FERRY = path.join(ROOT, 'bin', 'ferry');
const WATCHDOG_MODULE = path.join(ROOT, 'src', 'media', 'server', 'main-loop-watchdog.ts');

const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** The child's code: `mode` blocked (Atomics.wait for `blockMs`) or busy (timers for `activeMs`, then exit 0). */
function childSource(watchdogMs: number, mode: 'blocked' | 'busy', ms: number): string {
  return `
const { startMainLoopWatchdog } = require(${JSON.stringify(WATCHDOG_MODULE)});
startMainLoopWatchdog(${watchdogMs});
const mode = ${JSON.stringify(mode)};
const ms = ${ms};
if (mode === 'blocked') {
  process.stdout.write('blocking\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  process.stdout.write('unblocked\\n');
  process.exit(0);
} else {
  process.stdout.write('running\\n');
  const start = Date.now();
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    if (Date.now() - start < ms) return;
    clearInterval(timer);
    process.stdout.write('done ' + ticks + '\\n');
    process.exit(0);
  }, 20);
}
`;
}

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs the child to its end; rejects (and kills it) when it has not ended within `boundMs`. */
function runChild(source: string, boundMs: number, onStdout?: (child: ChildProcess, stdout: string) => void): Promise<Ended> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', source], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    onStdout?.(child, stdout);
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<Ended>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not end within ${boundMs} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, boundMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}

describe('media main-loop watchdog', { timeout: 60_000 }, () => {
  test('a main thread blocked past 1000 ms: one JSON line on stderr, then the process dies by SIGKILL', { timeout: 30_000 }, async () => {
    // blocked for 30 s: only the watchdog can end it within the 15 s bound
    const ended = await runChild(childSource(1000, 'blocked', 30_000), 15_000);
    assert.equal(ended.signal, 'SIGKILL', `killed (code ${ended.code}, stderr: ${ended.stderr})`);
    assert.match(ended.stdout, /^blocking$/m, 'the child reached its block');
    assert.doesNotMatch(ended.stdout, /unblocked/);
    const lines = ended.stderr.split('\n').filter((l) => l.includes('main thread stalled'));
    assert.equal(lines.length, 1, `one line: ${ended.stderr}`);
    const entry = JSON.parse(lines[0]!) as { component: string; message: string; stalledMs: number; level: string };
    assert.equal(entry.component, 'media');
    assert.equal(entry.message, 'main thread stalled: ending the process');
    assert.equal(entry.level, 'error');
    assert.ok(entry.stalledMs >= 1000 && entry.stalledMs < 10_000, `stalledMs ${entry.stalledMs}`);
  });

  test('positive control: a loop that keeps running for 3 s is not killed and exits 0 by itself', { timeout: 30_000 }, async () => {
    const ended = await runChild(childSource(1000, 'busy', 3000), 20_000);
    assert.deepEqual({ code: ended.code, signal: ended.signal }, { code: 0, signal: null }, ended.stderr);
    const ticks = Number(/^done (\d+)$/m.exec(ended.stdout)?.[1]);
    assert.ok(ticks >= 20, `its own timers ran (${ticks} ticks over 3 s)`);
    assert.doesNotMatch(ended.stderr, /main thread stalled/);
  });

  test('a whole-process pause (SIGSTOP 3.5 s, then SIGCONT: a suspended host) is not a stall: the resumed process runs on and exits 0', { timeout: 30_000 }, async () => {
    let stopped = false;
    const ended = await runChild(childSource(1000, 'busy', 5000), 20_000, (child, out) => {
      if (stopped || !/^running$/m.test(out)) return;
      stopped = true;
      child.kill('SIGSTOP');
      // the pause itself is the scenario: every thread of the child stands still for 3.5 x the limit
      setTimeout(() => child.kill('SIGCONT'), 3500);
    });
    assert.ok(stopped, 'the child was paused');
    assert.deepEqual({ code: ended.code, signal: ended.signal }, { code: 0, signal: null }, ended.stderr);
    assert.match(ended.stdout, /^done \d+$/m, 'it ran to its end after the pause');
    assert.ok(ended.elapsedMs >= 3500, `paused for real (${ended.elapsedMs} ms in all)`);
    assert.doesNotMatch(ended.stderr, /main thread stalled/);
  });

  test('FERRY_MEDIA_WATCHDOG_MS 0 = off: a main thread blocked 2.5 s is not killed and exits 0', { timeout: 30_000 }, async () => {
    const ended = await runChild(childSource(0, 'blocked', 2500), 20_000);
    assert.deepEqual({ code: ended.code, signal: ended.signal }, { code: 0, signal: null }, ended.stderr);
    assert.match(ended.stdout, /^unblocked$/m);
    assert.doesNotMatch(ended.stderr, /main thread stalled/);
  });

  test('FERRY_MEDIA_WATCHDOG_MS is read with the other settings: default 20000, 0 = off, under 1000 refused', { timeout: 10_000 }, () => {
    assert.equal(loadMediaConfig({}, {}).watchdogMs, 20000);
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_WATCHDOG_MS: '0' }).watchdogMs, 0);
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_WATCHDOG_MS: '1000' }).watchdogMs, 1000);
    assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_WATCHDOG_MS: '999' }), /FERRY_MEDIA_WATCHDOG_MS=999 must be 0 \(off\) or at least 1000/);
    assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_WATCHDOG_MS: 'soon' }), /FERRY_MEDIA_WATCHDOG_MS/);
  });

  test('ferry media refuses FERRY_MEDIA_WATCHDOG_MS under 1000 (other than 0) in one line', { timeout: 30_000 }, () => {
    const r = spawnSync(process.execPath, [FERRY, 'media'], {
      cwd: ROOT,
      env: { ...process.env, FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '1', FERRY_LOG_LEVEL: 'warn', FERRY_MEDIA_WATCHDOG_MS: '500' },
      encoding: 'utf8',
      timeout: 25_000,
    });
    assert.equal(r.status, 1, `exit code 1 (stderr: ${r.stderr})`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^ferry media: .*FERRY_MEDIA_WATCHDOG_MS/);
  });

  test('ferry media with FERRY_MEDIA_WATCHDOG_MS=1000 starts, answers /stats, and stops with exit 0 on SIGTERM', { timeout: 45_000 }, async () => {
    const child = spawn(process.execPath, [FERRY, 'media'], {
      cwd: ROOT,
      env: { ...process.env, FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_MEDIA_WORKERS: '1', FERRY_LOG_LEVEL: 'warn', FERRY_MEDIA_WATCHDOG_MS: '1000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const stderr: string[] = [];
    readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
    const port = await ferryMediaReadyPort(child, { timeoutMs: 30_000, log: () => stderr.join('\n') });
    const res = await fetch(`http://127.0.0.1:${port}/stats`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, stderr.join('\n'));
    children.delete(child);
    assert.ok(!stderr.some((l) => l.includes('main thread stalled')), stderr.join('\n'));
  });
});
