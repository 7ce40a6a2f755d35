import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { launchChromium } from '../helpers/chromium';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { pollPause, pollUntil } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const IceCandidate = (require('kurento-client') as { getComplexType(n: string): (v: Record<string, unknown>) => unknown }).getComplexType('IceCandidate');

/**
 * The WebRTC leg's RTCP against real Chromium (test/e2e/pages/media-webrtc-call.html):
 * - the SSRC kurento-client's getStats reports for the WebRtcEndpoint's outbound stream is the SSRC
 *   Chromium's getStats reports for its inbound audio (what is really on the wire), and the other way round;
 * - Chromium computes a round-trip time from ferry's receiver reports (our LSR/DLSR echo is right), and
 *   ferry computes one from Chromium's reports about our stream;
 * - two concurrent close() calls of a WebRTC leg send one goodbye (one SRTCP BYE, one close_notify).
 */
const PAGE = fs.readFileSync(path.join(__dirname, 'pages', 'media-webrtc-call.html'), 'utf8');
const logger = createLogger('test.media-rtcp-chromium');

interface ChromiumRtp {
  inboundSsrc?: number;
  inboundPackets: number;
  outboundSsrc?: number;
  remoteInboundRtt?: number;
  remoteInboundSsrc?: number;
}

/** Chromium's own view: inbound-rtp / outbound-rtp / remote-inbound-rtp of its audio. */
function chromiumRtp(page: Page): Promise<ChromiumRtp> {
  return page.evaluate(async () => {
    const o: { inboundSsrc?: number; inboundPackets: number; outboundSsrc?: number; remoteInboundRtt?: number; remoteInboundSsrc?: number } = { inboundPackets: 0 };
    const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
    stats.forEach((s: Record<string, unknown>) => {
      if (s.kind !== 'audio') return;
      if (s.type === 'inbound-rtp') {
        o.inboundSsrc = s.ssrc as number;
        o.inboundPackets = s.packetsReceived as number;
      }
      if (s.type === 'outbound-rtp') o.outboundSsrc = s.ssrc as number;
      if (s.type === 'remote-inbound-rtp') {
        o.remoteInboundSsrc = s.ssrc as number;
        o.remoteInboundRtt = s.roundTripTime as number | undefined;
      }
    });
    return o;
  });
}

