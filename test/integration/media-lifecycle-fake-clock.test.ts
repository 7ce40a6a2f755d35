import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { RawRpc } from '../helpers/media-raw-rpc';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollUntil } from '../helpers/wait-for';

/**
 * Long lifecycle scenarios on a FakeClock with real sockets and real packets: the server's decisions
 * (liveness, orphan TTL, flow checks, RTCP timers) all run on the injected clock, so 30 minutes take
 * a second. Each step sends real RTCP and waits until the server has seen it before advancing.
 */
interface Leg {
  id: string;
  peer: RtpTestPeer;
}

const servers: RunningMediaServer[] = [];
const rpcs: RawRpc[] = [];
const peers: RtpTestPeer[] = [];
after(async () => {
  await Promise.all(rpcs.map((r) => r.close()));
  peers.forEach((p) => p.close());
  await Promise.all(servers.map((s) => s.close()));
});

async function setup(config: Record<string, unknown> = {}, orphanTtlMs = 240_000) {
  const clock = new FakeClock();
  const server = await startMediaServer({ clock, orphanTtlMs, config: { port: 0, host: '127.0.0.1', deadMs: 15_000, holdMs: 3_600_000, ...config } });
  servers.push(server);
  const rpc = await RawRpc.open(server.url);
  rpcs.push(rpc);
  return { clock, server, rpc };
}

async function endpoint(rpc: RawRpc, pipeline: string, direction = 'sendrecv'): Promise<Leg> {
  const e = await rpc.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: pipeline } });
  const peer = await RtpTestPeer.open();
  peers.push(peer);
  peer.useRemoteSdp(String((await rpc.ok('invoke', { object: e.value, operation: 'processOffer', operationParams: { offer: peer.sdp({ direction }) } })).value));
  return { id: String(e.value), peer };
}

type LegStats = { id: string; legEnded: string | null; leg: { lastRtcpInAt?: number; lastRtpInAt?: number } | null };
function legStats(server: RunningMediaServer, id: string): LegStats | undefined {
  const st = server.mediaSet.stats() as { pipelinesDetail: { elements: LegStats[] }[] };
  return st.pipelinesDetail.flatMap((p) => p.elements).find((e) => e.id === id);
}

/** Send an RTCP RR from each peer and wait until the server stamped it with the current fake time. */
async function rtcpFrom(server: RunningMediaServer, clock: FakeClock, legs: Leg[]): Promise<void> {
  for (const l of legs) l.peer.sendRtcpRr();
  await pollUntil(() => legs.every((l) => legStats(server, l.id)?.leg?.lastRtcpInAt === clock.now()), { timeoutMs: 3000, stepMs: 2, what: 'RTCP seen by the server' });
}

/** Wait until the server has seen the proxy's connection close: every pipeline is orphaned (its orphan rules run from here). */
async function orphaned(server: RunningMediaServer): Promise<void> {
  await pollUntil(() => {
    const st = server.mediaSet.stats() as { pipelinesDetail: { orphaned: boolean }[] };
    return st.pipelinesDetail.length > 0 && st.pipelinesDetail.every((d) => d.orphaned);
  }, { timeoutMs: 3000, stepMs: 2, what: 'the server to see the proxy gone' });
}

/** Wait until the server has released every pipeline (release runs asynchronously once the fake clock decided it). */
async function released(server: RunningMediaServer): Promise<void> {
  await pollUntil(() => server.mediaSet.pipelineCount() === 0, { timeoutMs: 3000, stepMs: 2, what: 'the pipeline to be released' });
}

