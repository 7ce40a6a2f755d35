import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { connectKurento, type KurentoClientLike } from '../helpers/media-kurento';
import { MediaServerProcess } from '../helpers/media-server-process';
import { pollUntil } from '../helpers/wait-for';
import { closeRelayCall, makeRelayCall, relayFlowing, workerOfPipeline, type RelayTestCall } from '../helpers/relay-worker-calls';
import type { WorkerStatsEntry } from '../../src/media/server/media-stats';

/**
 * ferry media with two relay workers (FERRY_MEDIA_WORKERS=2, docs/media-server.md "Relay workers"):
 * pipelines spread over the workers, a call on each relays real RTP, a worker that dies ends only its
 * calls (end events to the subscribers, the worker restarted) while the other worker's call keeps
 * flowing, /drain and /undrain show in /stats, and everything counts back to zero after release.
 */

type WorkerEntry = WorkerStatsEntry;

interface Stats {
  pipelines: number;
  elements: number;
  sessions: number;
  boundPorts: number;
  eventLoopLagP99Ms: number;
  draining: boolean;
  workers: WorkerEntry[];
  pipelinesDetail: { id: string; worker?: number }[];
  releasesByReason: Record<string, number>;
  quotas: { portsCounted: number };
}



async function stats(port: number): Promise<Stats> {
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  assert.equal(res.status, 200);
  return (await res.json()) as Stats;
}

