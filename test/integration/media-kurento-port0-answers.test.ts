import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess, type MediaStats } from '../helpers/media-server-process';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';

/**
 * Port-0 answers, as Kurento Media Server's SDP agent gives them: the unmodified kurento-client drives a
 * real `bin/ferry media` process. Every m-line ferry does not carry (video, a second audio line, audio
 * without PCMU/PCMA) is answered with port 0, its media type, transport and first format (and its mid);
 * an offer with nothing usable is answered all-port-0 instead of 40205 and binds no port;
 * getRemoteSessionDescriptor returns the offer and getLocalSessionDescriptor the answer; /stats back to
 * zero after each release. The real-browser half (Chromium's audio+video offer) is
 * test/e2e/media-webrtc-chromium-port0.test.ts.
 */
const VIDEO_FORMATS = [
  'a=rtpmap:96 H264/90000',
  'a=fmtp:96 profile-level-id=42e01f;packetization-mode=1',
  'a=rtpmap:97 MP4V-ES/90000',
  'a=rtpmap:34 H263/90000',
  'a=rtpmap:98 VP8/90000',
];

/** A SIP video phone's offer: video only (H.264, MP4V-ES, H.263, VP8). */
function videoOnlyPhoneOffer(port: number): string {
  return ['v=0', 'o=phone 1 1 IN IP4 127.0.0.1', 's=video phone', 'c=IN IP4 127.0.0.1', 't=0 0', `m=video ${port} RTP/AVP 96 97 34 98`, ...VIDEO_FORMATS, 'a=sendrecv', ''].join('\r\n');
}

/** The same phone offering audio (PCMU + telephone-event, rtcp-mux) then video. */
function audioVideoPhoneOffer(peer: RtpTestPeer, videoPort: number): string {
  return peer.sdp() + [`m=video ${videoPort} RTP/AVP 96 97 34`, ...VIDEO_FORMATS.slice(0, 4), 'a=sendrecv', ''].join('\r\n');
}

/** A browser's video-only offer (BUNDLE, ICE, DTLS), as Chromium writes one. */
const WEBRTC_VIDEO_ONLY = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'a=msid-semantic: WMS',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:Vq3n',
  'a=ice-pwd:0dV3yMqA0Qh1p0sY5rQ0vZkW',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 1C:9A:41:6E:7F:06:42:B4:0E:DB:3A:77:85:38:6E:1F:8D:0A:5B:C2:4E:93:12:7A:AC:51:E4:0F:3B:68:24:D9',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtcp-mux',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:102 H264/90000',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  '',
].join('\r\n');