describe('media: RTCP and SSRC of the WebRTC leg against real Chromium', { timeout: 60_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  let web: http.Server;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', rtcpIntervalMs: 500 } });
    client = await connectKurento(server.url);
    web = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    browser = await launchChromium();
  });
  after(async () => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
    await browser?.close().catch(() => undefined);
    client?.close();
    await server?.close();
    await new Promise((r) => web?.close(r));
  });

  async function newPage(): Promise<Page> {
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    return page;
  }

  type PageApi = { ferryOffer(): Promise<string>; ferryAnswer(s: string): Promise<void>; ferryAddCandidate(c: unknown): Promise<void>; ferryTakeCandidates(): { candidate: string; sdpMid: string; sdpMLineIndex: number }[] };

  /** Chromium's loopback UDP host candidates, handed to `add` until the returned stop function is called. */
  function trickleFromPage(page: Page, add: (c: { candidate: string; sdpMid: string; sdpMLineIndex: number }) => Promise<unknown>): () => Promise<void> {
    let on = true;
    const loop = (async () => {
      while (on) {
        const cands = await page.evaluate(() => (window as unknown as PageApi).ferryTakeCandidates()).catch(() => []);
        for (const c of cands) if (/ udp /i.test(c.candidate) && / 127\.0\.0\.1 /.test(c.candidate)) await add(c).catch(() => undefined);
        await pollPause(50);
      }
    })();
    return () => {
      on = false;
      return loop;
    };
  }

  test('kurento-client getStats: WebRtcEndpoint outbound ssrc = Chromium inbound ssrc (and back); RTT both ways from RTCP', { timeout: 45_000 }, async () => {
    const page = await newPage();
    const pipeline = await client.create('MediaPipeline');
    closers.push(() => pipeline.release());
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const phone = await RtpTestPeer.open();
    closers.push(() => phone.close());
    webrtc.on('IceCandidateFound', (data) => void page.evaluate((c) => (window as unknown as PageApi).ferryAddCandidate(c), data.candidate).catch(() => undefined));
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);
    const offer = await page.evaluate(() => (window as unknown as PageApi).ferryOffer());
    const answer = await call<string>(webrtc, 'processOffer', offer);
    await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswer(sdp), answer);
    await call(webrtc, 'gatherCandidates');
    const stopTrickle = trickleFromPage(page, (c) => call(webrtc, 'addIceCandidate', IceCandidate(c)));
    closers.push(stopTrickle);
    const timer = setInterval(() => phone.send(0, Buffer.alloc(160, 0xff)), 20);
    closers.push(() => clearInterval(timer));

    const seen = await pollUntil(async () => {
      const s = await chromiumRtp(page);
      return s.inboundPackets >= 25 && s.inboundSsrc !== undefined && s.outboundSsrc !== undefined ? s : undefined;
    }, { timeoutMs: 15_000, what: 'Chromium receiving the phone through ferry' });
    type Stats = Record<string, { type: string; ssrc?: string; roundTripTime?: number; packetsSent?: number }>;
    const stats = await call<Stats>(webrtc, 'getStats', 'AUDIO');
    const out = Object.values(stats).find((s) => s.type === 'outboundrtp')!;
    const inb = Object.values(stats).find((s) => s.type === 'inboundrtp')!;
    console.log(`# ssrc: ferry outbound ${out.ssrc}, Chromium inbound ${seen.inboundSsrc}; Chromium outbound ${seen.outboundSsrc}, ferry inbound ${inb.ssrc}`);
    assert.equal(out.ssrc, String(seen.inboundSsrc), 'the SSRC getStats reports is the one Chromium receives');
    assert.equal(inb.ssrc, String(seen.outboundSsrc), "ferry's inbound SSRC is Chromium's outbound one");
    assert.ok(out.packetsSent! >= seen.inboundPackets);

    // Chromium's RTT for its own stream comes from ferry's report blocks (LSR/DLSR echo of its SR).
    const chromeRtt = await pollUntil(async () => (await chromiumRtp(page)).remoteInboundRtt, { timeoutMs: 20_000, what: "Chromium's remote-inbound-rtp roundTripTime (from ferry's RR)" });
    // ferry's RTT comes from Chromium's report blocks about our stream (its LSR/DLSR echo of our SR).
    const ferryRtt = await pollUntil(async () => {
      const s = await call<Stats>(webrtc, 'getStats', 'AUDIO');
      return Object.values(s).find((x) => x.type === 'outboundrtp')!.roundTripTime;
    }, { timeoutMs: 20_000, what: "ferry's outbound roundTripTime (from Chromium's reports)" });
    console.log(`# RTT on loopback: Chromium ${chromeRtt} s, ferry ${ferryRtt} s`);
    assert.ok(chromeRtt >= 0 && chromeRtt < 0.5, `Chromium RTT ${chromeRtt} s`);
    assert.ok(ferryRtt >= 0 && ferryRtt < 0.5, `ferry RTT ${ferryRtt} s`);
    clearInterval(timer);
    await stopTrickle();
    await pipeline.release();
  });

  test('a WebRTC leg closed twice at once sends one goodbye (one SRTCP BYE compound, one close_notify); Chromium sees DTLS close', { timeout: 30_000 }, async () => {
    const page = await newPage();
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}, '127.0.0.1'), rtcpIntervalMs: 60_000 });
    closers.push(() => leg.close({ notifyPeer: false }));
    leg.on('local-candidate', (c) => void page.evaluate((x) => (window as unknown as PageApi).ferryAddCandidate(x), c).catch(() => undefined));
    const connected = new Promise<void>((resolve) => leg.once('connected', () => resolve()));
    const offer = await page.evaluate(() => (window as unknown as PageApi).ferryOffer());
    const answer = await leg.processOffer(offer, 'PCMU');
    await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswer(sdp), answer);
    await leg.gatherCandidates();
    const stopTrickle = trickleFromPage(page, (c) => leg.addRemoteCandidate(c));
    closers.push(stopTrickle);
    await connected;
    await stopTrickle();
    const rtcpOutBefore = leg.counters.rtcpOut;
    const first = leg.close({ notifyPeer: true });
    const second = leg.close({ notifyPeer: true });
    assert.equal(first, second, 'one close, one promise');
    await Promise.all([first, second]);
    await leg.close({ notifyPeer: true });
    assert.equal(leg.counters.rtcpOut - rtcpOutBefore, 1, 'one SRTCP goodbye compound sent');
    assert.equal(leg.counters.closeNotifySent, 1);
    assert.equal(leg.boundPorts(), 0);
    await pollUntil(async () => {
      const log = await page.evaluate(() => (window as unknown as { ferryLog: { what: string; state: string }[] }).ferryLog);
      return log.some((l) => l.what === 'dtls' && (l.state === 'closed' || l.state === 'failed'));
    }, { timeoutMs: 3000, what: 'Chromium DTLS closed' });
  });
});
