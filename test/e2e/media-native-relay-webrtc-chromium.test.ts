import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { currentOffloadController } from '../../src/media/native/offload-controller';
import { nativeRelay } from '../../src/media/native/native-relay';
import type { WeriftLeg, WeriftLegOptions } from '../../src/media/webrtc/werift-leg';
import type { SrtpProfileName } from '../../src/media/srtp/srtp-profile';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollPause, pollUntil } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const IceCandidate = (require('kurento-client') as { getComplexType(n: string): (v: Record<string, unknown>) => unknown }).getComplexType('IceCandidate');

/**
 * FERRY_MEDIA_RELAY=native against real Chromium (Debian /usr/bin/chromium through playwright-core, fake
 * microphone, test/e2e/pages/media-webrtc-call.html): Chromium <-> WebRtcEndpoint <-> RtpEndpoint <-> a dgram
 * phone sending 50 packets/s. Once both directions are routed natively, Chromium's SRTP (its fake microphone) is
 * decrypted by the native relay and reaches the phone, and the phone's RTP is encrypted natively and decrypted
 * by Chromium: Chromium's getStats counts every packet ferry sent and loses none (a packet it could not decrypt
 * would be missing), ferry refuses nothing of Chromium's, Chromium's SRTCP still reaches ferry (passed up), and a
 * hold/resume of the phone hands the SRTP streams to JavaScript and back without Chromium losing a packet.
 * Both SRTP profiles the native contexts implement: Chromium offering makes it the DTLS server, and it picks
 * AES_CM_128_HMAC_SHA1_80 whenever the client offers it (C1); ferry offering makes ferry the DTLS server, and a
 * leg that prefers AEAD_AES_128_GCM (WeriftLegOptions.srtpProfiles) gets GCM from Chromium, which offers it
 * after AES-CM (C2). Chromium's getStats names the cipher.
 */
const PAGE = fs.readFileSync(path.join(__dirname, 'pages', 'media-webrtc-call.html'), 'utf8');

interface ChromiumStats {
  inPackets: number;
  inLost: number;
  inDiscarded: number;
  outPackets: number;
  srtpCipher: string | null;
  dtlsState: string | null;
}

