import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import type { MediaConfig } from '../../src/media/server/media-config';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { pollPause, realTimePause } from '../helpers/wait-for';

/**
 * How a phone leg ends, with real packets (docs/lifecycle.md, rules 1-7, media side): RTCP BYE, ICMP port
 * unreachable, silent death after DEAD_MS, RTCP-only (mute) that must NOT end, orphans kept while media
 * lives and released when a leg ends, the 'always' policy, latching against strangers, RTCP reports.
 */
interface Call {
  pipeline: KurentoObjectLike;
  a: KurentoObjectLike;
  b: KurentoObjectLike;
  pa: RtpTestPeer;
  pb: RtpTestPeer;
  events: { source: string; type: string; data: Record<string, unknown> }[];
}

const servers: RunningMediaServer[] = [];
const clients: KurentoClientLike[] = [];
const peers: RtpTestPeer[] = [];
after(async () => {
  clients.forEach((c) => c.close());
  peers.forEach((p) => p.close());
  await Promise.all(servers.map((s) => s.close()));
});

/**
 * One media server per configuration, shared by the tests that use the same one (a start, with its relay
 * workers, costs seconds of CPU). Tests that read cumulative counters (legEndsByReason, releasesByReason)
 * have a configuration of their own; the others release their pipelines, so each one finds the shared
 * server with no pipeline and no bound port.
 */
const byConfig = new Map<string, Promise<RunningMediaServer>>();
function server(config: Partial<MediaConfig>): Promise<RunningMediaServer> {
  const key = JSON.stringify(config);
  let s = byConfig.get(key);
  if (!s) {
    s = startMediaServer({ config: { port: 0, host: '127.0.0.1', deadMs: 800, rtcpIntervalMs: 200, ...config } }).then((started) => {
      servers.push(started);
      return started;
    });
    byConfig.set(key, s);
  }
  return s;
}

async function client(s: RunningMediaServer): Promise<KurentoClientLike> {
  const c = await connectKurento(s.url);
  clients.push(c);
  return c;
}

async function newCall(c: KurentoClientLike): Promise<Call> {
  const events: Call['events'] = [];
  const pair = await bridgedRtpPair(c, peers, {
    beforeOffers: (a, b) => {
      for (const ep of [a, b]) {
        for (const type of ['MediaSessionTerminated', 'MediaStateChanged']) ep.on(type, (data) => events.push({ source: ep.id, type, data }));
      }
    },
  });
  return { ...pair, events };
}

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  while (!(await pred())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pollPause(20);
  }
  return Date.now() - start;
}

function terminated(c: Call, source: string): Record<string, unknown> | undefined {
  return c.events.find((e) => e.source === source && e.type === 'MediaSessionTerminated')?.data;
}

