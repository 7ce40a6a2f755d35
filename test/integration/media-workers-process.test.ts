// FERRY_MEDIA_WORKER_KIND=process for everything this file starts, then the relay worker scenarios of
// media-workers.test.ts (spread, a crashed worker ends only its calls and restarts, drain, `ferry media`
// reads FERRY_MEDIA_WORKERS) run again here with child processes instead of threads.
import '../helpers/relay-workers-as-processes';
import './media-workers.test';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { relayProcessExecArgv, relayWorkerEntry, relayWorkerYoungGenerationMb } from '../../src/media/workers/relay-transport';
import { heapGrowingPercent } from '../../src/media/server/heap-growing';
import { RELAY_PROCESS_FLAG } from '../../src/media/workers/worker-protocol';
import { connectKurento, type KurentoClientLike } from '../helpers/media-kurento';
import { MediaServerProcess } from '../helpers/media-server-process';
import { pollUntil } from '../helpers/wait-for';
import { closeRelayCall, makeRelayCall, relayFlowing, workerOfPipeline, type RelayTestCall } from '../helpers/relay-worker-calls';
import type { WorkerStatsEntry } from '../../src/media/server/media-stats';

/**
 * Relay workers as child processes (FERRY_MEDIA_WORKER_KIND=process, docs/media-server.md "Relay
 * workers"): each worker is a process of its own with the young generation setting on its command line
 * and reports its lag; a real SIGKILL of one worker's process mid-call ends only that worker's call (both
 * parties get the MediaSessionTerminated the gateway hangs up on) while the other call keeps relaying
 * RTP, counted, and the slot restarts with a new process; ferry media's stop ends the children within the
 * stop budget; and a SIGKILL of `ferry media` leaves no relay child behind (through setpriv's parent-death
 * signal, and without setpriv through the IPC channel's close).
 */

interface Stats {
  pipelines: number;
  elements: number;
  boundPorts: number;
  workers: WorkerStatsEntry[];
  pipelinesDetail: { id: string; worker?: number }[];
  quotas: { portsCounted: number };
}



/** ferry media's stop budget (FERRY_SHUTDOWN_WATCHDOG_MS default, src/common/process-runner.ts). */
const STOP_BUDGET_MS = 1500;

async function stats(port: number): Promise<Stats> {
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  assert.equal(res.status, 200);
  return (await res.json()) as Stats;
}

/** Is `pid` a live process (a zombie waiting for its reaper counts as dead)? */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The relay worker processes whose parent is `parent` (their command line carries the relay flag). */
function relayChildrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (parentOf(pid) === parent && cmdline(pid).includes(RELAY_PROCESS_FLAG)) out.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return out.sort((x, y) => x - y);
}

