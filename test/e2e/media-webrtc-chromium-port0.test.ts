import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'sdp-transform';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess } from '../helpers/media-server-process';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollPause, pollUntil } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const IceCandidate = (require('kurento-client') as { getComplexType(n: string): (v: Record<string, unknown>) => unknown }).getComplexType('IceCandidate');

/**
 * Real Chromium offers audio + video + a data channel to a WebRtcEndpoint of a real `bin/ferry media`
 * process (kurento-client, trickle ICE both ways): ferry answers the audio line and rejects video and
 * the data channel with port 0 (each keeping its mid, neither in the BUNDLE group); Chromium accepts the
 * answer with setRemoteDescription, and audio flows both ways between Chromium and a real RTP peer
 * behind an RtpEndpoint. getRemoteSessionDescriptor returns Chromium's offer; /stats back to zero.
 */
const PAGE = '<!doctype html><meta charset="utf-8"><title>ferry port-0 test page</title>';

describe('media: Chromium audio+video+data offer to WebRtcEndpoint gets a port-0 answer it accepts', { timeout: 90_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  let web: http.Server;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await MediaServerProcess.start();
    client = await connectKurento(server.url);
    web = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    browser = await launchChromium();
  });
  after(async () => {
    for (const c of closers.splice(0)) await Promise.resolve(c()).catch(() => undefined);
    await browser?.close().catch(() => undefined);
    client?.close();
    await server?.stop();
    await new Promise((r) => web?.close(r));
  });

  /** Chromium's offer: microphone and camera (fake devices) and a data channel; candidates collected for trickling. */
  async function browserOffer(page: Page): Promise<string> {
    const offer = await page.evaluate(async () => {
      const w = window as unknown as { pc: RTCPeerConnection; cands: RTCIceCandidateInit[] };
      const pc = (w.pc = new RTCPeerConnection());
      w.cands = [];
      pc.addEventListener('icecandidate', (e) => {
        if (e.candidate && e.candidate.candidate) w.cands.push(e.candidate.toJSON());
      });
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      pc.createDataChannel('chat');
      const o = await pc.createOffer();
      await pc.setLocalDescription(o);
      return o.sdp!;
    });
    return offer;
  }

  test('other shapes of Chromium offers: video first, video only, two audio lines, Opus only, max-bundle: every answer accepted', async () => {
    const shapes: Record<string, { setup: string; config?: RTCConfiguration; carried: number | undefined }> = {
      'video first': { setup: "const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: true }); pc.addTrack(s.getVideoTracks()[0], s); pc.addTrack(s.getAudioTracks()[0], s);", carried: 1 },
      'video only': { setup: "const s = await navigator.mediaDevices.getUserMedia({ video: true }); pc.addTrack(s.getVideoTracks()[0], s);", carried: undefined },
      'two audio lines': { setup: "const s = await navigator.mediaDevices.getUserMedia({ audio: true }); pc.addTrack(s.getAudioTracks()[0], s); pc.addTransceiver('audio');", carried: 0 },
      'Opus only': {
        setup: "const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: true }); for (const t of s.getTracks()) pc.addTrack(t, s); pc.getTransceivers()[0].setCodecPreferences(RTCRtpReceiver.getCapabilities('audio').codecs.filter((c) => c.mimeType === 'audio/opus'));",
        carried: undefined,
      },
      'max-bundle': { setup: "const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: true }); for (const t of s.getTracks()) pc.addTrack(t, s);", config: { bundlePolicy: 'max-bundle' }, carried: 0 },
    };
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    for (const [name, shape] of Object.entries(shapes)) {
      const offer = await page.evaluate(async ({ setup, config }) => {
        const pc = new RTCPeerConnection(config);
        (window as unknown as { pc: RTCPeerConnection }).pc = pc;
        // eslint-disable-next-line @typescript-eslint/no-implied-eval
        await (new Function('pc', `return (async () => { ${setup} })()`) as (p: RTCPeerConnection) => Promise<void>)(pc);
        const o = await pc.createOffer();
        await pc.setLocalDescription(o);
        return o.sdp!;
      }, { setup: shape.setup, config: shape.config });
      const pipeline = await client.create('MediaPipeline');
      const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
      const answer = await call<string>(webrtc, 'processOffer', offer);
      const lines = parse(answer).media;
      assert.equal(lines.length, parse(offer).media.length, `${name}: one answer line per offered line`);
      lines.forEach((m, i) => assert.equal(Number(m.port) !== 0, i === shape.carried, `${name}: line ${i} ${i === shape.carried ? 'carried' : 'port 0'}`));
      const result = await page.evaluate(async (sdp) => {
        try {
          await (window as unknown as { pc: RTCPeerConnection }).pc.setRemoteDescription({ type: 'answer', sdp });
          return 'accepted';
        } catch (err) {
          return String(err);
        }
      }, answer);
      assert.equal(result, 'accepted', `${name}: Chromium refused the answer:\n${answer}`);
      await page.evaluate(() => (window as unknown as { pc: RTCPeerConnection }).pc.close());
      await pipeline.release();
    }
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });

  test('audio answered and flowing, video and data channel rejected with port 0, Chromium accepts', async () => {
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const phone = await RtpTestPeer.open();
    closers.push(() => phone.close());
    webrtc.on('IceCandidateFound', (data) => {
      void page.evaluate((c) => (window as unknown as { pc: RTCPeerConnection }).pc.addIceCandidate(c as RTCIceCandidateInit), data.candidate).catch(() => undefined);
    });
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);

    const offer = await browserOffer(page);
    const offered = parse(offer).media;
    assert.deepEqual(offered.map((m) => m.type), ['audio', 'video', 'application'], 'Chromium offers audio, video and a data channel');
    const answer = await call<string>(webrtc, 'processOffer', offer);
    const answered = parse(answer).media;
    assert.deepEqual(answered.map((m) => [m.type, Number(m.port) === 0 ? 0 : 'live', String(m.mid)]), [
      ['audio', 'live', String(offered[0]!.mid)],
      ['video', 0, String(offered[1]!.mid)],
      ['application', 0, String(offered[2]!.mid)],
    ]);
    assert.equal(String(answered[1]!.payloads), String(offered[1]!.payloads).split(' ')[0], 'video: one format from the offer');
    assert.match(answer, new RegExp(`^a=group:BUNDLE ${String(offered[0]!.mid)}\\r$`, 'm'), 'only the audio line is bundled');
    assert.equal(await call<string>(webrtc, 'getRemoteSessionDescriptor'), offer);
    assert.equal(await call<string>(webrtc, 'getLocalSessionDescriptor'), answer);

    const accepted = await page.evaluate(async (sdp) => {
      const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp });
        return { ok: true, directions: pc.getTransceivers().map((t) => `${t.receiver.track.kind}:${String(t.currentDirection)}`) };
      } catch (err) {
        return { ok: false, error: String(err) };
      }
    }, answer);
    assert.ok(accepted.ok, `Chromium refused the answer: ${accepted.error}`);
    assert.deepEqual(accepted.directions, ['audio:sendrecv'], 'the rejected video transceiver is stopped and gone; audio sendrecv');
    await call(webrtc, 'gatherCandidates');
    let trickling = true;
    const trickle = (async () => {
      while (trickling) {
        const cands = await page.evaluate(() => (window as unknown as { cands: RTCIceCandidateInit[] }).cands.splice(0)).catch(() => []);
        for (const c of cands) if (/ udp /i.test(String(c.candidate)) && / 127\.0\.0\.1 /.test(String(c.candidate))) await call(webrtc, 'addIceCandidate', IceCandidate({ ...c })).catch(() => undefined);
        await pollPause(50);
      }
    })();
    closers.push(() => {
      trickling = false;
      return trickle;
    });

    const sender = setInterval(() => phone.send(0, Buffer.alloc(160, 0xff)), 20);
    closers.push(() => clearInterval(sender));
    await phone.waitFor(() => phone.received.filter((p) => p.pt === 0).length >= 50, 20_000, '50 PCMU packets from Chromium at the RTP peer');
    const inbound = await pollUntil(
      () =>
        page.evaluate(async () => {
          let n = 0;
          (await (window as unknown as { pc: RTCPeerConnection }).pc.getStats()).forEach((s: { type: string; kind?: string; packetsReceived?: number }) => {
            if (s.type === 'inbound-rtp' && s.kind === 'audio') n = s.packetsReceived ?? 0;
          });
          return n >= 50 ? n : 0;
        }),
      { timeoutMs: 20_000, what: "Chromium to receive 50 of the RTP peer's packets" },
    );
    clearInterval(sender);
    assert.ok(inbound >= 50);
    assert.ok(phone.received.filter((p) => p.pt === 0).every((p) => p.payload.length === 160), 'PCMU 20 ms frames from Chromium');
    trickling = false;
    await trickle;
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });
});