describe('media: phone leg end signals', () => {
  test('RTCP BYE from the phone -> MediaSessionTerminated + MediaStateChanged(DISCONNECTED) with reason rtcp-bye; owner alive keeps the pipeline', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000 });
    const c = await newCall(await client(s));
    c.pa.send(0, Buffer.from('x'));
    await c.pb.waitFor(() => c.pb.received.length === 1);
    c.pa.sendRtcpBye();
    const ms = await until(() => terminated(c, c.a.id) !== undefined, 3000, 'MediaSessionTerminated');
    assert.equal(terminated(c, c.a.id)!.reason, 'rtcp-bye');
    const msc = c.events.find((e) => e.source === c.a.id && e.type === 'MediaStateChanged' && e.data.newState === 'DISCONNECTED');
    assert.equal(msc?.data.reason, 'rtcp-bye');
    assert.ok(ms < 1000, `BYE noticed in ${ms} ms`);
    // policy 'orphans' and the app is connected: the app decides, nothing is released yet
    assert.equal((await fetchStats(s.port)).pipelines, 1);
    // a late subscriber (a gateway adopting the call) still learns the end, with its reason
    const late: Record<string, unknown>[] = [];
    const adopter = await client(s);
    const adopted = await adopter.getMediaobjectById(c.a.id);
    adopted.on('MediaSessionTerminated', (d) => late.push(d));
    await until(() => late.length > 0, 3000, 'replayed MediaSessionTerminated');
    assert.equal(late[0]!.reason, 'rtcp-bye');
    assert.equal(late[0]!.timestampMillis, terminated(c, c.a.id)!.timestampMillis);
    assert.equal(terminated(c, c.b.id), undefined, 'the other leg did not end');
    await c.pipeline.release();
    assert.equal((await fetchStats(s.port)).boundPorts, 0);
  });

  test('ICMP port unreachable on our sends -> reason icmp-unreachable', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000 });
    const c = await newCall(await client(s));
    c.pa.send(0, Buffer.from('latch me'));
    await c.pb.waitFor(() => c.pb.received.length === 1);
    c.pa.close(); // the phone closed its media socket
    for (let i = 0; i < 10 && terminated(c, c.a.id) === undefined; i++) {
      c.pb.send(0, Buffer.from(`to the closed phone ${i}`));
      await pollPause(30);
    }
    await until(() => terminated(c, c.a.id) !== undefined, 3000, 'MediaSessionTerminated');
    assert.equal(terminated(c, c.a.id)!.reason, 'icmp-unreachable');
    await c.pipeline.release();
  });

  test('silent death: no RTP and no RTCP for DEAD_MS -> media-timeout; RTCP-only (mute) for 3x DEAD_MS is not an end', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 800 });
    const c = await newCall(await client(s));
    const t0 = Date.now();
    // B is muted: sends only RTCP receiver reports; A goes silent after one packet
    c.pa.send(0, Buffer.from('one'));
    while (Date.now() - t0 < 2600) {
      c.pb.sendRtcpRr();
      await realTimePause(150); // real time: a muted phone's RTCP every 150 ms while the server's 800 ms dead timer runs on the real clock
    }
    assert.equal(terminated(c, c.a.id)?.reason, 'media-timeout');
    assert.equal(terminated(c, c.b.id), undefined, 'RTCP alone keeps the muted leg alive');
    await c.pipeline.release();
  });

  test('orphaned pipeline: media keeps flowing after the app disconnects, then a leg end releases it and the other phone gets RTCP BYE', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000, autoRelease: 'orphans' });
    const app = await client(s);
    const c = await newCall(app);
    app.close();
    await until(async () => (await fetchStats(s.port)).pipelinesDetail[0]?.orphaned === true, 3000, 'orphaned');
    for (let i = 0; i < 20; i++) c.pa.send(0, Buffer.from([i]));
    await c.pb.waitFor(() => c.pb.received.length >= 20, 3000, 'media through an orphaned pipeline');
    assert.equal((await fetchStats(s.port)).pipelines, 1);
    c.pa.sendRtcpBye();
    const ms = await until(async () => (await fetchStats(s.port)).pipelines === 0, 3000, 'auto-release');
    assert.ok(ms < 1000, `released ${ms} ms after the BYE`);
    const st = await fetchStats(s.port);
    assert.deepEqual([st.elements, st.boundPorts, st.sessions], [0, 0, 0]);
    assert.deepEqual(st.legEndsByReason, { 'rtcp-bye': 1 });
    assert.deepEqual(st.releasesByReason, { 'rtcp-bye': 1 });
    await c.pb.waitFor(() => c.pb.rtcpReceived.some((b) => parseRtcpCompound(b).bye), 2000, 'RTCP BYE to the other phone');
  });

  test("policy 'always': the app is alive but does not release -> released after RELEASE_GRACE_MS", { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000, autoRelease: 'always', releaseGraceMs: 300 });
    const c = await newCall(await client(s));
    c.pb.sendRtcpBye();
    await until(() => terminated(c, c.b.id) !== undefined, 2000, 'terminated');
    assert.equal((await fetchStats(s.port)).pipelines, 1, 'not before the grace period');
    const ms = await until(async () => (await fetchStats(s.port)).pipelines === 0, 3000, 'grace release');
    assert.ok(ms >= 150, `released after ${ms} ms`);
  });

  test('without rtcp-mux: RTCP on its own port (a=rtcp), two bound ports, a BYE there ends the leg', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000 });
    const app = await client(s);
    const pipeline = await app.create('MediaPipeline');
    const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const ended: Record<string, unknown>[] = [];
    ep.on('MediaSessionTerminated', (d) => ended.push(d));
    const phone = await RtpTestPeer.open();
    peers.push(phone);
    const answer = await call<string>(ep, 'processOffer', phone.sdp({ rtcpMux: false }));
    assert.doesNotMatch(answer, /a=rtcp-mux/);
    const rtcpPort = Number(/^a=rtcp:(\d+)/m.exec(answer)![1]);
    phone.useRemoteSdp(answer);
    assert.equal(rtcpPort, phone.remote!.port + 1);
    assert.equal((await fetchStats(s.port)).boundPorts, 2);
    phone.sendRtcpBye(rtcpPort);
    await until(() => ended.length > 0, 3000, 'MediaSessionTerminated');
    assert.equal(ended[0]!.reason, 'rtcp-bye');
    await pipeline.release();
    assert.equal((await fetchStats(s.port)).boundPorts, 0);
  });

  test("policy 'never': an orphan whose leg ended is only reported, never released by ferry media", { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000, autoRelease: 'never' });
    const app = await client(s);
    const c = await newCall(app);
    app.close();
    await until(async () => (await fetchStats(s.port)).pipelinesDetail[0]?.orphaned === true, 3000, 'orphaned');
    c.pa.sendRtcpBye();
    await until(async () => (await fetchStats(s.port)).pipelinesDetail[0]?.elements.some((e) => e.legEnded === 'rtcp-bye') === true, 3000, 'leg ended');
    // the positive marker: the other leg's BYE, handled after the first; a release the first end triggered would come before it
    c.pb.sendRtcpBye();
    await until(async () => (await fetchStats(s.port)).pipelinesDetail[0]?.elements.every((e) => e.legEnded === 'rtcp-bye') === true, 3000, 'both legs ended');
    assert.equal((await fetchStats(s.port)).pipelines, 1);
    await s.mediaSet.release(c.pipeline.id);
    assert.equal((await fetchStats(s.port)).boundPorts, 0);
  });

  test('latching: after the first source, packets from a stranger are dropped', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000 });
    const c = await newCall(await client(s));
    c.pa.send(0, Buffer.from('real'));
    await c.pb.waitFor(() => c.pb.received.length === 1);
    const stranger = await RtpTestPeer.open();
    peers.push(stranger);
    stranger.remote = c.pa.remote;
    for (let i = 0; i < 5; i++) stranger.send(0, Buffer.from('evil'));
    c.pa.send(0, Buffer.from('real2'));
    // real2 left the same socket after the stranger's packets and reached the server's same port: its relay is the positive control
    await c.pb.waitFor(() => c.pb.received.length >= 2);
    assert.deepEqual(c.pb.received.map((p) => p.payload.toString()), ['real', 'real2']);
    await c.pipeline.release();
  });

  test('symmetric RTP behind NAT: the SDP names one port, the phone sends from another -> we answer to the real source', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000 });
    const app = await client(s);
    const pipeline = await app.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const advertised = await RtpTestPeer.open(); // the port the phone's SDP names (its private address, unreachable in real NAT)
    const natted = await RtpTestPeer.open(); // where its packets really come from
    const other = await RtpTestPeer.open();
    peers.push(advertised, natted, other);
    natted.useRemoteSdp(await call<string>(a, 'processOffer', advertised.sdp()));
    other.useRemoteSdp(await call<string>(b, 'processOffer', other.sdp()));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    natted.send(0, Buffer.from('from behind NAT'));
    await other.waitFor(() => other.received.length === 1, 3000, 'relayed from the NAT source');
    other.send(0, Buffer.from('back to the phone'));
    await natted.waitFor(() => natted.received.length === 1, 3000, 'answered to the real source');
    assert.equal(advertised.received.length, 0);
    await pipeline.release();
  });

  test('the RTP leg sends RTCP reports (SR while sending, with SDES) to the peer', { timeout: 120_000 }, async () => {
    const s = await server({ deadMs: 15000, rtcpIntervalMs: 150 });
    const c = await newCall(await client(s));
    for (let i = 0; i < 10; i++) c.pa.send(0, Buffer.from([i]));
    await c.pb.waitFor(() => c.pb.rtcpReceived.some((b) => parseRtcpCompound(b).types[0] === 200), 3000, 'an SR at B');
    const sr = c.pb.rtcpReceived.find((b) => parseRtcpCompound(b).types[0] === 200)!;
    const summary = parseRtcpCompound(sr);
    assert.deepEqual(summary.types, [200, 202]);
    assert.equal(summary.senderSsrc, c.pb.received[0]!.ssrc, 'SR carries the SSRC of the relayed stream');
    assert.ok(sr.readUInt32BE(20) >= 10, 'sender packet count');
    await c.pa.waitFor(() => c.pa.rtcpReceived.some((b) => parseRtcpCompound(b).valid), 3000, 'a report at A');
    await c.pipeline.release();
  });
});