describe('media: FERRY_MEDIA_RELAY=native with real Chromium', { timeout: 120_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  let web: http.Server;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', relay: 'native', workers: 1, rtcpIntervalMs: 500 } });
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
    await server?.close();
    await new Promise((r) => web?.close(r));
  });

  const chromiumStats = (page: Page): Promise<ChromiumStats> =>
    page.evaluate(async () => {
      const o = { inPackets: 0, inLost: 0, inDiscarded: 0, outPackets: 0, srtpCipher: null as string | null, dtlsState: null as string | null };
      const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
      stats.forEach((s: Record<string, unknown>) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          o.inPackets = Number(s.packetsReceived ?? 0);
          o.inLost = Number(s.packetsLost ?? 0);
          o.inDiscarded = Number(s.packetsDiscarded ?? 0);
        }
        if (s.type === 'outbound-rtp' && s.kind === 'audio') o.outPackets = Number(s.packetsSent ?? 0);
        if (s.type === 'transport') {
          o.srtpCipher = (s.srtpCipher as string | undefined) ?? null;
          o.dtlsState = (s.dtlsState as string | undefined) ?? null;
        }
      });
      return o;
    });

  function elementStats(stats: Awaited<ReturnType<typeof fetchStats>>, id: string): Record<string, unknown> {
    for (const p of stats.pipelinesDetail) for (const e of p.elements) if (e.id === id) return e;
    throw new Error(`element ${id} not in /stats`);
  }

  async function routedBoth(a: string, b: string): Promise<void> {
    await pollUntil(
      async () => {
        const st = await fetchStats(server.port);
        return (elementStats(st, a).nativeRelay === 'routed' && elementStats(st, b).nativeRelay === 'routed') || undefined;
      },
      { timeoutMs: 10_000, what: 'both directions routed natively (/stats nativeRelay)' },
    );
  }

  // each test's own closers, last first (the phone's timer stops before the phone closes), also when it fails
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });

  // `chromiumCipher`: the name Chromium's getStats gives the profile
  const cases: { name: string; ferryOffers: boolean; srtpProfiles?: SrtpProfileName[]; cipher: SrtpProfileName; chromiumCipher: string }[] = [
    { name: 'C1 Chromium offers', ferryOffers: false, cipher: 'AES_CM_128_HMAC_SHA1_80', chromiumCipher: 'SRTP_AES128_CM_HMAC_SHA1_80' },
    {
      name: 'C2 ferry offers with AEAD_AES_128_GCM preferred',
      ferryOffers: true,
      srtpProfiles: ['AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80'],
      cipher: 'AEAD_AES_128_GCM',
      chromiumCipher: 'SRTP_AEAD_AES_128_GCM',
    },
  ];
  for (const { name, ferryOffers, srtpProfiles, cipher, chromiumCipher } of cases) test(`${name} (${cipher}): both directions natively, Chromium decrypts every packet ferry sent, ferry refuses nothing, hold/resume on the phone loses nothing, release -> zero`, async () => {
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    const pipeline = await client.create('MediaPipeline');
    closers.push(() => pipeline.release());
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const phone = await RtpTestPeer.open();
    closers.push(() => phone.close());
    webrtc.on('IceCandidateFound', (data) => {
      void page.evaluate((c) => (window as unknown as { ferryAddCandidate(c: unknown): Promise<void> }).ferryAddCandidate(c), data.candidate).catch(() => undefined);
    });
    const phoneSdp = (direction: string): string => phone.sdp({ codecs: [[0, 'PCMU/8000'], [101, 'telephone-event/8000']], direction });
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phoneSdp('sendrecv')));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);
    const leg = (server.mediaSet.lookup(webrtc.id) as unknown as { leg: WeriftLeg }).leg;
    // the leg's SRTP profile preference (decides when ferry is the DTLS server), set before it offers
    if (srtpProfiles) (leg as unknown as { options: WeriftLegOptions }).options.srtpProfiles = srtpProfiles;
    type PageApi = { ferryOffer(): Promise<string>; ferryAnswer(s: string): Promise<void>; ferryAnswerOffer(s: string): Promise<string> };
    if (ferryOffers) {
      const offer = await call<string>(webrtc, 'generateOffer');
      const answer = await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswerOffer(sdp), offer);
      await call(webrtc, 'processAnswer', answer);
    } else {
      const offer = await page.evaluate(() => (window as unknown as PageApi).ferryOffer());
      const answer = await call<string>(webrtc, 'processOffer', offer);
      await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswer(sdp), answer);
    }
    await call(webrtc, 'gatherCandidates');
    let trickling = true;
    const trickle = (async () => {
      while (trickling) {
        const cands = await page
          .evaluate(() => (window as unknown as { ferryTakeCandidates(): { candidate: string; sdpMid: string; sdpMLineIndex: number }[] }).ferryTakeCandidates())
          .catch(() => []);
        for (const c of cands) if (/ udp /i.test(c.candidate) && / 127\.0\.0\.1 /.test(c.candidate)) await call(webrtc, 'addIceCandidate', IceCandidate(c));
        await pollPause(50);
      }
    })();
    closers.push(() => {
      trickling = false;
      return trickle;
    });

    // the phone: 50 packets/s (a real-time pace, as a phone sends)
    let sending = true;
    const timer = setInterval(() => sending && phone.send(0, Buffer.alloc(160, 0xff)), 20);
    closers.push(() => clearInterval(timer));
    await pollUntil(() => leg.dtlsState() === 'CONNECTED' || undefined, { timeoutMs: 15_000, what: "ferry's WebRTC leg connected to Chromium" });
    assert.equal(leg.srtpProfile, cipher, 'the SRTP profile ferry keyed');
    await routedBoth(webrtc.id, rtp.id);
    const forwarded0 = nativeRelay().counters().forwarded;
    const atPhone0 = phone.received.filter((p) => p.pt === 0).length;
    const chromium0 = await chromiumStats(page);
    await pollUntil(async () => (await chromiumStats(page)).inPackets >= chromium0.inPackets + 100 || undefined, { timeoutMs: 15_000, what: '100 more packets at Chromium' });
    await phone.waitFor(() => phone.received.filter((p) => p.pt === 0).length >= atPhone0 + 100, 15_000, "100 more of Chromium's packets at the phone");
    assert.ok(nativeRelay().counters().forwarded - forwarded0 >= 200, 'both directions through the native relay');
    assert.equal(currentOffloadController()?.routeCount, 2);
    // Chromium's SRTCP reaches ferry's leg (passed up by the native relay)
    const rtcpIn = leg.counters.rtcpIn;
    await pollUntil(() => leg.counters.rtcpIn > rtcpIn || undefined, { timeoutMs: 15_000, what: "Chromium's SRTCP at ferry's leg" });

    // hold and resume on the phone side, while both keep sending
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phoneSdp('sendonly')));
    await pollUntil(async () => elementStats(await fetchStats(server.port), webrtc.id).nativeRelay === 'js' || undefined, { timeoutMs: 5000, what: 'the route into the held phone removed' });
    const heldAtBrowser = (await chromiumStats(page)).inPackets;
    await pollUntil(async () => (await chromiumStats(page)).inPackets >= heldAtBrowser + 25 || undefined, { timeoutMs: 10_000, what: 'the phone audio at Chromium during the hold' });
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phoneSdp('sendrecv')));
    await routedBoth(webrtc.id, rtp.id);
    const resumedAtPhone = phone.received.filter((p) => p.pt === 0).length;
    const resumedAtBrowser = (await chromiumStats(page)).inPackets;
    await phone.waitFor(() => phone.received.filter((p) => p.pt === 0).length >= resumedAtPhone + 50, 15_000, "Chromium's audio at the phone after the resume");
    await pollUntil(async () => (await chromiumStats(page)).inPackets >= resumedAtBrowser + 50 || undefined, { timeoutMs: 15_000, what: 'the phone audio at Chromium after the resume' });

    // stop the phone; Chromium has then received exactly what ferry sent, lost none, and ferry refused nothing
    sending = false;
    clearInterval(timer);
    const sentToBrowser = await pollUntil(
      async () => {
        const st = await chromiumStats(page);
        return st.inPackets === leg.counters.srtpOut ? st : undefined;
      },
      { timeoutMs: 10_000, what: "Chromium's packetsReceived equal to what ferry sent (srtpOut)" },
    );
    console.log(`# Chromium: received ${sentToBrowser.inPackets}, lost ${sentToBrowser.inLost}, discarded ${sentToBrowser.inDiscarded}, sent ${sentToBrowser.outPackets}, ${sentToBrowser.srtpCipher}`);
    assert.equal(sentToBrowser.inLost, 0, 'Chromium lost (could not decrypt) none of ferry\'s packets');
    assert.equal(sentToBrowser.dtlsState, 'connected');
    assert.equal(sentToBrowser.srtpCipher, chromiumCipher, "the cipher Chromium's getStats names");
    assert.equal(leg.counters.srtpRefused, 0, "ferry refused none of Chromium's SRTP");
    assert.equal(leg.counters.replayedDropped, 0);
    const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(webrtc, 'getStats', 'AUDIO');
    assert.equal(Object.values(st).find((x) => x.type === 'outboundrtp')?.packetsSent, leg.counters.srtpOut, 'getStats packetsSent = SRTP sent');
    const received = Object.values(st).find((x) => x.type === 'inboundrtp')?.packetsReceived ?? 0;
    const chromiumSent = (await chromiumStats(page)).outPackets;
    // Chromium keeps sending its microphone, and its getStats figures are sampled (cached for a while): near, not equal
    assert.ok(received > 100 && Math.abs(received - chromiumSent) <= 25, `ferry counted ${received} of Chromium's ${chromiumSent} packets`);

    trickling = false;
    await pipeline.release();
    await pollUntil(async () => (await fetchStats(server.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(currentOffloadController()?.routeCount, 0, 'no route left');
    assert.equal(nativeRelay().counters().watched, 0, 'no socket left watched');
    assert.equal(nativeRelay().counters().routes, 0);
  });
});
