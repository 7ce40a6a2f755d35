import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { invokeOperation, isUnknownOperation, sendDtmfOnEndpoint } from '../../src/gateway/kurento/ferry-media-dtmf';
import type { KMediaObject } from '../../src/gateway/kurento/kurento-types';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer, type ReceivedRtp } from '../helpers/media-rtp-test-peer';
import { WebRtcTestPeer, waitFor } from '../helpers/media-webrtc-peer';
import { pollUntil } from '../helpers/wait-for';

/**
 * ferry media's `sendDtmf` extension, driven by the real kurento-client through the gateway's call
 * (src/gateway/kurento/ferry-media-dtmf.ts): two RtpEndpoints bridged, phone B talking all the time,
 * endpoint A told to send "15#" to phone A. Phone A (a real UDP socket) sees RFC 4733 packets with its
 * negotiated payload type, the leg's SSRC, continuous sequence numbers, one timestamp per event,
 * durations growing by 160, the marker on the first packet and the end bit on the last three; none of
 * B's audio during an event, B's audio again afterwards (marked, timestamps after the event). The same
 * from a WebRtcEndpoint to an independent werift peer (decrypted SRTP), and the refusals.
 */
describe('media: sendDtmf (ferry extension) through kurento-client', () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
    client = await connectKurento(server.url);
  });
  const browsers: WebRtcTestPeer[] = [];
  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    for (const b of browsers) await b.close();
    await server?.close();
  });

  async function bridge(phoneACodecs?: [number, string][]): Promise<{ pipeline: KurentoObjectLike; a: KurentoObjectLike; pa: RtpTestPeer; pb: RtpTestPeer }> {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    peers.push(pa, pb);
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp(phoneACodecs ? { codecs: phoneACodecs } : {})));
    pb.useRemoteSdp(await call<string>(b, 'generateOffer'));
    await call(b, 'processAnswer', pb.sdp({ codecs: [[0, 'PCMU/8000'], [96, 'telephone-event/8000']] }));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    return { pipeline, a, pa, pb };
  }

  const isEvent = (p: ReceivedRtp): boolean => p.pt === 101;
  const eventCode = (p: ReceivedRtp): number => p.payload[0]!;
  const endBit = (p: ReceivedRtp): boolean => (p.payload[1]! & 0x80) !== 0;
  const duration = (p: ReceivedRtp): number => p.payload.readUInt16BE(2);

  test('RFC 4733 packets: payload type, SSRC, sequence, one timestamp per event, durations, marker, end bits; audio suppressed during events', { timeout: 30_000 }, async () => {
    const { pipeline, a, pa, pb } = await bridge();
    // phone B talks every 20 ms for the whole test
    const talk = setInterval(() => pb.send(0, Buffer.alloc(160, 0xff)), 20);
    try {
      await pa.waitFor(() => pa.received.length >= 5, 5000, 'audio from B at A');
      const before = pa.received.length;
      const outcome = await sendDtmfOnEndpoint(a as unknown as KMediaObject, { tones: '15#', durationMs: 100, gapMs: 50 });
      assert.equal(outcome.ok, true);
      assert.ok(outcome.ok && outcome.untilMs >= 300 && outcome.untilMs <= 400, `untilMs ${JSON.stringify(outcome)}`);
      // 3 events of 100 ms: 4 growing packets + 3 end packets each
      await pa.waitFor(() => pa.received.filter(isEvent).length >= 21, 5000, '21 telephone-event packets at A');
      // and B's audio again after the last event
      const lastEventIdx = () => pa.received.map(isEvent).lastIndexOf(true);
      await pa.waitFor(() => pa.received.length > lastEventIdx() + 2, 5000, 'audio after the events');

      const got = pa.received.slice(before);
      const events = got.filter(isEvent);
      assert.equal(events.length, 21, 'no more than 21');
      const stats = await call<Record<string, { type: string; ssrc?: string }>>(a, 'getStats', 'AUDIO');
      const legSsrc = Number(Object.values(stats).find((s) => s.type === 'outboundrtp')!.ssrc);
      assert.ok(pa.received.every((p) => p.ssrc === legSsrc), "every packet (audio and events) carries the leg's own SSRC");
      // sequence numbers continue the stream (loopback: nothing lost or reordered)
      pa.received.forEach((p, i) => i > 0 && assert.equal(p.seq, (pa.received[i - 1]!.seq + 1) & 0xffff, `seq at ${i}`));

      const byEvent = [events.slice(0, 7), events.slice(7, 14), events.slice(14, 21)];
      assert.deepEqual(byEvent.map((e) => e.map(eventCode)), [Array(7).fill(1), Array(7).fill(5), Array(7).fill(11)]);
      const dump = byEvent.map((e) => e.map((p) => `${eventCode(p)}/${duration(p)}${endBit(p) ? 'E' : ''}${p.marker ? 'M' : ''}@${p.ts}`).join(' ')).join(' | ');
      for (const ev of byEvent) {
        assert.equal(new Set(ev.map((p) => p.ts)).size, 1, `one timestamp per event: ${dump}`);
        assert.deepEqual(ev.map(duration), [160, 320, 480, 640, 800, 800, 800], dump);
        assert.deepEqual(ev.map(endBit), [false, false, false, false, true, true, true], dump);
        assert.deepEqual(ev.map((p) => p.marker), [true, false, false, false, false, false, false], dump);
        assert.ok(ev.every((p) => p.payload.length === 4 && (p.payload[1]! & 0x3f) === 10), `volume 10: ${dump}`);
        // nothing relayed from B arrives inside an event
        const first = got.indexOf(ev[0]!);
        const last = got.indexOf(ev[6]!);
        assert.equal(last - first, 6, `no audio between the first and the last packet of an event: ${got.map((p) => p.pt).join(',')}`);
      }
      // timestamps: events follow the audio before them and each other by at least the duration and most of
      // the gap (the gap's audio carries the talking phone's own clock, re-anchored to ours: a few samples' slack)
      const audioBefore = pa.received.slice(0, pa.received.indexOf(events[0]!)).filter((p) => p.pt === 0);
      assert.ok(audioBefore.length >= 5, 'audio before the first event');
      const tsDiff = (x: number, y: number) => (x - y) >>> 0;
      assert.ok(tsDiff(byEvent[0]![0]!.ts, audioBefore.at(-1)!.ts) < 8000, 'the first event continues the audio clock');
      assert.ok(tsDiff(byEvent[1]![0]!.ts, byEvent[0]![0]!.ts) >= 800 + 200 && tsDiff(byEvent[1]![0]!.ts, byEvent[0]![0]!.ts) < 8000, `event 2 starts after event 1 and (most of) the gap: ${dump}`);
      assert.ok(tsDiff(byEvent[2]![0]!.ts, byEvent[1]![0]!.ts) >= 800 + 200 && tsDiff(byEvent[2]![0]!.ts, byEvent[1]![0]!.ts) < 8000, `event 3 starts after event 2 and (most of) the gap: ${dump}`);
      const audioAfter = got.slice(got.indexOf(events[20]!) + 1);
      assert.equal(audioAfter[0]!.pt, 0);
      assert.equal(audioAfter[0]!.marker, true, 'audio after an event is marked');
      assert.ok(tsDiff(audioAfter[0]!.ts, byEvent[2]![0]!.ts) >= 800 && tsDiff(audioAfter[0]!.ts, byEvent[2]![0]!.ts) < 8000, 'audio resumes after the event');
      // B's audio flowed in the gaps (positive control of the suppression check above)
      const between = got.slice(got.indexOf(byEvent[0]![6]!) + 1, got.indexOf(byEvent[1]![0]!));
      assert.ok(between.some((p) => p.pt === 0), 'audio relayed in the gap between events');

      const s = await fetchStats(server.port);
      const ep = s.pipelinesDetail.flatMap((p) => p.elements).find((e) => e.id === a.id) as { dtmf?: { eventsSent: number; packetsSent: number; relayedDropped: number } };
      assert.equal(ep.dtmf?.eventsSent, 3);
      assert.equal(ep.dtmf?.packetsSent, 21);
      assert.ok((ep.dtmf?.relayedDropped ?? 0) > 0, 'B audio was dropped during the events');
    } finally {
      clearInterval(talk);
      await pipeline.release();
    }
    const after = await fetchStats(server.port);
    assert.deepEqual([after.pipelines, after.elements, after.boundPorts], [0, 0, 0]);
  });

  test('a peer that did not negotiate telephone-event: a clear Kurento error, nothing sent', { timeout: 30_000 }, async () => {
    const { pipeline, a, pa, pb } = await bridge([[0, 'PCMU/8000']]);
    try {
      const outcome = await sendDtmfOnEndpoint(a as unknown as KMediaObject, { tones: '1', durationMs: 100 });
      assert.equal(outcome.ok, false);
      assert.ok(!outcome.ok && outcome.reason === 'not-negotiated');
      assert.match(!outcome.ok ? outcome.detail : '', /did not negotiate telephone-event\/8000/);
      await assert.rejects(invokeOperation(a as unknown as KMediaObject, 'sendDtmf', { tones: '1' }), (err: Error & { code?: number }) => err.code === 40005);
      // positive control in the same window: B's audio does reach A, and no event does
      pb.send(0, Buffer.alloc(160, 0xff));
      await pa.waitFor(() => pa.received.length >= 1, 5000, 'audio at A');
      assert.equal(pa.received.filter((p) => p.pt !== 0).length, 0);
    } finally {
      await pipeline.release();
    }
  });

  test('bad parameters are refused naming the parameter; an unknown operation is recognised as one (the KMS fallback path)', { timeout: 30_000 }, async () => {
    const { pipeline, a } = await bridge();
    const obj = a as unknown as KMediaObject;
    try {
      for (const [params, name] of [
        [{ tones: '1X' }, 'tones'],
        [{ tones: '' }, 'tones'],
        [{ tones: '1', durationMs: 39 }, 'durationMs'],
        [{ tones: '1', durationMs: 2001 }, 'durationMs'],
        [{ tones: '1', gapMs: -1 }, 'gapMs'],
        [{ tones: '1', durationMs: 'long' }, 'durationMs'],
      ] as const) {
        await assert.rejects(invokeOperation(obj, 'sendDtmf', params), (err: Error & { code?: number }) => err.code === 40107 && err.message.includes(`'${name}'`), JSON.stringify(params));
      }
      await assert.rejects(invokeOperation(obj, 'sendDtmfNope', { tones: '1' }), (err: unknown) => isUnknownOperation(err, 'sendDtmfNope'));
      // an unnegotiated endpoint refuses too
      const fresh = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      await assert.rejects(invokeOperation(fresh as unknown as KMediaObject, 'sendDtmf', { tones: '1' }), (err: Error & { code?: number }) => err.code === 40108 && /no negotiated media session/.test(err.message));
    } finally {
      await pipeline.release();
    }
  });

  test("WebRtcEndpoint: the events reach a WebRTC peer (DTLS-SRTP) with the negotiated payload type and the leg's SSRC", { timeout: 30_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    try {
      const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
      const browser = new WebRtcTestPeer();
      browsers.push(browser);
      const offer = await call<string>(webrtc, 'generateOffer');
      const tePt = Number(/a=rtpmap:(\d+) telephone-event\/8000/i.exec(offer)?.[1]);
      assert.ok(tePt >= 96, `telephone-event in the offer:\n${offer}`);
      await call(webrtc, 'processAnswer', await browser.answer(offer));
      await browser.connected;
      await pollUntil(async () => (await call<string>(webrtc, 'getConnectionState')) === 'CONNECTED' || undefined, { timeoutMs: 10_000, stepMs: 20, what: "ferry's WebRtcEndpoint connected" });
      const outcome = await sendDtmfOnEndpoint(webrtc as unknown as KMediaObject, { tones: '9', durationMs: 60, gapMs: 0 });
      assert.equal(outcome.ok, true, JSON.stringify(outcome));
      const events = () => browser.rtpIn.filter((p) => (p[1]! & 0x7f) === tePt);
      await waitFor(() => events().length >= 5, 5000, '5 telephone-event packets at the WebRTC peer');
      const got = events();
      assert.equal(got.length, 5);
      assert.deepEqual(got.map((p) => p.readUInt16BE(14)), [160, 320, 480, 480, 480]);
      assert.deepEqual(got.map((p) => p[12]), [9, 9, 9, 9, 9]);
      assert.deepEqual(got.map((p) => (p[13]! & 0x80) !== 0), [false, false, true, true, true]);
      assert.deepEqual(got.map((p) => (p[1]! & 0x80) !== 0), [true, false, false, false, false]);
      const stats = await call<Record<string, { type: string; ssrc?: string }>>(webrtc, 'getStats', 'AUDIO');
      const legSsrc = Number(Object.values(stats).find((x) => x.type === 'outboundrtp')!.ssrc);
      assert.ok(got.every((p) => p.readUInt32BE(8) === legSsrc), 'the leg SSRC the peer negotiated');
    } finally {
      await pipeline.release();
    }
  });
});