describe('P: relay workers as child processes in one ferry media', { timeout: 240_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const calls: RelayTestCall[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', workers: 2, workerKind: 'process', lagWindowMs: 1000 } });
    await server.workersReady;
    client = await connectKurento(server.url);
  });
  after(async () => {
    for (const c of calls) closeRelayCall(c);
    client?.close();
    await server?.close();
  });

  async function makeCall(): Promise<RelayTestCall> {
    const c = await makeRelayCall(client);
    calls.push(c);
    return c;
  }

  const flowing = relayFlowing;

  const workerOf = workerOfPipeline;

  test('P1: each relay worker is a child process of ferry media running the relay worker with the memory settings on its command line; each reports its event-loop lag', { timeout: 60_000 }, async () => {
    const workers = server.workers!.workers;
    const pids = workers.map((w) => w.pid);
    assert.equal(pids.length, 2);
    for (const pid of pids) {
      assert.ok(pid !== undefined && pid !== process.pid, `worker pid ${pid} is a process of its own`);
      assert.equal(parentOf(pid), process.pid, 'its parent is ferry media (setpriv, where used, execs: same pid)');
      const args = cmdline(pid);
      assert.ok(args.includes(RELAY_PROCESS_FLAG), args.join(' '));
      for (const a of relayProcessExecArgv(relayWorkerEntry(), relayWorkerYoungGenerationMb(), heapGrowingPercent())) assert.ok(args.includes(a), `${a} in ${args.join(' ')}`);
    }
    assert.notEqual(pids[0], pids[1]);
    assert.deepEqual(relayChildrenOf(process.pid), [...pids].sort((x, y) => x! - y!), 'the relay children found in /proc are the pool\'s');
    if (process.env.FERRY_MEDIA_MEMORY_SETTINGS !== '0' && process.env.FERRY_MEDIA_SEMI_SPACE_MB === undefined) {
      assert.ok(cmdline(pids[0]!).includes('--max-semi-space-size=2'), 'the default 2 MiB semi-space, as a thread gets 3 × 2 MiB of young generation');
    }
    // lag: every window (1 s here) each worker sends its figures (a new object each time)
    const before0 = workers.map((w) => w.lag);
    await pollUntil(() => workers.every((w, i) => w.lag !== before0[i]), { timeoutMs: 15_000, what: 'a lag report from each relay child' });
    for (const w of workers) {
      assert.ok(Number.isFinite(w.lag.eventLoopLagP99Ms) && w.lag.eventLoopLagP99Ms >= 0);
      assert.ok(w.lag.eventLoopLagMaxMs >= w.lag.eventLoopLagP99Ms);
    }
    const s = await stats(server.port);
    assert.deepEqual(s.workers.map((w) => [w.id, w.running, w.restarts]), [[1, true, 0], [2, true, 0]]);
  });

  test('P2: SIGKILL of one relay child mid-call ends only its call (both parties told: MediaSessionTerminated control-release / media-worker-died), the other call keeps relaying, the slot restarts with a new process', { timeout: 150_000 }, async () => {
    const victim = await makeCall();
    const survivor = await makeCall();
    const s = await stats(server.port);
    const deadWorker = workerOf(s, victim.pipeline.id);
    assert.notEqual(workerOf(s, survivor.pipeline.id), deadWorker, 'the two calls are on different workers');
    await flowing(victim, 'victim call before the kill');
    await flowing(survivor, 'surviving call before the kill');
    const killedPid = server.workers!.worker(deadWorker)!.pid!;
    const survivorPid = server.workers!.workers.find((w) => w.id !== deadWorker)!.pid!;

    process.kill(killedPid, 'SIGKILL');

    await pollUntil(() => victim.ends.length >= 2, { timeoutMs: 20_000, what: 'MediaSessionTerminated for both endpoints of the killed worker\'s call' });
    for (const e of victim.ends) {
      assert.equal(e.reason, 'control-release');
      assert.equal(e.detail, 'media-worker-died');
    }
    assert.deepEqual(new Set(victim.ends.map((e) => e.source)), new Set([victim.a.id, victim.b.id]), 'both parties of the call are told');
    assert.equal(alive(killedPid), false, 'the killed process is gone');
    // the other call keeps relaying after the kill, counted (also the positive control for the checks below)
    await flowing(survivor, 'surviving call after the kill');
    const victimHeard = [victim.pa.received.length, victim.pb.received.length];
    await flowing(survivor, 'surviving call after the kill, later', 100);
    assert.equal(survivor.ends.length, 0, 'the other worker\'s call got no end event');
    assert.equal(server.workers!.workers.find((w) => w.id !== deadWorker)!.pid, survivorPid, 'the other worker is the same process');
    assert.deepEqual([victim.pa.received.length, victim.pb.received.length], victimHeard, 'nothing is relayed for the killed worker\'s call any more');
    clearInterval(victim.pump);

    const restarted = await pollUntil(async () => {
      const st = await stats(server.port);
      const w = st.workers.find((x) => x.id === deadWorker)!;
      return w.running && w.restarts === 1 && st.pipelines === 1 ? st : undefined;
    }, { timeoutMs: 30_000, what: 'the killed worker restarted and its pipeline released' });
    assert.deepEqual(restarted.pipelinesDetail.map((p) => p.id), [survivor.pipeline.id]);
    const newPid = server.workers!.worker(deadWorker)!.pid;
    assert.ok(newPid !== undefined && newPid !== killedPid && alive(newPid), `a new process in the slot (${newPid}, was ${killedPid})`);

    const next = await makeCall();
    assert.equal(workerOf(await stats(server.port), next.pipeline.id), deadWorker, 'the restarted worker takes the next pipeline');
    await flowing(next, 'a new call on the restarted worker');
    await flowing(survivor, 'surviving call still flowing');
    clearInterval(next.pump);
    clearInterval(survivor.pump);
    await next.pipeline.release();
    await survivor.pipeline.release();
    await pollUntil(async () => {
      const st = await stats(server.port);
      return st.pipelines === 0 && st.elements === 0 && st.boundPorts === 0 && st.quotas.portsCounted === 0 && st.workers.every((w) => w.pipelines === 0 && w.elements === 0);
    }, { timeoutMs: 20_000, what: 'everything released: zero' });
  });

  test('P3: ferry media\'s close with a call up ends every relay child within the stop budget', { timeout: 60_000 }, async () => {
    const c = await makeCall();
    await flowing(c, 'a call before the stop');
    const pids = server.workers!.workers.map((w) => w.pid!);
    assert.ok(pids.every(alive), 'the children run before the stop (positive control)');
    const t0 = Date.now();
    await server.close();
    const took = Date.now() - t0;
    clearInterval(c.pump);
    assert.ok(took < STOP_BUDGET_MS, `close took ${took} ms (budget ${STOP_BUDGET_MS} ms)`);
    assert.deepEqual(pids.filter(alive), [], 'no relay child left after close');
    assert.equal(c.ends.length, 0, 'the releasing stop sends the closing session no end events');
  });
});

