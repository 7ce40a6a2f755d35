import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess, type MediaStats } from '../helpers/media-server-process';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';

/**
 * PassThrough (Kurento's filter that forwards its sink to its sources) through the unmodified
 * kurento-client against a real `bin/ferry media` process: phone A -> RtpEndpoint A -> PassThrough ->
 * RtpEndpoint B -> phone B, packets counted at phone B's real socket with their payloads; flow events on
 * the PassThrough; one PassThrough feeding two endpoints; /stats back to zero after each release.
 */
interface ElementStats {
  id: string;
  type: string;
  packetsToPeer: number;
  packetsFromPeer: number;
}

function elementOf(stats: MediaStats, id: string): ElementStats | undefined {
  return ((stats.pipelinesDetail ?? []) as { elements: ElementStats[] }[]).flatMap((p) => p.elements).find((e) => e.id === id);
}

describe('media: PassThrough between two RtpEndpoints (kurento-client, bin/ferry media)', { timeout: 60_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];

  before(async () => {
    server = await MediaServerProcess.start();
    client = await connectKurento(server.url);
  });
  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    await server?.stop();
  });

  async function phoneCall(pipeline: KurentoObjectLike): Promise<{ a: KurentoObjectLike; b: KurentoObjectLike; pa: RtpTestPeer; pb: RtpTestPeer }> {
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    peers.push(pa, pb);
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
    // phone B numbers telephone-event 96: the sink maps by codec name, through the PassThrough too
    pb.useRemoteSdp(await call<string>(b, 'processOffer', pb.sdp({ codecs: [[0, 'PCMU/8000'], [96, 'telephone-event/8000']] })));
    return { a, b, pa, pb };
  }

  test('A -> PassThrough -> B carries every packet (payloads and DTMF payload type mapped); describe and flow events', async () => {
    const pipeline = await client.create('MediaPipeline');
    const { a, b, pa, pb } = await phoneCall(pipeline);
    const pass = await call<KurentoObjectLike>(pipeline, 'create', 'PassThrough');
    assert.match(pass.id, /^[0-9a-f-]{36}_kurento\.MediaPipeline\/[0-9a-f-]{36}_kurento\.PassThrough$/);
    const flows: string[] = [];
    pass.on('MediaFlowInStateChanged', (d) => flows.push(`in ${String(d.state)}`));
    pass.on('MediaFlowOutStateChanged', (d) => flows.push(`out ${String(d.state)}`));
    await call(a, 'connect', pass);
    await call(pass, 'connect', b);
    const sinks = await call<{ sink: { id?: string } | string; type: string }[]>(pass, 'getSinkConnections');
    assert.ok(sinks.length > 0 && sinks.every((c) => (typeof c.sink === 'string' ? c.sink : c.sink.id) === b.id), 'the PassThrough feeds B');
    for (let i = 0; i < 20; i++) pa.send(0, Buffer.alloc(160, i));
    pa.sendDtmf(101, 5, true, 800, 99_000);
    await pb.waitFor(() => pb.received.filter((p) => p.pt === 0).length >= 20 && pb.received.some((p) => p.pt === 96), 5000, '20 voice packets and one DTMF at phone B');
    assert.deepEqual(pb.received.filter((p) => p.pt === 0).map((p) => p.payload[0]), [...Array(20).keys()]);
    assert.equal(pb.received.find((p) => p.pt === 96)?.payload[0], 5, 'DTMF event 5, payload type 101 -> 96');
    const stats = await server.stats();
    assert.equal(elementOf(stats, pass.id)?.type, 'PassThrough');
    assert.equal(elementOf(stats, b.id)?.packetsToPeer, 21);
    await server.waitForStats(() => flows.includes('in FLOWING') && flows.includes('out FLOWING'), 5000);
    // positive control for the path: disconnected, nothing more arrives at B while A still sends
    await call(pass, 'disconnect', b);
    for (let i = 0; i < 5; i++) pa.send(0, Buffer.alloc(160, 200 + i));
    await server.waitForStats((s) => elementOf(s, a.id)?.packetsFromPeer === 26, 5000);
    assert.equal(pb.received.filter((p) => p.pt === 0).length, 20, 'nothing through a disconnected PassThrough');
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });

  test('one PassThrough feeding two RtpEndpoints: each phone gets every packet', async () => {
    const pipeline = await client.create('MediaPipeline');
    const { a, b, pa, pb } = await phoneCall(pipeline);
    const c = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pc = await RtpTestPeer.open();
    peers.push(pc);
    pc.useRemoteSdp(await call<string>(c, 'processOffer', pc.sdp({ codecs: [[0, 'PCMU/8000']] })));
    const pass = await call<KurentoObjectLike>(pipeline, 'create', 'PassThrough');
    await call(a, 'connect', pass);
    await call(pass, 'connect', b);
    await call(pass, 'connect', c);
    for (let i = 0; i < 10; i++) pa.send(0, Buffer.alloc(160, i));
    await pb.waitFor(() => pb.received.length >= 10, 5000, 'audio at phone B');
    await pc.waitFor(() => pc.received.length >= 10, 5000, 'audio at phone C');
    for (const p of [pb, pc]) assert.deepEqual(p.received.map((x) => x.payload[0]), [...Array(10).keys()]);
    assert.notEqual(pb.received[0]!.ssrc, pc.received[0]!.ssrc, 'each sink sends under its own SSRC');
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });
});
