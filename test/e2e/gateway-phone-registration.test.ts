import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { freePort } from '../helpers/free-port';
import { describeSipp, startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * An IP phone (SIPp over UDP) registers with digest authentication; the webphone then dials the
 * phone's user and the gateway routes the call to the phone's registered Contact.
 */
describe('IP phone registration over UDP, then a call to it', { timeout: 60_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let dir: string;
  let sipp: SippProcess | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-preg-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'pa' }, { user: '1001', password: 'desk-secret' }],
    }));
    stack = await startStack({ redisUrl: 'redis://127.0.0.1:6379', partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    page = await openRegisteredPage(browser, stack.httpPort, 'alice', 'pa');
  });

  after(async () => {
    await sipp?.stop().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a wrong phone password gets no binding', async () => {
    const bad = await startSipp({
      scenario: 'gateway-phone-register.xml', localPort: await freePort(), mediaPort: await sippMediaPort(),
      remote: `127.0.0.1:${stack.sipPort}`, service: '1001', extraArgs: ['-au', '1001', '-ap', 'wrong'], timeoutS: 5,
    });
    const r = await bad.done;
    assert.notEqual(r.exitCode, 0, 'the second REGISTER is challenged again, not accepted');
    assert.match(r.messages, /SIP\/2\.0 401/);
    assert.match(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text(), /^ferry_registrations 1$/m);
  });

  test('phone registers with digest, webphone dials 1001, RTP both ways, webphone hangs up', async () => {
    const port = await freePort();
    const reg = await startSipp({
      scenario: 'gateway-phone-register.xml', localPort: port, mediaPort: await sippMediaPort(),
      remote: `127.0.0.1:${stack.sipPort}`, service: '1001', extraArgs: ['-au', '1001', '-ap', 'desk-secret'], timeoutS: 10,
    });
    const regResult = await reg.done;
    assert.equal(regResult.exitCode, 0, describeSipp(regResult));
    // the phone, now registered at 127.0.0.1:<port>, answers calls there
    sipp = await startSipp({ scenario: 'gateway-uas-echo.xml', localPort: port, mediaPort: await sippMediaPort(), extraArgs: ['-rtp_echo'], timeoutS: 40 });
    await sipp.ready();
    await waitFor(async () => /^ferry_registrations 2$/m.test(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text()), 10000, 50, 'phone registered');
    await page.fill('#target', '1001');
    await page.click('#call');
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState)) === 'connected', 15000, 25, 'connected');
    const call = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!;
    assert.equal(call.callee.uri, `sip:1001@127.0.0.1:${port}`, 'routed to the registered Contact');
    assert.equal(call.callee.kind, 'rtp');
    await waitFor(async () => {
      const s = await page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
      return s.sent > 40 && s.received > 40;
    }, 10000, 100, 'RTP both ways');
    await page.click('#hangup');
    const r = await sipp.done;
    assert.equal(r.exitCode, 0, describeSipp(r));
    assert.match(r.messages, /INVITE sip:1001@127\.0\.0\.1:\d+ SIP\/2\.0/, 'the INVITE was sent to the registered Contact');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'released');
  });
});
