import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { waitFor } from '../helpers/media-webrtc-peer';
import { pollPause } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const IceCandidate = (require('kurento-client') as { getComplexType(n: string): (v: Record<string, unknown>) => unknown }).getComplexType('IceCandidate');

/**
 * Acceptance of ferry media on the browser side, with real Chromium
 * (Debian /usr/bin/chromium through playwright-core, fake microphone) on test/e2e/pages/media-webrtc-call.html:
 * - audio through a pipeline (WebRtcEndpoint <-> RtpEndpoint) to a plain dgram RTP peer: the peer counts
 *   the browser's packets, the browser's getStats shows packets received from the peer;
 * - ferry-side release: Chromium's DTLS transport reaches closed/failed within 1 s (close_notify; measured);
 * - browser pc.close(): the WebRtcEndpoint ends with reason dtls-close within 1 s (measured).
 * Signalling: kurento-client with trickle ICE both ways.
 */
const PAGE = fs.readFileSync(path.join(__dirname, 'pages', 'media-webrtc-call.html'), 'utf8');

interface PageLog {
  what: string;
  state: string;
  at: number;
}

describe('media: real Chromium through WebRtcEndpoint <-> RtpEndpoint', { timeout: 90_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  let web: http.Server;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
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

  interface Call {
    page: Page;
    pipeline: KurentoObjectLike;
    webrtc: KurentoObjectLike;
    phone: RtpTestPeer;
    events: { type: string; data: Record<string, unknown>; at: number }[];
    stopTrickle: () => void;
  }

  async function startCall(mode: { ferryOffers?: boolean; phoneCodec?: 'PCMU' | 'PCMA' } = {}): Promise<Call> {
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    const pipeline = await client.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const phone = await RtpTestPeer.open();
    closers.push(() => phone.close());
    const events: Call['events'] = [];
    for (const type of ['IceCandidateFound', 'IceGatheringDone', 'MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'MediaSessionTerminated', 'MediaStateChanged']) {
      webrtc.on(type, (data) => {
        events.push({ type, data, at: Date.now() });
        if (type === 'IceCandidateFound') void page.evaluate((c) => (window as unknown as { ferryAddCandidate(c: unknown): Promise<void> }).ferryAddCandidate(c), data.candidate).catch(() => undefined);
      });
    }
    const pt = mode.phoneCodec === 'PCMA' ? 8 : 0;
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp({ codecs: [[pt, `${mode.phoneCodec ?? 'PCMU'}/8000`], [101, 'telephone-event/8000']] })));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);

    type PageApi = { ferryOffer(): Promise<string>; ferryAnswer(s: string): Promise<void>; ferryAnswerOffer(s: string): Promise<string> };
    if (mode.ferryOffers) {
      const offer = await call<string>(webrtc, 'generateOffer');
      const answer = await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswerOffer(sdp), offer);
      await call(webrtc, 'processAnswer', answer);
    } else {
      const offer = await page.evaluate(() => (window as unknown as PageApi).ferryOffer());
      const answer = await call<string>(webrtc, 'processOffer', offer);
      await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswer(sdp), answer);
    }
    await call(webrtc, 'gatherCandidates');
    // Browser candidates trickle to ferry media; only loopback UDP host candidates are used.
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
    return { page, pipeline, webrtc, phone, events, stopTrickle: () => (trickling = false) };
  }

  const pageLog = (page: Page) => page.evaluate(() => (window as unknown as { ferryLog: PageLog[] }).ferryLog);
  const pageStats = (page: Page) =>
    page.evaluate(() => (window as unknown as { ferryStats(): Promise<Record<string, unknown>> }).ferryStats()) as Promise<{
      inPackets: number;
      outPackets: number;
      inCodec: string | null;
      dtlsState: string | null;
      srtpCipher: string | null;
      connectionState: string;
    }>;

  test('audio both ways between Chromium and a dgram RTP peer; release tells Chromium within 1 s', async () => {
    const c = await startCall();
    await waitFor(() => c.events.some((e) => e.type === 'IceGatheringDone'), 10_000, 'IceGatheringDone');
    // The phone sends 50 packets/s of PCMU for 2 s while the browser sends its fake microphone.
    let sent = 0;
    const timer = setInterval(() => {
      c.phone.send(0, Buffer.alloc(160, 0xff));
      sent++;
    }, 20);
    closers.push(() => clearInterval(timer));
    await c.phone.waitFor(() => c.phone.received.filter((p) => p.pt === 0).length >= 50, 15_000, 'the phone to receive 50 packets from Chromium');
    await waitFor(() => sent >= 100, 10_000, 'the phone to send 100 packets');
    clearInterval(timer);
    let stats = await pageStats(c.page);
    await waitFor(() => stats.inPackets > 0, 5000, 'Chromium getStats packetsReceived');
    for (let i = 0; i < 20 && stats.inPackets < 50; i++) {
      await pollPause(100);
      stats = await pageStats(c.page);
    }
    const fromBrowser = c.phone.received.filter((p) => p.pt === 0);
    assert.ok(fromBrowser.length >= 50, `phone received ${fromBrowser.length} packets from Chromium`);
    assert.ok(fromBrowser.every((p) => p.payload.length === 160), 'PCMU 20 ms frames');
    assert.ok(stats.inPackets >= 50, `Chromium received ${stats.inPackets} of the phone's ${sent} packets`);
    assert.equal(stats.inCodec, 'audio/PCMU');
    assert.equal(stats.dtlsState, 'connected');
    assert.ok(c.events.some((e) => e.type === 'MediaFlowOutStateChanged' && e.data.state === 'FLOWING'));
    assert.ok(c.events.some((e) => e.type === 'MediaFlowInStateChanged' && e.data.state === 'FLOWING'));

    c.stopTrickle();
    const t0 = Date.now();
    await c.pipeline.release();
    let log: PageLog[] = [];
    for (let i = 0; i < 15 && !log.some((l) => l.what === 'dtls' && (l.state === 'closed' || l.state === 'failed')); i++) {
      log = await pageLog(c.page);
      await pollPause(100);
    }
    const closed = log.find((l) => l.what === 'dtls' && (l.state === 'closed' || l.state === 'failed'));
    assert.ok(closed, `Chromium saw no DTLS close: ${JSON.stringify(log)}`);
    const latency = closed.at - t0;
    console.log(`# measured: ferry release -> Chromium DTLS ${closed.state} in ${latency} ms`);
    assert.ok(latency < 1000, `Chromium learned after ${latency} ms`);
    const s = await fetchStats(server.port);
    assert.deepEqual([s.pipelines, s.elements, s.boundPorts], [0, 0, 0]);
  });

  test('ferry offers (generateOffer), Chromium answers: a PCMA phone and the browser hear each other', async () => {
    const c = await startCall({ ferryOffers: true, phoneCodec: 'PCMA' });
    const timer = setInterval(() => c.phone.send(8, Buffer.alloc(160, 0xd5)), 20);
    closers.push(() => clearInterval(timer));
    await c.phone.waitFor(() => c.phone.received.filter((p) => p.pt === 8).length >= 50, 15_000, 'the phone to receive 50 PCMA packets from Chromium');
    let stats = await pageStats(c.page);
    for (let i = 0; i < 50 && stats.inPackets < 50; i++) {
      await pollPause(100);
      stats = await pageStats(c.page);
    }
    clearInterval(timer);
    assert.ok(stats.inPackets >= 50, `Chromium received ${stats.inPackets} packets`);
    assert.equal(stats.inCodec, 'audio/PCMA');
    c.stopTrickle();
    await c.pipeline.release();
    const s = await fetchStats(server.port);
    assert.deepEqual([s.pipelines, s.elements, s.boundPorts], [0, 0, 0]);
  });

  test('Chromium pc.close(): the WebRtcEndpoint ends with reason dtls-close within 1 s', async () => {
    const c = await startCall();
    await waitFor(() => c.events.some((e) => e.type === 'MediaFlowOutStateChanged' && e.data.state === 'FLOWING'), 15_000, 'media from Chromium');
    c.stopTrickle();
    await c.page.evaluate(() => (window as unknown as { ferryClose(): void }).ferryClose());
    const closedAt = (await pageLog(c.page)).find((l) => l.what === 'page')!.at;
    await waitFor(() => c.events.some((e) => e.type === 'MediaSessionTerminated'), 2000, 'MediaSessionTerminated');
    const ended = c.events.find((e) => e.type === 'MediaSessionTerminated')!;
    assert.equal(ended.data.reason, 'dtls-close');
    assert.ok(c.events.some((e) => e.type === 'MediaStateChanged' && e.data.newState === 'DISCONNECTED' && e.data.reason === 'dtls-close'));
    const latency = ended.at - closedAt;
    console.log(`# measured: Chromium pc.close() -> MediaSessionTerminated(dtls-close) in ${latency} ms`);
    assert.ok(latency < 1000, `ferry media learned after ${latency} ms`);
    await c.pipeline.release();
    const s = await fetchStats(server.port);
    assert.deepEqual([s.pipelines, s.elements, s.boundPorts], [0, 0, 0]);
  });
});