describe('media lifecycle on a fake clock (real packets)', { timeout: 60_000 }, () => {
  test('S12-like: an orphaned call whose phones keep RTCP for 30 simulated minutes is kept; then silence ends it after DEAD_MS and it is released', async () => {
    const { clock, server, rpc } = await setup();
    const p = String((await rpc.ok('create', { type: 'MediaPipeline' })).value);
    const a = await endpoint(rpc, p);
    const b = await endpoint(rpc, p);
    await rpc.close(); // the proxy dies: the pipeline is orphaned
    await orphaned(server);
    for (let t = 0; t < 30 * 60_000; t += 5000) {
      await rtcpFrom(server, clock, [a, b]);
      clock.advance(5000);
    }
    assert.equal(server.mediaSet.pipelineCount(), 1, 'no false end in 30 minutes');
    assert.equal(legStats(server, a.id)?.legEnded, null);
    clock.advance(16_000); // both phones vanish
    await released(server); // released after DEAD_MS of silence
    const st = server.mediaSet.stats() as { boundPorts: number; sessions: number };
    assert.deepEqual([st.boundPorts, st.sessions], [0, 0]);
    assert.equal(clock.pending(), 0, 'no timer outlives the pipeline');
  });

  test('S11-like: hold by re-offer (sendonly) for 10 minutes without packets is not an end; HOLD_MS is', async () => {
    const { clock, server, rpc } = await setup({ holdMs: 20 * 60_000 });
    const p = String((await rpc.ok('create', { type: 'MediaPipeline' })).value);
    const a = await endpoint(rpc, p);
    const b = await endpoint(rpc, p);
    await rpc.ok('invoke', { object: b.id, operation: 'connect', operationParams: { sink: a.id } });
    await rtcpFrom(server, clock, [a, b]);
    const reoffer = await rpc.ok('invoke', { object: a.id, operation: 'processOffer', operationParams: { offer: a.peer.sdp({ direction: 'sendonly' }) } });
    assert.match(String(reoffer.value), /^a=recvonly\r$/m, 'answer mirrors hold');
    assert.equal(String(reoffer.value).match(/^m=audio (\d+)/m)![1], String(a.peer.remote!.port), 'same local port after re-offer');
    // the phone on hold must not get RTP from us; the positive control: what the held phone sends (sendonly)
    // still reaches the other phone, relayed by the same server after the packet that must not arrive
    await rpc.ok('invoke', { object: a.id, operation: 'connect', operationParams: { sink: b.id } });
    b.peer.send(0, Buffer.from('to held phone'));
    a.peer.send(0, Buffer.from('from held phone'));
    await pollUntil(() => b.peer.received.length > 0, { timeoutMs: 3000, what: 'the held phone\'s RTP at the other phone' });
    assert.equal(a.peer.received.length, 0);
    for (let t = 0; t < 10 * 60_000; t += 5000) {
      if (t % 60_000 === 0) await rtcpFrom(server, clock, [b]);
      clock.advance(5000);
    }
    assert.equal(legStats(server, a.id)?.legEnded, null, 'a 10-minute hold is not an end');
    assert.equal(legStats(server, b.id)?.legEnded, 'media-timeout', 'the other phone went silent (no RTCP after the first minute) and ended');
    clock.advance(10 * 60_000 + 2000);
    assert.equal(legStats(server, a.id)?.legEnded, 'hold-timeout', 'HOLD_MS of total silence on hold ends the leg');
    await rpc.ok('release', { object: p });
    assert.equal(clock.pending(), 0);
  });

  test('a pipeline that never negotiated is released ORPHAN_TTL after its proxy died, not before; an alive proxy keeps it', async () => {
    const { clock, server, rpc } = await setup({}, 60_000);
    const p = String((await rpc.ok('create', { type: 'MediaPipeline' })).value);
    await rpc.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p } });
    clock.advance(10 * 60_000);
    assert.equal(server.mediaSet.pipelineCount(), 1, 'owner alive: kept');
    await rpc.close();
    await orphaned(server);
    clock.advance(59_000);
    assert.equal(server.mediaSet.pipelineCount(), 1);
    clock.advance(2000);
    await released(server);
    assert.equal(clock.pending(), 0);
  });

  test('a proxy that reconnects (connect with its sessionId) before the orphan TTL keeps its pipeline', async () => {
    const { clock, server, rpc } = await setup({}, 60_000);
    const created = await rpc.ok('create', { type: 'MediaPipeline' });
    await rpc.close();
    await orphaned(server);
    clock.advance(30_000);
    const again = await RawRpc.open(server.url);
    rpcs.push(again);
    await again.ok('connect', { sessionId: created.sessionId });
    clock.advance(120_000);
    assert.equal(server.mediaSet.pipelineCount(), 1);
    await again.ok('release', { object: created.value });
  });
});