describe('media: port-0 answers for m-lines ferry does not carry (kurento-client, bin/ferry media)', { timeout: 60_000 }, () => {
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

  async function peer(): Promise<RtpTestPeer> {
    const p = await RtpTestPeer.open();
    peers.push(p);
    return p;
  }

  /** Every line of `answer` mirrors `offer`'s line: same type and transport, port 0 unless it is `carried`. */
  function assertMirrors(offer: string, answer: string, carried: number | undefined): void {
    const o = parse(offer).media;
    const a = parse(answer).media;
    assert.equal(a.length, o.length, `one answer line per offered line:\n${answer}`);
    a.forEach((m, i) => {
      assert.equal(m.type, o[i]!.type, `line ${i} type`);
      assert.equal(m.protocol, o[i]!.protocol, `line ${i} transport`);
      if (i === carried) {
        assert.ok(Number(m.port) > 0, `line ${i} carried`);
        return;
      }
      assert.equal(m.port, 0, `line ${i} rejected with port 0`);
      assert.equal(String(m.payloads), String(o[i]!.payloads).split(' ')[0], `line ${i}: one format from the offer`);
      assert.equal(m.mid === undefined ? undefined : String(m.mid), o[i]!.mid === undefined ? undefined : String(o[i]!.mid), `line ${i} keeps its mid`);
    });
  }

  interface ElementStats {
    id: string;
    packetsFromPeer?: number;
    hold?: string | null;
  }
  function elementOf(stats: MediaStats, id: string): ElementStats | undefined {
    return ((stats.pipelinesDetail ?? []) as { elements: ElementStats[] }[]).flatMap((p) => p.elements).find((e) => e.id === id);
  }

  async function assertServerEmpty(): Promise<void> {
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  }

  test('RtpEndpoint: a video-only offer (H.264/MP4V-ES/H.263/VP8) is answered with port 0, no port bound; descriptors return offer and answer', async () => {
    const pipeline = await client.create('MediaPipeline');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const offer = videoOnlyPhoneOffer(40_000);
    const answer = await call<string>(rtp, 'processOffer', offer);
    assertMirrors(offer, answer, undefined);
    assert.match(answer, /^m=video 0 RTP\/AVP 96\r$/m);
    assert.equal(await call<string>(rtp, 'getRemoteSessionDescriptor'), offer);
    assert.equal(await call<string>(rtp, 'getLocalSessionDescriptor'), answer);
    const stats = await server.stats();
    assert.equal(stats.boundPorts, 0, 'nothing to carry: no RTP port bound');
    await assert.rejects(call(rtp, 'generateOffer'), (e: { code?: number }) => e.code === 40208, 'negotiated');
    await pipeline.release();
    await assertServerEmpty();
  });

  test('RtpEndpoint: audio+video offer: audio answered and carried (packets both ways), video port 0', async () => {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pa = await peer();
    const pb = await peer();
    const offer = audioVideoPhoneOffer(pa, 40_002);
    const answer = await call<string>(a, 'processOffer', offer);
    assertMirrors(offer, answer, 0);
    assert.match(answer, /^m=video 0 RTP\/AVP 96\r$/m);
    assert.equal(await call<string>(a, 'getRemoteSessionDescriptor'), offer);
    pa.useRemoteSdp(answer);
    pb.useRemoteSdp(await call<string>(b, 'processOffer', audioVideoPhoneOffer(pb, 40_004)));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    for (let i = 0; i < 10; i++) {
      pa.send(0, Buffer.alloc(160, i));
      pb.send(0, Buffer.alloc(160, 50 + i));
    }
    await pb.waitFor(() => pb.received.filter((p) => p.pt === 0).length >= 10, 5000, 'audio from phone A at phone B');
    await pa.waitFor(() => pa.received.filter((p) => p.pt === 0).length >= 10, 5000, 'audio from phone B at phone A');
    assert.deepEqual(pb.received.filter((p) => p.pt === 0).map((p) => p.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await pipeline.release();
    await assertServerEmpty();
  });

  test('RtpEndpoint: nothing usable at all (G.729-only audio + video) -> every line port 0 instead of 40205; a usable offer on a fresh endpoint is carried', async () => {
    const pipeline = await client.create('MediaPipeline');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pa = await peer();
    const g729 = pa.sdp({ codecs: [[18, 'G729/8000'], [101, 'telephone-event/8000']] }) + 'm=video 40006 RTP/AVP 34\r\na=rtpmap:34 H263/90000\r\n';
    const answer = await call<string>(rtp, 'processOffer', g729);
    assertMirrors(g729, answer, undefined);
    assert.match(answer, /^m=audio 0 RTP\/AVP 18\r$/m);
    assert.equal(await call<string>(rtp, 'getRemoteSessionDescriptor'), g729);
    assert.equal((await server.stats()).boundPorts, 0);
    // positive control in the same pipeline: PCMU is carried and binds its port
    const ok = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const okAnswer = await call<string>(ok, 'processOffer', pa.sdp());
    assert.match(okAnswer, /^m=audio [1-9]\d* RTP\/AVP 0 101\r$/m);
    assert.ok((await server.stats()).boundPorts >= 1);
    await pipeline.release();
    await assertServerEmpty();
  });

  test('RtpEndpoint: a re-offer that removes the audio stream (port 0) is answered port 0; the leg sends nothing until audio comes back', async () => {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const pa = await peer();
    const pb = await peer();
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
    pb.useRemoteSdp(await call<string>(b, 'processOffer', pb.sdp()));
    await call(b, 'connect', a);
    const removed = pa.sdp().replace(/^m=audio \d+ /m, 'm=audio 0 ');
    const answer = await call<string>(a, 'processOffer', removed);
    assert.match(answer, /^m=audio 0 RTP\/AVP 0\r$/m);
    assert.equal(await call<string>(a, 'getRemoteSessionDescriptor'), removed);
    assert.equal(elementOf(await server.stats(), a.id)?.hold, 'own-sdp', 'on the hold rule while the stream is removed');
    for (let i = 0; i < 5; i++) pb.send(0, Buffer.alloc(160, i));
    // ferry media has taken in all five before the stream comes back
    await server.waitForStats((s) => elementOf(s, b.id)?.packetsFromPeer === 5, 5000);
    // positive control in the same window: B's audio is relayed again once A's stream is back
    const back = await call<string>(a, 'processOffer', pa.sdp());
    assert.match(back, /^m=audio [1-9]\d* RTP\/AVP 0 101\r$/m, 'the kept local port is offered again');
    for (let i = 0; i < 5; i++) pb.send(0, Buffer.alloc(160, 100 + i));
    await pa.waitFor(() => pa.received.some((p) => p.payload[0] === 100), 5000, 'audio again after the stream came back');
    assert.ok(!pa.received.some((p) => p.payload[0]! < 5), 'nothing sent while the stream was removed');
    await pipeline.release();
    await assertServerEmpty();
  });

  test('WebRtcEndpoint: a video-only browser offer is answered with port 0, no BUNDLE group, no ICE port; descriptors return offer and answer', async () => {
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const answer = await call<string>(webrtc, 'processOffer', WEBRTC_VIDEO_ONLY);
    assertMirrors(WEBRTC_VIDEO_ONLY, answer, undefined);
    assert.match(answer, /^m=video 0 UDP\/TLS\/RTP\/SAVPF 96\r$/m);
    assert.match(answer, /^a=mid:0\r$/m);
    assert.doesNotMatch(answer, /a=group:BUNDLE/);
    assert.equal(await call<string>(webrtc, 'getRemoteSessionDescriptor'), WEBRTC_VIDEO_ONLY);
    assert.equal(await call<string>(webrtc, 'getLocalSessionDescriptor'), answer);
    assert.equal((await server.stats()).boundPorts, 0, 'no ICE agent started');
    await assert.rejects(call(webrtc, 'processOffer', WEBRTC_VIDEO_ONLY), (e: { code?: number }) => e.code === 40208, 'negotiated, as in KMS');
    await pipeline.release();
    await assertServerEmpty();
  });
});
