import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import type { SrtpProfileName } from '../../src/media/srtp/srtp-profile';
import { launchChromium } from '../helpers/chromium';
import { pollPause, pollUntil } from '../helpers/wait-for';

/**
 * ferry's own packet path (RFC 7983 demultiplexer, ferry's SRTP contexts keyed from the DTLS exporter)
 * against real Chromium (test/e2e/pages/media-webrtc-call.html), with a bare WeriftLeg, both offer
 * directions: RTP counted both ways, and both sides clean — ferry refuses nothing (no SRTP authentication
 * failure, no replay, nothing off the selected pair), Chromium's inbound packetsReceived grows and keeps
 * up with what ferry sent (a packet Chromium cannot decrypt is never counted as received), and its
 * packetsDiscarded does not grow. The SRTP profile Chromium's getStats names is the one ferry keyed:
 * AES_CM_128_HMAC_SHA1_80 when Chromium offers and when ferry offers (its default preference), and
 * AEAD_AES_128_GCM when ferry offers with GCM preferred: both profiles end to end through ferry's contexts.
 */
const PAGE = fs.readFileSync(path.join(__dirname, 'pages', 'media-webrtc-call.html'), 'utf8');
const logger = createLogger('test.media-webrtc-chromium-srtp');

interface ChromiumView {
  received: number;
  discarded: number;
  lost: number;
  sent: number;
  srtpCipher: string | null;
  dtlsState: string | null;
}

function chromiumView(page: Page): Promise<ChromiumView> {
  return page.evaluate(async () => {
    const o = { received: 0, discarded: 0, lost: 0, sent: 0, srtpCipher: null as string | null, dtlsState: null as string | null };
    const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
    stats.forEach((s: Record<string, unknown>) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        o.received = (s.packetsReceived as number) ?? 0;
        o.discarded = (s.packetsDiscarded as number) ?? 0;
        o.lost = (s.packetsLost as number) ?? 0;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') o.sent = (s.packetsSent as number) ?? 0;
      if (s.type === 'transport') {
        o.srtpCipher = (s.srtpCipher as string) ?? null;
        o.dtlsState = (s.dtlsState as string) ?? null;
      }
    });
    return o;
  });
}

type PageApi = {
  ferryOffer(): Promise<string>;
  ferryAnswer(s: string): Promise<void>;
  ferryAnswerOffer(s: string): Promise<string>;
  ferryAddCandidate(c: unknown): Promise<void>;
  ferryTakeCandidates(): { candidate: string; sdpMid: string; sdpMLineIndex: number }[];
};

