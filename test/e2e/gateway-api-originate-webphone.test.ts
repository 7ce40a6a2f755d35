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
import { getJson, sippMediaPort, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Click-to-call acceptance: originate A = the webphone page in Chromium (registered as alice) and
 * B = a SIPp phone behind a trunk (its media a UDP socket of this test that counts what it gets and
 * sends 20 ms PCMU back). A rings and is answered on the page, then B rings and answers; packets
 * are counted both ways; the API holds and resumes the webphone (the page shows it); DELETE ends it: the page sees the end, SIPp gets its BYE (scenario passes),
 * the pipeline is released.
 */
describe('originate webphone -> SIPp phone through the REST API', { timeout: 90_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let dir: string;
  let uasPort: number;
  let sipp: SippProcess | undefined;
  const sock = dgram.createSocket('udp4');
  let pcmuAtPhone = 0;
  let sendTimer: NodeJS.Timeout | undefined;

  before(async () => {
    uasPort = await freePort();
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-api-webphone-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local', users: [{ user: 'alice', password: 'alice-secret-1' }],
      trunks: [{ name: 'pbx', address: `127.0.0.1:${uasPort}` }], routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    page = await openRegisteredPage(browser, stack.httpPort, 'alice', 'alice-secret-1');
  });

  after(async () => {
    if (sendTimer) clearInterval(sendTimer);
    sock.close();
    await sipp?.stop().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('A rings and answers, B rings and answers, packets both ways; DELETE ends both and releases the pipeline', async () => {
    let peer: { address: string; port: number } | undefined;
    sock.on('message', (msg, rinfo) => {
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== 0) return;
      pcmuAtPhone++;
      peer ??= { address: rinfo.address, port: rinfo.port };
    });
    let seq = 0;
    let ts = 0;
    sendTimer = setInterval(() => {
      if (!peer) return;
      const pkt = Buffer.alloc(12 + 160, 0xff);
      pkt[0] = 0x80;
      pkt[1] = 0;
      pkt.writeUInt16BE(seq++ & 0xffff, 2);
      pkt.writeUInt32BE((ts += 160) >>> 0, 4);
      pkt.writeUInt32BE(0x5eed1234, 8);
      sock.send(pkt, peer.port, peer.address);
    }, 20);
    sipp = await startSipp({ scenario: 'gateway-uas-media-port.xml', localPort: uasPort, mediaPort: await sippMediaPort(), keys: { mport: String(sock.address().port) }, timeoutS: 40 });
    await sipp.ready();

    const res = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ a: 'alice', b: '95550150', tags: { agent: 'alice' } }),
    });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    const state = (): Promise<string | undefined> => page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState);
    await waitFor(async () => (await state()) === 'ringing-in', 10_000, 25, 'A rings (the page)');
    // the page rings when JsSIP has the INVITE; the record says ringing once its 180 reached the gateway
    const ringing = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
      return r.state === 'ringing' ? r : undefined;
    }, 5000, 25, 'the record says ringing');
    assert.ok(!ringing.timeline.some((e) => e.event === 'callee-answered'), 'B is not called before A answers');
    await page.click('#answer');
    const record = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
      return r.state === 'answered' ? r : undefined;
    }, 15_000, 50, 'B answered and the call bridged');
    assert.equal(record.caller.kind, 'webrtc');
    assert.equal(record.callee.kind, 'rtp');
    await waitFor(async () => (await state()) === 'connected', 10_000, 25, 'page connected');
    await waitFor(() => pcmuAtPhone > 50, 10_000, 50, 'PCMU from the browser at the phone');
    const browserSide = await waitFor(async () => {
      const s = await page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
      return s.received > 50 ? s : undefined;
    }, 10_000, 100, "the phone's RTP at the browser");
    console.log(`# measured: phone socket got ${pcmuAtPhone} PCMU; browser sent ${browserSide.sent}, received ${browserSide.received}`);

    // hold/resume of the webphone by the API: JsSIP sees the re-INVITE's direction
    const control = async (what: string, body: unknown): Promise<Record<string, unknown>> => {
      const r = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/${what}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const json = (await r.json()) as Record<string, unknown>;
      assert.equal(r.status, 200, JSON.stringify(json));
      return json;
    };
    const held = await control('hold', { party: 'caller' });
    assert.equal((held.directions as Record<string, string>).caller, 'recvonly');
    await waitFor(async () => (await state()) === 'held by the other side', 5000, 25, 'the page held');
    await control('resume', { party: 'caller' });
    await waitFor(async () => (await state()) === 'connected', 5000, 25, 'the page resumed');
    const afterResume = pcmuAtPhone;
    await waitFor(() => pcmuAtPhone > afterResume + 25, 5000, 25, 'PCMU from the browser again after resume');

    const del = await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    assert.equal(del.status, 200);
    await waitFor(async () => (await state()) === 'ended', 5000, 25, 'the page told');
    const r = await sipp.done;
    assert.equal(r.exitCode, 0, describeSipp(r));
    const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    assert.equal(ended.reason, 'api-hangup');
    const events = ended.timeline.map((e) => e.event);
    assert.ok(events.indexOf('a-answered') < events.indexOf('callee-ringing') && events.indexOf('callee-ringing') < events.indexOf('answered'), events.join(','));
    assert.deepEqual(ended.tags, { agent: 'alice' });
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
  });
});
