import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { WebRtcTestPeer, rtpPacket, waitFor } from '../helpers/media-webrtc-peer';
import { rtcpCompoundHasBye } from '../helpers/rtcp-test-packets';
import { MAX_REMOTE_CANDIDATES } from '../../src/media/webrtc/remote-sdp-check';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurentoClient = require('kurento-client') as { getComplexType(name: string): (v: Record<string, unknown>) => unknown };
const IceCandidate = kurentoClient.getComplexType('IceCandidate');

/**
 * Acceptance, WebRTC half: the real kurento-client 7.3.0 drives ferry media (in-process
 * startMediaServer on a free port). A pipeline holds a WebRtcEndpoint (a werift WebRTC peer: full ICE,
 * DTLS-SRTP, trickle ICE through IceCandidateFound/addIceCandidate, its candidates sent before
 * processOffer) and an RtpEndpoint (a dgram "phone"), connected both ways. RTP is counted each way
 * with payload bytes compared, DTMF passes both ways with payload types mapped, the ICE and flow
 * events arrive, and release brings /stats back to zero while the WebRTC peer is told at once.
 */
describe('media: WebRtcEndpoint <-> RtpEndpoint through kurento-client', () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
    client = await connectKurento(server.url);
  });
  after(async () => {
    for (const c of closers.splice(0)) await Promise.resolve(c()).catch(() => undefined);
    client?.close();
    await server?.close();
  });

  interface Call {
    pipeline: KurentoObjectLike;
    webrtc: KurentoObjectLike;
    rtp: KurentoObjectLike;
    browser: WebRtcTestPeer;
    phone: RtpTestPeer;
    events: { type: string; data: Record<string, unknown>; at: number }[];
    answer: string;
  }

  async function setUpCall(phoneCodec: 'PCMU' | 'PCMA'): Promise<Call> {
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const browser = new WebRtcTestPeer();
    const phone = await RtpTestPeer.open();
    closers.push(() => browser.close(), () => phone.close());
    const events: Call['events'] = [];
    for (const type of [
      'IceCandidateFound',
      'IceGatheringDone',
      'IceComponentStateChanged',
      'NewCandidatePairSelected',
      'MediaFlowInStateChanged',
      'MediaFlowOutStateChanged',
      'MediaStateChanged',
      'ConnectionStateChanged',
      'MediaSessionStarted',
    ]) {
      webrtc.on(type, (data) => {
        events.push({ type, data, at: Date.now() });
        if (type === 'IceCandidateFound') {
          const c = data.candidate as { candidate: string; sdpMid: string; sdpMLineIndex: number };
          void browser.addCandidate(c);
        }
      });
    }
    // The phone side first, so the WebRtcEndpoint answers the browser with the phone's codec.
    const pt = phoneCodec === 'PCMU' ? 0 : 8;
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp({ codecs: [[pt, `${phoneCodec}/8000`], [101, 'telephone-event/8000']] })));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);

    const offer = await browser.createOffer();
    // Trickled browser candidates go out before processOffer; kurento-client pipelines them.
    const early = browser.candidates.map((c) => call(webrtc, 'addIceCandidate', IceCandidate(c)));
    const answerP = call<string>(webrtc, 'processOffer', offer);
    await Promise.all(early);
    const answer = await answerP;
    await browser.setAnswer(answer);
    await call(webrtc, 'gatherCandidates');
    await browser.connected;
    // The browser here is the DTLS server: it is connected one flight before ferry's endpoint (the client) is.
    await waitFor(() => events.some((e) => e.type === 'ConnectionStateChanged' && e.data.newState === 'CONNECTED'), 10_000, "ferry's WebRtcEndpoint connected");
    return { pipeline, webrtc, rtp, browser, phone, events, answer };
  }

  test('negotiates, relays RTP and DTMF both ways with payloads intact, fires ICE/flow events, release -> zero', { timeout: 30_000 }, async () => {
    const c = await setUpCall('PCMU');
    const m = parse(c.answer).media[0]!;
    assert.equal(m.direction, 'sendrecv');
    assert.deepEqual(m.rtp.map((r) => `${r.payload} ${r.codec}`), ['0 PCMU', '126 telephone-event']);

    const N = 50;
    const fromBrowser: Buffer[] = [];
    const fromPhone: Buffer[] = [];
    for (let i = 0; i < N; i++) {
      const pb = Buffer.from(`browser->phone ${i} `.padEnd(160, String.fromCharCode(65 + (i % 26))));
      const pp = Buffer.from(`phone->browser ${i} `.padEnd(160, String.fromCharCode(97 + (i % 26))));
      c.browser.sendRtp(rtpPacket(0, 3000 + i, 160 * i, 0, pb));
      fromBrowser.push(pb);
      fromPhone.push(c.phone.send(0, pp));
      await new Promise((r) => setTimeout(r, 10));
    }
    await c.phone.waitFor(() => c.phone.received.filter((p) => p.pt === 0).length >= N, 5000, 'phone to receive the browser audio');
    await waitFor(() => c.browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 0).length >= N, 5000, 'browser to receive the phone audio');
    const atPhone = c.phone.received.filter((p) => p.pt === 0);
    const atBrowser = c.browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 0);
    assert.equal(atPhone.length, N, 'packets relayed browser -> phone');
    assert.equal(atBrowser.length, N, 'packets relayed phone -> browser');
    atPhone.forEach((p, i) => assert.deepEqual(p.payload, fromBrowser[i]));
    atBrowser.forEach((p, i) => assert.deepEqual(p.subarray(12), fromPhone[i]));
    // Sequence continuity on each outgoing leg.
    atPhone.forEach((p, i) => i > 0 && assert.equal(p.seq, (atPhone[i - 1]!.seq + 1) & 0xffff));
    atBrowser.forEach((p, i) => i > 0 && assert.equal(p.readUInt16BE(2), (atBrowser[i - 1]!.readUInt16BE(2) + 1) & 0xffff));

    // DTMF: phone PT 101 -> browser PT 126; browser PT 126 -> phone PT 101 (RFC 4733 payload unchanged).
    const ev = (end: boolean, d: number) => Buffer.from([7, (end ? 0x80 : 0) | 10, d >> 8, d & 0xff]);
    for (let i = 0; i < 3; i++) {
      c.phone.sendDtmf(101, 7, i === 2, 160 * (i + 1), 90000);
      c.browser.sendRtp(rtpPacket(126, 3100 + i, 90000, 0, ev(i === 2, 160 * (i + 1)), i === 0));
      await new Promise((r) => setTimeout(r, 10));
    }
    await c.phone.waitFor(() => c.phone.received.filter((p) => p.pt === 101).length >= 3, 5000, 'DTMF at the phone');
    await waitFor(() => c.browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 126).length >= 3, 5000, 'DTMF at the browser');
    const dtmfAtPhone = c.phone.received.filter((p) => p.pt === 101);
    const dtmfAtBrowser = c.browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 126);
    assert.deepEqual(dtmfAtPhone.map((p) => p.payload), [ev(false, 160), ev(false, 320), ev(true, 480)]);
    assert.deepEqual(dtmfAtBrowser.map((p) => p.subarray(12)), [ev(false, 160), ev(false, 320), ev(true, 480)]);

    // Events as kurento-client delivers them.
    const types = c.events.map((e) => e.type);
    const found = c.events.filter((e) => e.type === 'IceCandidateFound');
    assert.ok(found.length >= 1);
    for (const f of found) {
      const cand = f.data.candidate as Record<string, unknown>;
      assert.match(String(cand.candidate), / 127\.0\.0\.1 \d+ typ host/);
      assert.equal(typeof cand.sdpMLineIndex, 'number');
    }
    assert.ok(types.indexOf('IceGatheringDone') > types.lastIndexOf('IceCandidateFound'));
    assert.ok(types.includes('NewCandidatePairSelected'));
    assert.ok(c.events.some((e) => e.type === 'IceComponentStateChanged' && e.data.state === 'CONNECTED'));
    assert.ok(c.events.some((e) => e.type === 'MediaFlowInStateChanged' && e.data.state === 'FLOWING' && e.data.mediaType === 'AUDIO'));
    assert.ok(c.events.some((e) => e.type === 'MediaFlowOutStateChanged' && e.data.state === 'FLOWING'));
    assert.ok(c.events.some((e) => e.type === 'ConnectionStateChanged' && e.data.newState === 'CONNECTED'));
    assert.ok(c.events.some((e) => e.type === 'MediaStateChanged' && e.data.newState === 'CONNECTED'));
    assert.ok(types.includes('MediaSessionStarted'));
    assert.equal(await call(c.webrtc, 'getMediaState'), 'CONNECTED');
    assert.equal(await call(c.webrtc, 'isMediaFlowingIn', 'AUDIO'), true);
    assert.equal(await call<string>(c.webrtc, 'getLocalSessionDescriptor'), c.answer);
    assert.match(await call<string>(c.webrtc, 'getRemoteSessionDescriptor'), /^v=0/);

    const before = await fetchStats(server.port);
    assert.ok(before.boundPorts >= 2, `boundPorts ${before.boundPorts}`);
    const t0 = Date.now();
    await c.pipeline.release();
    await waitFor(() => c.browser.dtlsStates.some((s) => s.state === 'closed'), 1000, 'the WebRTC peer to see DTLS closed');
    assert.ok(c.browser.rtcpIn.some((r) => r.bye), 'RTCP BYE reached the WebRTC peer');
    assert.ok(c.phone.rtcpReceived.some((b) => rtcpCompoundHasBye(b)), 'RTCP BYE at the phone');
    const told = c.browser.dtlsStates.find((s) => s.state === 'closed')!.at - t0;
    assert.ok(told < 1000, `WebRTC peer told in ${told} ms`);
    const stats = await fetchStats(server.port);
    assert.equal(stats.pipelines, 0);
    assert.equal(stats.elements, 0);
    assert.equal(stats.boundPorts, 0);
  });

  test('a PCMA phone: the browser is answered PCMA, audio flows without transcoding', { timeout: 30_000 }, async () => {
    const c = await setUpCall('PCMA');
    const m = parse(c.answer).media[0]!;
    assert.deepEqual(m.rtp.map((r) => r.codec), ['PCMA', 'telephone-event']);
    const payload = Buffer.alloc(160, 0xd5);
    for (let i = 0; i < 10; i++) {
      c.browser.sendRtp(rtpPacket(8, 10 + i, 160 * i, 0, payload));
      c.phone.send(8, payload);
      await new Promise((r) => setTimeout(r, 10));
    }
    await c.phone.waitFor(() => c.phone.received.filter((p) => p.pt === 8).length >= 10, 5000, 'PCMA at the phone');
    await waitFor(() => c.browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 8).length >= 10, 5000, 'PCMA at the browser');
    await c.pipeline.release();
    assert.equal((await fetchStats(server.port)).boundPorts, 0);
  });

  test('generateOffer / processAnswer: ferry offers to the WebRTC peer, audio flows', { timeout: 30_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const phone = await RtpTestPeer.open();
    const browser = new WebRtcTestPeer();
    closers.push(() => browser.close(), () => phone.close());
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);
    const offer = await call<string>(webrtc, 'generateOffer');
    assert.match(offer, /a=sendrecv/);
    await assert.rejects(call(webrtc, 'processAnswer', 'v=0\r\n'), (e: { code?: number }) => e.code === 40206 || e.code === 40201);
    const answer = await browser.answer(offer);
    assert.equal(await call<string>(webrtc, 'processAnswer', answer), offer);
    await browser.connected;
    for (let i = 0; i < 10; i++) {
      browser.sendRtp(rtpPacket(0, 700 + i, 160 * i, 0, Buffer.alloc(160, i)));
      phone.send(0, Buffer.alloc(160, 100 + i));
      await new Promise((r) => setTimeout(r, 10));
    }
    await phone.waitFor(() => phone.received.filter((p) => p.pt === 0).length >= 10, 5000, 'browser audio at the phone');
    await waitFor(() => browser.rtpIn.filter((p) => (p[1]! & 0x7f) === 0).length >= 10, 5000, 'phone audio at the browser');
    assert.deepEqual(phone.received.filter((p) => p.pt === 0).map((p) => p.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await assert.rejects(call(webrtc, 'processAnswer', answer), (e: { code?: number }) => e.code === 40210);
    await pipeline.release();
    assert.equal((await fetchStats(server.port)).boundPorts, 0);
  });

  test('bad SDP gets a Kurento SDP error and leaves the endpoint usable; unknown candidates get 40401', { timeout: 30_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    await assert.rejects(call(webrtc, 'processOffer', 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n'), (e: { code?: number; message?: string }) => {
      assert.equal(e.code, 40205);
      assert.match(String(e.message), /ice-ufrag/);
      return true;
    });
    await assert.rejects(call(webrtc, 'addIceCandidate', IceCandidate({ candidate: 'candidate:garbage', sdpMid: '0', sdpMLineIndex: 0 })), (e: { code?: number }) => e.code === 40401);
    const browser = new WebRtcTestPeer();
    closers.push(() => browser.close());
    const offer = await browser.createOffer();
    const answer = await call<string>(webrtc, 'processOffer', offer);
    assert.match(answer, /a=sendrecv/);
    await assert.rejects(call(webrtc, 'processOffer', offer), (e: { code?: number }) => e.code === 40208);
    await pipeline.release();
    assert.equal((await fetchStats(server.port)).boundPorts, 0);
  });

  test('remote ICE candidates are bounded: 64 trickled are taken, the 65th is refused; an offer with 65 in its audio m-line is refused', { timeout: 30_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    // loopback targets: the endpoint that takes them sends its ICE checks there once it has an offer
    const candidate = (i: number): string => `candidate:${i} 1 udp ${2_000_000 - i} 127.0.0.${(i % 250) + 1} ${40_000 + i} typ host`;
    for (let i = 0; i < MAX_REMOTE_CANDIDATES; i++) await call(webrtc, 'addIceCandidate', IceCandidate({ candidate: candidate(i), sdpMid: '0', sdpMLineIndex: 0 }));
    await assert.rejects(call(webrtc, 'addIceCandidate', IceCandidate({ candidate: candidate(99), sdpMid: '0', sdpMLineIndex: 0 })), (e: { code?: number; message?: string }) => {
      assert.equal(e.code, 40401);
      assert.match(String(e.message), /too many remote ICE candidates \(at most 64\)/);
      return true;
    });
    const browser = new WebRtcTestPeer();
    closers.push(() => browser.close());
    const offer = await browser.createOffer();
    const flooded = offer.replace(/(m=audio[^\r\n]*\r?\n)/, (m) => m + Array.from({ length: MAX_REMOTE_CANDIDATES + 1 }, (_, i) => `a=${candidate(i)}\r\n`).join(''));
    const other = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    await assert.rejects(call(other, 'processOffer', flooded), (e: { message?: string }) => /more than 64 ICE candidates/.test(String(e.message)));
    // positive control: the same endpoint takes the browser's own offer, and the first one (64 trickled) answers too
    assert.match(await call<string>(other, 'processOffer', offer), /a=sendrecv/);
    const second = new WebRtcTestPeer();
    closers.push(() => second.close());
    assert.match(await call<string>(webrtc, 'processOffer', await second.createOffer()), /a=sendrecv/);
    await pipeline.release();
    assert.equal((await fetchStats(server.port)).boundPorts, 0);
  });
});