describe('media: ferry-owned SRTP path against real Chromium', { timeout: 90_000 }, () => {
  let web: http.Server;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
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
    await new Promise((r) => web?.close(r));
  });

  async function connectedLeg(ferryOffers: boolean, srtpProfiles?: SrtpProfileName[]): Promise<{ page: Page; leg: WeriftLeg; fromBrowser: Buffer[] }> {
    const ctx = await browser.newContext();
    closers.push(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}, '127.0.0.1'), rtcpIntervalMs: 500, srtpProfiles });
    closers.push(() => leg.close({ notifyPeer: false }));
    const fromBrowser: Buffer[] = [];
    leg.on('rtp', (p) => fromBrowser.push(Buffer.from(p)));
    leg.on('local-candidate', (c) => void page.evaluate((x) => (window as unknown as PageApi).ferryAddCandidate(x), c).catch(() => undefined));
    const connected = new Promise<void>((resolve) => leg.once('connected', () => resolve()));
    if (ferryOffers) {
      const offer = await leg.generateOffer('PCMU');
      const answer = await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswerOffer(sdp), offer);
      await leg.processAnswer(answer);
    } else {
      const offer = await page.evaluate(() => (window as unknown as PageApi).ferryOffer());
      const answer = await leg.processOffer(offer, 'PCMU');
      await page.evaluate((sdp) => (window as unknown as PageApi).ferryAnswer(sdp), answer);
    }
    await leg.gatherCandidates();
    let trickling = true;
    const trickle = (async () => {
      while (trickling) {
        const cands = await page.evaluate(() => (window as unknown as PageApi).ferryTakeCandidates()).catch(() => []);
        for (const c of cands) if (/ udp /i.test(c.candidate) && / 127\.0\.0\.1 /.test(c.candidate)) await leg.addRemoteCandidate(c).catch(() => undefined);
        await pollPause(50);
      }
    })();
    closers.push(() => {
      trickling = false;
      return trickle;
    });
    await connected;
    return { page, leg, fromBrowser };
  }

  // Which profile: the DTLS server picks from what the client offers. Chromium offering makes it the server
  // (werift answers a=setup:active) and it picks AES-CM; ferry offering makes ferry the server, and ferry's
  // preference decides (AES-CM by default; GCM first when the leg is told so).
  const cases: { name: string; ferryOffers: boolean; srtpProfiles?: SrtpProfileName[]; expect: SrtpProfileName }[] = [
    { name: 'Chromium offers', ferryOffers: false, expect: 'AES_CM_128_HMAC_SHA1_80' },
    { name: 'ferry offers (default preference)', ferryOffers: true, expect: 'AES_CM_128_HMAC_SHA1_80' },
    { name: 'ferry offers, GCM preferred', ferryOffers: true, srtpProfiles: ['AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80'], expect: 'AEAD_AES_128_GCM' },
  ];
  for (const { name, ferryOffers, srtpProfiles, expect } of cases) {
    test(`${name}: ${expect} — RTP counted both ways through ferry's SRTP, getStats clean on both sides`, { timeout: 60_000 }, async () => {
      const { page, leg, fromBrowser } = await connectedLeg(ferryOffers, srtpProfiles);
      const neg = leg.negotiated()!;
      let seq = 1000;
      const send = () => {
        const p = Buffer.alloc(172, 0xff);
        p[0] = 0x80;
        p[1] = neg.codec.payloadType;
        p.writeUInt16BE(seq & 0xffff, 2);
        p.writeUInt32BE((seq * 160) >>> 0, 4);
        seq++;
        leg.sendRtp(p);
      };
      const timer = setInterval(send, 20);
      closers.push(() => clearInterval(timer));

      const first = await pollUntil(async () => {
        const v = await chromiumView(page);
        return v.received >= 50 && fromBrowser.length >= 50 ? v : undefined;
      }, { timeoutMs: 20_000, what: '50 packets each way through the new path' });
      const second = await pollUntil(async () => {
        const v = await chromiumView(page);
        return v.received >= first.received + 50 ? v : undefined;
      }, { timeoutMs: 20_000, what: "Chromium's packetsReceived to grow by 50 more" });
      clearInterval(timer);
      await pollUntil(() => leg.counters.rtcpIn >= 1, { timeoutMs: 15_000, what: "Chromium's SRTCP through ferry's context" });

      const sentByFerry = leg.counters.srtpOut;
      const profile = leg.srtpProfile;
      console.log(
        `# ${name}: profile ${profile} (Chromium srtpCipher ${second.srtpCipher}); ferry sent ${sentByFerry}, Chromium received ${second.received} (discarded ${second.discarded}, lost ${second.lost}); Chromium sent ${second.sent}, ferry received ${leg.activity().packetsIn}; demux ${JSON.stringify(leg.demuxCounters)}`,
      );
      // ferry's side: everything from the selected pair authenticated and decrypted
      assert.equal(leg.counters.srtpRefused, 0, 'no SRTP/SRTCP authentication failure at ferry');
      assert.equal(leg.counters.replayedDropped, 0, 'no replay at ferry');
      assert.equal(leg.demuxCounters.mediaOffPath, 0);
      assert.ok(leg.activity().packetsIn >= 50 && fromBrowser.every((p) => p.length === 172 && (p[1]! & 0x7f) === neg.codec.payloadType), 'PCMU frames from Chromium');
      assert.ok(leg.counters.rtcpIn >= 1, 'SRTCP from Chromium decrypted');
      // Chromium's side: it decrypts what ferry protects
      assert.ok(second.received > first.received, 'inbound packetsReceived grows');
      assert.ok(second.received >= sentByFerry * 0.8 - 10, `Chromium received ${second.received} of ${sentByFerry}`);
      assert.equal(second.discarded, first.discarded, 'packetsDiscarded does not grow');
      assert.equal(second.dtlsState, 'connected');
      // Chromium names the DTLS-SRTP profile (RFC 5764 §4.1.2, RFC 7714 §14.2)
      const dtlsName = { AES_CM_128_HMAC_SHA1_80: 'SRTP_AES128_CM_HMAC_SHA1_80', AEAD_AES_128_GCM: 'SRTP_AEAD_AES_128_GCM' }[profile!];
      assert.equal(second.srtpCipher, dtlsName, "Chromium's negotiated SRTP cipher is the profile ferry keyed");
      assert.equal(profile, expect);
      await leg.close({ notifyPeer: true });
      assert.equal(leg.boundPorts(), 0);
    });
  }
});