describe('P4: `ferry media` with FERRY_MEDIA_WORKER_KIND=process leaves no relay child behind', { timeout: 240_000 }, () => {
  const procs: MediaServerProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  async function startWithChildren(env: Record<string, string>): Promise<{ media: MediaServerProcess; pid: number; children: number[] }> {
    const media = await MediaServerProcess.start({ FERRY_MEDIA_WORKERS: '2', FERRY_MEDIA_WORKER_KIND: 'process', ...env });
    procs.push(media);
    const pid = media.pid!;
    await pollUntil(async () => {
      const s = (await media.stats()) as unknown as Stats;
      return s.workers.length === 2 && s.workers.every((w) => w.running);
    }, { timeoutMs: 60_000, what: 'both relay children of `ferry media` running' });
    const children = relayChildrenOf(pid);
    assert.equal(children.length, 2, `two relay children of ferry media ${pid}; log:\n${media.log()}`);
    assert.ok(children.every(alive), 'they run (positive control for "gone" below)');
    return { media, pid, children };
  }

  test('P4a: SIGKILL of ferry media: both relay children are gone within 5 s', { timeout: 90_000 }, async () => {
    const { pid, children } = await startWithChildren({});
    process.kill(pid, 'SIGKILL');
    await pollUntil(() => !alive(pid), { timeoutMs: 5_000, what: 'ferry media killed' });
    await pollUntil(() => children.every((c) => !alive(c)), { timeoutMs: 5_000, what: `relay children ${children.join(', ')} gone after ferry media's SIGKILL` });
  });

  test('P4b: without setpriv (it fails here) the children still exit when ferry media is SIGKILLed: their IPC channel closes', { timeout: 90_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-no-setpriv-'));
    dirs.push(dir);
    const marker = path.join(dir, 'asked');
    fs.writeFileSync(path.join(dir, 'setpriv'), `#!/bin/sh\necho asked >> '${marker}'\nexit 1\n`, { mode: 0o755 });
    const { pid, children } = await startWithChildren({ PATH: `${dir}:${process.env.PATH ?? ''}` });
    assert.ok(fs.existsSync(marker), 'ferry media asked the failing setpriv (so it started the children without it)');
    process.kill(pid, 'SIGKILL');
    await pollUntil(() => children.every((c) => !alive(c)), { timeoutMs: 5_000, what: `relay children ${children.join(', ')} gone after ferry media's SIGKILL (IPC channel closed)` });
  });

  test('P4c: SIGTERM: ferry media stops within its stop budget and its relay children with it', { timeout: 90_000 }, async () => {
    const { media, pid, children } = await startWithChildren({});
    await media.stop();
    assert.equal(alive(pid), false);
    assert.deepEqual(children.filter(alive), [], 'no relay child left after the stop');
    await pollUntil(() => media.logsMatching('relay worker process exits: its channel to ferry media closed').length === 2, { timeoutMs: 5_000, what: 'both children logged their exit' });
    assert.equal(media.logsMatching('ferry process stopping').length, 1, media.log());
    assert.deepEqual(media.logsMatching('ferry process stop forced'), [], 'the stop stayed within its budget');
  });
});
