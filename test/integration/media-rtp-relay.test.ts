import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';

/**
 * The real kurento-client 7.3.0 drives ferry media: pipeline + two RtpEndpoints (one answering a
 * phone's offer, one offering to a phone), connected both ways; real dgram peers count packets,
 * check payload bytes, payload-type mapping, DTMF both ways, SSRC/seq continuity; release -> zero.
 */
describe('media: RtpEndpoint <-> RtpEndpoint relay through kurento-client', () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
    client = await connectKurento(server.url);
  });
  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    await server?.close();
  });

  async function call2(): Promise<{
    pipeline: KurentoObjectLike;
    a: KurentoObjectLike;
    b: KurentoObjectLike;
    pa: RtpTestPeer;
    pb: RtpTestPeer;
    events: { source: string; type: string; data: Record<string, unknown> }[];
  }> {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const events: { source: string; type: string; data: Record<string, unknown> }[] = [];
    for (const ep of [a, b]) {
      for (const type of ['MediaSessionStarted', 'ElementConnected', 'MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'MediaStateChanged', 'ConnectionStateChanged']) {
        ep.on(type, (data) => events.push({ source: ep.id, type, data }));
      }
    }
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    peers.push(pa, pb);
    // phone A offers PCMU + telephone-event/101; phone B answers our offer with telephone-event/96
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
    pb.useRemoteSdp(await call<string>(b, 'generateOffer'));
    await call(b, 'processAnswer', pb.sdp({ codecs: [[0, 'PCMU/8000'], [96, 'telephone-event/8000']] }));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    return { pipeline, a, b, pa, pb, events };
  }

  test('ids follow the KMS scheme and describe/getInfo answer as kurento-client expects', { timeout: 120_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    assert.match(pipeline.id, /^[0-9a-f-]{36}_kurento\.MediaPipeline$/);
    const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    assert.ok(ep.id.startsWith(`${pipeline.id}/`));
    assert.match(ep.id, /_kurento\.RtpEndpoint$/);
    const manager = await client.getServerManager();
    const info = await call<{ modules: { name: string }[] }>(manager, 'getInfo');
    assert.deepEqual(info.modules.map((m) => m.name).sort(), ['core', 'elements', 'filters']);
    const pipelines = await call<KurentoObjectLike[]>(manager, 'getPipelines');
    assert.ok(pipelines.some((p) => p.id === pipeline.id));
    await pipeline.release();
  });

  test('packets relay both ways with payload bytes intact, payload types mapped, events fired, release -> zero', { timeout: 120_000 }, async () => {
    const { pipeline, a, b, pa, pb, events } = await call2();
    const sentA: Buffer[] = [];
    const sentB: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      sentA.push(pa.send(0, Buffer.from(`a->b payload ${i} `.padEnd(160, String.fromCharCode(65 + (i % 26))))));
      sentB.push(pb.send(0, Buffer.from(`b->a payload ${i} `.padEnd(160, String.fromCharCode(97 + (i % 26))))));
      await new Promise((r) => setTimeout(r, 2));
    }
    await pb.waitFor(() => pb.received.length >= 50, 5000, 'B to receive 50');
    await pa.waitFor(() => pa.received.length >= 50, 5000, 'A to receive 50');
    assert.deepEqual(pb.received.map((p) => p.payload.toString('hex')), sentA.map((p) => p.toString('hex')));
    assert.deepEqual(pa.received.map((p) => p.payload.toString('hex')), sentB.map((p) => p.toString('hex')));
    assert.ok(pb.received.every((p) => p.pt === 0));
    // one outgoing SSRC per leg, consecutive sequence numbers
    assert.equal(new Set(pb.received.map((p) => p.ssrc)).size, 1);
    pb.received.forEach((p, i) => i > 0 && assert.equal(p.seq, (pb.received[i - 1]!.seq + 1) & 0xffff));
    // symmetric RTP: packets come from the port the SDP named
    const bPort = pb.remote!.port;
    assert.ok(pb.received.every((p) => p.from === `127.0.0.1:${bPort}`));

    const waitEvent = async (source: string, type: string, pred: (d: Record<string, unknown>) => boolean = () => true) => {
      await pa.waitFor(() => events.some((e) => e.source === source && e.type === type && pred(e.data)), 5000, `${type} on ${source}`);
    };
    await waitEvent(a.id, 'MediaFlowOutStateChanged', (d) => d.state === 'FLOWING' && d.mediaType === 'AUDIO');
    await waitEvent(b.id, 'MediaFlowInStateChanged', (d) => d.state === 'FLOWING');
    await waitEvent(a.id, 'MediaStateChanged', (d) => d.newState === 'CONNECTED');
    assert.equal(await call(a, 'getMediaState'), 'CONNECTED');
    assert.equal(await call(b, 'isMediaFlowingIn', 'AUDIO'), true);
    assert.equal(await call(b, 'isMediaFlowingOut', 'AUDIO'), true);
    assert.equal(await call(b, 'isMediaFlowingIn', 'VIDEO'), false);

    const epStats = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(a, 'getStats', 'AUDIO');
    const inbound = Object.values(epStats).find((x) => x.type === 'inboundrtp');
    const outbound = Object.values(epStats).find((x) => x.type === 'outboundrtp');
    assert.equal(inbound?.packetsReceived, 50);
    assert.equal(outbound?.packetsSent, 50);

    const stats = await fetchStats(server.port);
    assert.equal(stats.pipelines, 1);
    assert.equal(stats.elements, 2);
    assert.equal(stats.boundPorts, 2); // both rtcp-mux: one port each

    await pipeline.release();
    const after = await fetchStats(server.port);
    assert.deepEqual([after.pipelines, after.elements, after.boundPorts], [0, 0, 0]);
    // a released endpoint answers 40101 (kurento-client: ReferenceError)
    await assert.rejects(call(a, 'getMediaState'), (err: Error & { code?: number }) => err instanceof ReferenceError || err.code === 40101);
  });

  test('DTMF (RFC 4733) passes both ways with the payload type mapped 101 <-> 96', { timeout: 120_000 }, async () => {
    const { pipeline, pa, pb } = await call2();
    const ts = 90000;
    pa.sendDtmf(101, 5, false, 160, ts);
    pa.sendDtmf(101, 5, false, 320, ts);
    pa.sendDtmf(101, 5, true, 480, ts);
    pb.sendDtmf(96, 11, false, 160, ts);
    pb.sendDtmf(96, 11, true, 320, ts);
    await pb.waitFor(() => pb.received.length >= 3, 5000, 'DTMF at B');
    await pa.waitFor(() => pa.received.length >= 2, 5000, 'DTMF at A');
    assert.deepEqual(pb.received.map((p) => p.pt), [96, 96, 96]);
    assert.deepEqual(pb.received.map((p) => p.payload[0]), [5, 5, 5]);
    assert.equal(pb.received[2]!.payload[1]! & 0x80, 0x80, 'end bit kept');
    assert.equal(new Set(pb.received.map((p) => p.ts)).size, 1, 'one event keeps one timestamp');
    assert.deepEqual(pa.received.map((p) => p.pt), [101, 101]);
    assert.deepEqual(pa.received.map((p) => p.payload[0]), [11, 11]);
    await pipeline.release();
  });

  test('a new source keeps the sink leg SSRC, sequence and timestamp continuous', { timeout: 120_000 }, async () => {
    const { pipeline, a, b, pa, pb } = await call2();
    for (let i = 0; i < 5; i++) pa.send(0, Buffer.from([i]));
    await pb.waitFor(() => pb.received.length >= 5);
    // a third endpoint (another phone) replaces A as B's source
    const c = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pc = await RtpTestPeer.open();
    peers.push(pc);
    pc.useRemoteSdp(await call<string>(c, 'processOffer', pc.sdp()));
    await call(c, 'connect', b);
    for (let i = 0; i < 5; i++) pc.send(0, Buffer.from([100 + i]));
    await pb.waitFor(() => pb.received.length >= 10);
    for (let i = 0; i < 5; i++) pa.send(0, Buffer.from([200 + i])); // A is no longer connected to B
    // the positive marker: one more packet from C, sent after A's; it arrives, A's do not
    pc.send(0, Buffer.from([105]));
    await pb.waitFor(() => pb.received.length >= 11);
    assert.equal(pb.received.length, 11);
    assert.equal(new Set(pb.received.map((p) => p.ssrc)).size, 1, 'one SSRC on the leg');
    pb.received.forEach((p, i) => i > 0 && assert.equal(p.seq, (pb.received[i - 1]!.seq + 1) & 0xffff, 'consecutive seq'));
    assert.equal(pb.received[5]!.marker, true, 'marker on the first packet after the switch');
    assert.ok(((pb.received[5]!.ts - pb.received[4]!.ts) >>> 0) < 8000 * 5, 'timestamp moves forward by about the elapsed time');
    assert.deepEqual(pb.received.slice(5).map((p) => p.payload[0]), [100, 101, 102, 103, 104, 105]);
    void a;
    await pipeline.release();
  });

  test('releasing one element releases the whole pipeline, a second release and unknown ids are no-ops', { timeout: 120_000 }, async () => {
    const { pipeline, a, pa } = await call2();
    assert.equal((await fetchStats(server.port)).elements, 2);
    await a.release();
    const s = await fetchStats(server.port);
    assert.deepEqual([s.pipelines, s.elements, s.boundPorts], [0, 0, 0]);
    // the phone was told: an RTCP BYE arrived at its socket
    await pa.waitFor(() => pa.rtcpReceived.some((b) => parseRtcpCompound(b).bye), 3000, 'RTCP BYE');
    await pipeline.release();
    const manager = await client.getServerManager();
    assert.deepEqual(await call(manager, 'getPipelines'), []);
  });
});
