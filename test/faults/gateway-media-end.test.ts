import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { freePort } from '../helpers/free-port';
import { startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The media server ends a call the SIP side never ends: the IP phone (SIPp) is SIGKILLed mid-call,
 * so it sends no BYE; ferry media sees its RTP bounce (ICMP port unreachable) and emits
 * MediaSessionTerminated / DISCONNECTED with a reason; the gateway then BYEs the webphone at once
 * and releases the pipeline, recording the media's reason.
 */
describe('media events end the call (phone vanishes without BYE)', { timeout: 60_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  let dir: string;
  let uasPort: number;
  let sipp: SippProcess | undefined;

  before(async () => {
    uasPort = await freePort();
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-mend-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'pa' }],
      trunks: [{ name: 'pbx', address: `127.0.0.1:${uasPort}` }],
      routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }],
    }));
    stack = await startStack({ env: { FERRY_MEDIA_DEAD_MS: '3000' }, partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    page = await openRegisteredPage(browser, stack.httpPort, 'alice', 'pa');
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.filter((l) => l.startsWith('[gateway')).join('\n'));
    await sipp?.stop().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('SIGKILLed phone: the webphone is told (BYE) and the pipeline released, reason from the media server', async () => {
    sipp = await startSipp({ scenario: 'gateway-uas-echo.xml', localPort: uasPort, mediaPort: await sippMediaPort(), extraArgs: ['-rtp_echo'], timeoutS: 40 });
    await sipp.ready();
    await page.fill('#target', '95550199');
    await page.click('#call');
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState)) === 'connected', 15000, 25, 'connected');
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ received: number }> }).ferryStats())).received > 30, 10000, 50, 'echoed RTP');
    const call = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!;
    const killedAt = Date.now();
    process.kill(sipp.pid!, 'SIGKILL');
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState)) === 'ended', 8000, 25, 'webphone told');
    const toldMs = Date.now() - killedAt;
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
    const ended = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      return r.state === 'ended' ? r : undefined;
    }, 3000, 25, 'record ended');
    assert.equal(ended.endedBy, 'media');
    assert.ok(['icmp-unreachable', 'media-timeout'].includes(ended.reason!), `reason ${ended.reason}`);
    const events = ended.timeline.map((e) => e.event);
    assert.ok(events.includes('media-ended'), events.join(','));
    assert.ok(events.indexOf('bye-sent') >= 0 && events.indexOf('bye-sent') < events.indexOf('media-released'), `BYE to the webphone before release: ${events.join(',')}`);
    assert.ok(toldMs < 3000 + 2000, `webphone told ${toldMs} ms after the phone vanished`);
    console.log(`# phone SIGKILL -> webphone shown ended: ${toldMs} ms (reason ${ended.reason})`);
  });
});
