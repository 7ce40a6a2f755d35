import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { freePort } from '../helpers/free-port';
import { describeSipp, startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * RTP counted at both ends and RFC 4733 DTMF carried: the phone's signalling is SIPp, its media a
 * UDP socket of this test that counts what it receives (PCMU and telephone-event packets by
 * payload type) and sends 20 ms PCMU back (symmetric RTP), while the browser's getStats counts
 * its side. The webphone's keypad sends DTMF as RFC 4733 (RTCDTMFSender).
 */
describe('RTP both ways and DTMF from the webphone to the phone', { timeout: 60_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let dir: string;
  let uasPort: number;
  let sipp: SippProcess | undefined;
  const sock = dgram.createSocket('udp4');
  const got = { pcmu: 0, dtmf: 0, other: 0, dtmfEvents: new Set<number>() };
  let sendTimer: NodeJS.Timeout | undefined;

  before(async () => {
    uasPort = await freePort();
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-dtmf-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local', users: [{ user: 'alice', password: 'pa' }],
      trunks: [{ name: 'pbx', address: `127.0.0.1:${uasPort}` }], routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    page = await openRegisteredPage(browser, stack.httpPort, 'alice', 'pa');
  });

  after(async () => {
    if (sendTimer) clearInterval(sendTimer);
    sock.close();
    await sipp?.stop().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('phone socket counts PCMU and telephone-event; browser counts what the phone sends', async () => {
    const mport = sock.address().port;
    let peer: { address: string; port: number } | undefined;
    sock.on('message', (msg, rinfo) => {
      if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
      const pt = msg[1]! & 0x7f;
      if (pt === 0) got.pcmu++;
      else if (pt === 101) {
        got.dtmf++;
        got.dtmfEvents.add(msg[12]!);
      } else if (pt < 72 || pt > 79) got.other++; // RTCP (PT 200-204 -> second byte 72-76 masked) is not counted
      peer ??= { address: rinfo.address, port: rinfo.port };
    });
    // symmetric RTP: answer to where ferry media sends from, 20 ms PCMU silence
    let seq = 0;
    let ts = 0;
    const ssrc = 0x1234abcd;
    sendTimer = setInterval(() => {
      if (!peer) return;
      const pkt = Buffer.alloc(12 + 160, 0xff);
      pkt[0] = 0x80;
      pkt[1] = 0;
      pkt.writeUInt16BE(seq++ & 0xffff, 2);
      pkt.writeUInt32BE((ts += 160) >>> 0, 4);
      pkt.writeUInt32BE(ssrc, 8);
      sock.send(pkt, peer.port, peer.address);
    }, 20);

    sipp = await startSipp({ scenario: 'gateway-uas-media-port.xml', localPort: uasPort, mediaPort: await sippMediaPort(), keys: { mport: String(mport) }, timeoutS: 40 });
    await sipp.ready();
    await page.fill('#target', '95550150');
    await page.click('#call');
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState)) === 'connected', 15000, 25, 'connected');
    await waitFor(async () => got.pcmu > 50, 10000, 50, 'PCMU from the browser at the phone');
    const browserSide = await waitFor(async () => {
      const s = await page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
      return s.received > 50 ? s : undefined;
    }, 10000, 100, "phone's RTP at the browser");
    await page.click('#dtmf-5');
    await waitFor(async () => got.dtmfEvents.has(5), 5000, 20, 'RFC 4733 event 5 at the phone');
    await page.click('#dtmf-pound');
    await waitFor(async () => got.dtmfEvents.has(11), 5000, 20, 'RFC 4733 event # (11) at the phone');
    console.log(`# measured: phone socket got ${got.pcmu} PCMU + ${got.dtmf} telephone-event packets (events ${[...got.dtmfEvents].join(',')}); browser sent ${browserSide.sent}, received ${browserSide.received}`);
    assert.equal(got.other, 0, 'only PCMU and telephone-event arrive (the codec both legs share)');
    await page.click('#hangup');
    const r = await sipp.done;
    assert.equal(r.exitCode, 0, describeSipp(r));
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'released');
  });
});
