import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LineProcess } from '../helpers/line-process';
import { descendants, isRunning, waitUntilGone } from '../helpers/process-tree';
import { pollPause } from '../helpers/wait-for';

/**
 * F6: SIGHUP (the terminal closed) or SIGKILL of `ferry start` leaves no ferry process behind:
 * within 2 s every child it started (sip, media, gateway, and any store it runs) is gone and the
 * ports are free again for the next `npm start`. Children are found from the ready line's pids and
 * from /proc (every descendant of ferry start); they run before the signal (positive control).
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
const FREE_PORTS = {
  FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
};
const BOUND_MS = 2000;
const started: LineProcess[] = [];
const leftovers = new Set<number>();
const dataRoot = mkdtempSync(path.join(tmpdir(), 'ferry-f6-'));
after(() => {
  rmSync(dataRoot, { recursive: true, force: true });
  started.forEach((p) => p.kill('SIGKILL'));
  for (const pid of leftovers) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
});

interface StartReady {
  http: number;
  sip: number;
  ws: number;
  control: number;
  media: number;
  /** sip, media, gateway, and redis when ferry start runs a private store */
  pids: Record<string, number>;
}

interface StartedFerry {
  p: LineProcess;
  ready: StartReady;
  tree: { pid: number; comm: string }[];
}

async function startFerry(): Promise<StartedFerry> {
  // its own data directory (the private store of `ferry start` lives there)
  const dataDir = mkdtempSync(path.join(dataRoot, 'data-'));
  const p = LineProcess.spawn(process.execPath, [BIN, 'start'], { ...FREE_PORTS, NODE_ENV: 'test', FERRY_LOG_LEVEL: 'warn', FERRY_DATA_DIR: dataDir });
  started.push(p);
  const ready = JSON.parse((await p.waitForLine(/^ferry ready (\{.*\})$/, 40_000))[1]!) as StartReady;
  const tree = descendants(p.pid);
  for (const d of tree) leftovers.add(d.pid);
  return { p, ready, tree };
}