describe('media relay workers: two workers in one ferry media', { timeout: 240_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const calls: RelayTestCall[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', workers: 2 } });
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

  function stopCall(c: RelayTestCall): void {
    clearInterval(c.pump);
  }

  const flowing = relayFlowing;

  const workerOf = workerOfPipeline;

  async function zero(what: string): Promise<Stats> {
    return pollUntil(async () => {
      const s = await stats(server.port);
      const workersEmpty = s.workers.every((w) => w.pipelines === 0 && w.elements === 0);
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0 && s.quotas.portsCounted === 0 && workersEmpty ? s : undefined;
    }, { timeoutMs: 20_000, what });
  }

  test('pipelines spread over both workers; a call on each relays; release counts pipelines, ports and worker objects back to zero', { timeout: 120_000 }, async () => {
    const before0 = await stats(server.port);
    assert.deepEqual(before0.workers.map((w) => w.id), [1, 2]);
    assert.equal(before0.draining, false);
    const c1 = await makeCall();
    const c2 = await makeCall();
    const s = await stats(server.port);
    assert.deepEqual(s.workers.map((w) => w.pipelines), [1, 1], 'one pipeline per worker (least loaded first)');
    assert.deepEqual(s.workers.map((w) => w.elements), [2, 2], 'each worker holds its pipeline\'s two endpoints');
    assert.notEqual(workerOf(s, c1.pipeline.id), workerOf(s, c2.pipeline.id));
    assert.equal(s.pipelines, 2);
    assert.equal(s.elements, 4);
    assert.ok(s.boundPorts >= 4, `4 endpoints bound their ports (boundPorts ${s.boundPorts})`);
    await flowing(c1, 'call on the first worker');
    await flowing(c2, 'call on the second worker');
    // the per-element counters in /stats come from the workers
    const fresh = (await fetch(`http://127.0.0.1:${server.port}/stats`).then((r) => r.json())) as { pipelinesDetail: { elements: { packetsFromPeer: number }[] }[] };
    for (const p of fresh.pipelinesDetail) for (const e of p.elements) assert.ok(e.packetsFromPeer > 0, 'each endpoint counted packets from its phone');
    stopCall(c1);
    stopCall(c2);
    await c1.pipeline.release();
    await c2.pipeline.release();
    const z = await zero('both pipelines released: pipelines, elements, ports and worker-side objects at zero');
    assert.ok(z.workers.every((w) => w.running && w.restarts === 0));
    assert.equal(c1.ends.length + c2.ends.length, 0, 'the releasing session gets no end events');
  });

  test('a worker that dies ends only its calls (end events to subscribers), is restarted; the other worker\'s call keeps flowing', { timeout: 150_000 }, async () => {
    const victim = await makeCall();
    const survivor = await makeCall();
    const s = await stats(server.port);
    const deadWorker = workerOf(s, victim.pipeline.id);
    assert.notEqual(workerOf(s, survivor.pipeline.id), deadWorker, 'the two calls are on different workers');
    await flowing(victim, 'victim call before the crash');
    await flowing(survivor, 'surviving call before the crash');
    const releasesBefore = s.releasesByReason['control-release'] ?? 0;

    server.workers!.worker(deadWorker)!.crashForTest();

    // both endpoints of the dead worker's call end, with the reason a gateway hangs up on
    await pollUntil(() => victim.ends.length >= 2, { timeoutMs: 20_000, what: 'MediaSessionTerminated for both endpoints of the dead worker\'s call' });
    for (const e of victim.ends) {
      assert.equal(e.reason, 'control-release');
      assert.equal(e.detail, 'media-worker-died');
    }
    assert.deepEqual(new Set(victim.ends.map((e) => e.source)), new Set([victim.a.id, victim.b.id]));
    // the other worker's call keeps relaying after the crash (positive control for "no end event" below)
    await flowing(survivor, 'surviving call after the crash', 50);
    assert.equal(survivor.ends.length, 0, 'the other worker\'s call got no end event');
    let lastSeen = '';
    const after1 = await pollUntil(async () => {
      const st = await stats(server.port);
      const w = st.workers.find((x) => x.id === deadWorker)!;
      lastSeen = JSON.stringify({ workers: st.workers, pipelines: st.pipelines, detail: st.pipelinesDetail });
      return w.running && w.restarts === 1 && st.pipelines === 1 ? st : undefined;
    }, { timeoutMs: 30_000, what: 'the dead worker restarted and its pipeline released' }).catch((err: Error) => { throw new Error(`${err.message}; last ${lastSeen}`); });
    assert.deepEqual(after1.pipelinesDetail.map((p) => p.id), [survivor.pipeline.id]);
    assert.equal(after1.workers.find((x) => x.id === deadWorker)!.pipelines, 0);
    assert.ok((after1.releasesByReason['control-release'] ?? 0) > releasesBefore, 'the lost pipeline was released (counted)');
    stopCall(victim);

    // the restarted worker takes the next call (least loaded) and relays it
    const next = await makeCall();
    assert.equal(workerOf(await stats(server.port), next.pipeline.id), deadWorker, 'the restarted worker, now the least loaded, takes the next pipeline');
    await flowing(next, 'a new call on the restarted worker');
    await flowing(survivor, 'surviving call still flowing');
    stopCall(next);
    stopCall(survivor);
    await next.pipeline.release();
    await survivor.pipeline.release();
    await zero('after the crash and the releases: zero');
  });

  test('POST /drain and POST /undrain show in /stats `draining`; draining refuses nothing', { timeout: 60_000 }, async () => {
    const url = `http://127.0.0.1:${server.port}`;
    const drain = await fetch(`${url}/drain`, { method: 'POST' });
    assert.equal(drain.status, 200);
    assert.deepEqual(await drain.json(), { draining: true });
    assert.equal((await stats(server.port)).draining, true);
    const pipeline = await client.create('MediaPipeline');
    assert.equal((await stats(server.port)).pipelines, 1, 'a draining media server still creates pipelines');
    await pipeline.release();
    const wrongMethod = await fetch(`${url}/drain`);
    assert.equal(wrongMethod.status, 405);
    assert.equal((await stats(server.port)).draining, true, 'a GET changes nothing');
    const undrain = await fetch(`${url}/undrain`, { method: 'POST' });
    assert.equal(undrain.status, 200);
    assert.deepEqual(await undrain.json(), { draining: false });
    assert.equal((await stats(server.port)).draining, false);
    await zero('drain test pipeline released');
  });
});

describe('media relay workers: `ferry media` reads FERRY_MEDIA_WORKERS', { timeout: 120_000 }, () => {
  const procs: MediaServerProcess[] = [];
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
  });

  test('FERRY_MEDIA_WORKERS=2: two relay workers; =1: the main thread only (worker 0)', { timeout: 90_000 }, async () => {
    const two = await MediaServerProcess.start({ FERRY_MEDIA_WORKERS: '2' });
    procs.push(two);
    const one = await MediaServerProcess.start({ FERRY_MEDIA_WORKERS: '1' });
    procs.push(one);
    // ready as soon as it listens; the workers may still be loading
    const s2 = await pollUntil(async () => {
      const s = (await two.stats()) as unknown as Stats;
      return s.workers.every((w) => w.running) ? s : undefined;
    }, { timeoutMs: 60_000, what: 'both relay workers of `ferry media` running' });
    assert.deepEqual(s2.workers.map((w) => w.id), [1, 2]);
    const s1 = (await one.stats()) as unknown as Stats;
    assert.deepEqual(s1.workers.map((w) => w.id), [0]);
    assert.equal(s1.draining, false);
  });
});