/** `npm start` as a terminal runs it: its own process group, which the terminal signals as a whole */
async function startUnderNpm(): Promise<{ npm: LineProcess; ready: StartReady; tree: { pid: number; comm: string }[] }> {
  const dataDir = mkdtempSync(path.join(dataRoot, 'data-'));
  const npm = new LineProcess(spawn('npm', ['start', '--silent'], {
    cwd: path.join(__dirname, '..', '..'),
    env: { ...process.env, ...FREE_PORTS, NODE_ENV: 'test', FERRY_LOG_LEVEL: 'warn', FERRY_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  }));
  started.push(npm);
  const ready = JSON.parse((await npm.waitForLine(/^ferry ready (\{.*\})$/, 60_000))[1]!) as StartReady;
  const tree = descendants(npm.pid);
  for (const d of tree) leftovers.add(d.pid);
  return { npm, ready, tree };
}

function tcpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function assertTreeGoneAfter(signal: 'SIGHUP' | 'SIGKILL', { p, ready, tree }: StartedFerry): Promise<number> {
  const pids = Object.values(ready.pids);
  for (const part of ['sip', 'media', 'gateway']) assert.ok(ready.pids[part], `${part} pid on the ready line`);
  // with no REDIS_URL, ferry start may run its own store (a redis-server child): it must go too
  const treePids = tree.map((d) => d.pid);
  for (const pid of pids) assert.ok(treePids.includes(pid), `ready-line pid ${pid} is a descendant of ferry start (${JSON.stringify(tree)})`);
  const all = [...new Set([...pids, ...treePids])];
  for (const pid of all) assert.ok(isRunning(pid), `positive control: ${pid} runs before ${signal}`);
  assert.equal(await tcpPortFree(ready.http), false, 'positive control: the HTTP port is taken while ferry runs');
  const sentAt = Date.now();
  p.kill(signal);
  const took = await waitUntilGone([p.pid, ...all], BOUND_MS, sentAt);
  for (const port of [ready.http, ready.control, ready.media, ready.ws, ready.sip]) {
    assert.ok(await tcpPortFree(port), `port ${port} free again after ${signal}`);
  }
  return took;
}

describe('F6: ferry start stopped by the terminal or killed', { timeout: 120_000 }, () => {
  // the two ferry starts of the SIGHUP and SIGKILL scenarios start side by side, both ready before either signal
  let forSighup: StartedFerry;
  let forSigkill: StartedFerry;
  before(async () => {
    [forSighup, forSigkill] = await Promise.all([startFerry(), startFerry()]);
  });

  test('F6: SIGHUP of ferry start → no ferry process remains after 2 s, ports free', async () => {
    const took = await assertTreeGoneAfter('SIGHUP', forSighup);
    process.stdout.write(`# F6 SIGHUP: whole tree gone ${took} ms after the signal\n`);
  });

  test('F6: SIGKILL of ferry start → no ferry process remains after 2 s, ports free', async () => {
    const took = await assertTreeGoneAfter('SIGKILL', forSigkill);
    process.stdout.write(`# F6 SIGKILL: whole tree gone ${took} ms after the signal\n`);
  });

  test('F6: SIGHUP while ferry start is still starting → graceful stop (exit 0), nothing remains after 2 s', async () => {
    const dataDir = mkdtempSync(path.join(dataRoot, 'data-'));
    const p = LineProcess.spawn(process.execPath, [BIN, 'start'], { ...FREE_PORTS, NODE_ENV: 'test', FERRY_LOG_LEVEL: 'warn', FERRY_DATA_DIR: dataDir });
    started.push(p);
    // wait (polling /proc) until sip and media have been spawned, and send it before the ready line
    const deadline = Date.now() + 20_000;
    let tree = descendants(p.pid).filter((d) => d.comm === 'node');
    while (tree.length < 2 && Date.now() < deadline) {
      await pollPause(5);
      tree = descendants(p.pid).filter((d) => d.comm === 'node');
    }
    assert.ok(tree.length >= 2, `children spawned: ${JSON.stringify(descendants(p.pid))}`);
    const all = descendants(p.pid).map((d) => d.pid);
    for (const pid of all) leftovers.add(pid);
    assert.ok(!p.stdout.some((l) => l.startsWith('ferry ready')), 'still starting when the signal is sent');
    const sentAt = Date.now();
    p.kill('SIGHUP');
    const exit = await p.exited;
    assert.equal(exit.code, 0, `graceful, not forced: ${p.stderr.slice(-20).join('\n')}`);
    const took = await waitUntilGone([p.pid, ...all], BOUND_MS, sentAt);
    process.stdout.write(`# F6 SIGHUP during start-up: ${all.length} children gone ${took} ms after the signal\n`);
  });

  describe('under npm start', () => {
    // the two npm starts start side by side, both ready before either signal
    const underNpm = new Map<string, { npm: LineProcess; ready: StartReady; tree: { pid: number; comm: string }[] }>();
    before(async () => {
      await Promise.all(['SIGINT', 'SIGHUP'].map(async (signal) => underNpm.set(signal, await startUnderNpm())));
    });

    for (const [signal, what] of [['SIGINT', 'Ctrl-C'], ['SIGHUP', 'the terminal closed']] as const) {
      test(`F6: ${what} under npm start (${signal} to the whole process group) → graceful stop, nothing remains after 2 s`, async () => {
        const { npm, ready, tree } = underNpm.get(signal)!;
        const parts = Object.values(ready.pids);
        for (const pid of parts) assert.ok(tree.some((d) => d.pid === pid) && isRunning(pid), `positive control: ${pid} runs under npm`);
        const sentAt = Date.now();
        process.kill(-npm.pid, signal);
        const took = await waitUntilGone([npm.pid, ...tree.map((d) => d.pid)], BOUND_MS, sentAt);
        assert.ok(npm.stdout.includes('ferry: stopped'), `a graceful stop, not a forced one:\n${npm.stdout.join('\n')}\n${npm.stderr.slice(-20).join('\n')}`);
        assert.ok(!npm.stderr.some((l) => l.includes('stop forced')), npm.stderr.slice(-20).join('\n'));
        assert.ok(await tcpPortFree(ready.http), 'the next npm start finds the HTTP port free');
        process.stdout.write(`# F6 ${what} under npm start: ${tree.length} processes gone ${took} ms after ${signal}\n`);
      });
    }
  });
});
