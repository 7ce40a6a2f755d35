import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { freePort } from '../helpers/free-port';
import { startStack, type Stack } from '../helpers/stack';

/**
 * The webphone page in real Chromium, against the real stack: it never takes a password from its
 * URL; opened over plain http:// from another machine (not a secure context, no microphone) it says
 * so and links to the HTTPS page; a call whose browser gathers no ICE candidate fails with a message
 * within a few seconds instead of staying "calling"; its Content-Security-Policy blocks nothing the
 * page needs (no violation while registering and calling).
 * "Another machine" is this host's own non-loopback address: Chromium treats only localhost and
 * 127.0.0.0/8 as potentially trustworthy over http://.
 */
const HTTPS_URL = 'https://phone.example.org:3443/';

function otherAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

describe('webphone page on a real network (Chromium)', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let browser: Browser;
  const cspViolations: string[] = [];

  const open = async (url: string): Promise<Page> => {
    const page = await (await browser.newContext()).newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 15_000 });
    return page;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-page-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-page-secret' }, { user: 'bob', password: 'bob-page-secret' }],
      trunks: [],
      routes: [{ match: '.*', to: 'user' }],
    }, null, 2));
    stack = await startStack({
      partEnv: {
        gateway: {
          FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'),
          // every interface, so the page can be opened from "another machine" too
          FERRY_HTTP_HOST: '0.0.0.0',
          FERRY_HTTPS_URL: HTTPS_URL,
        },
      },
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('?password= in the URL does not fill the form (the user name may come from the URL)', async () => {
    const page = await open(`http://127.0.0.1:${stack.httpPort}/?user=alice&password=alice-page-secret`);
    assert.equal(await page.inputValue('#user'), 'alice', 'positive control: the URL is read');
    assert.equal(await page.inputValue('#password'), '', 'the password field stays empty');
    await page.click('#register');
    await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'failed', undefined, { timeout: 15_000 });
    await page.context().close();
  });

  test('over http:// from another machine the page says it is not a secure context and links to the HTTPS page', async (t) => {
    const local = await open(`http://127.0.0.1:${stack.httpPort}/`);
    assert.equal(await local.evaluate(() => window.isSecureContext), true);
    assert.equal(await local.isVisible('#not-secure'), false, 'positive control: no notice on a secure context');
    await local.context().close();

    const remote = otherAddress();
    if (!remote) return t.skip('this host has no non-loopback IPv4 address');
    const page = await open(`http://${remote}:${stack.httpPort}/`);
    assert.equal(await page.evaluate(() => window.isSecureContext), false, `http://${remote} is not a secure context`);
    assert.ok(await page.isVisible('#not-secure'), 'the notice shows');
    assert.match((await page.textContent('#not-secure')) ?? '', /not a secure context/);
    assert.equal(await page.getAttribute('#https-link', 'href'), HTTPS_URL);
    await page.context().close();
  });

  test('a call whose browser gathers no ICE candidate fails with a message within a few seconds', async () => {
    const page = await (await browser.newContext()).newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    // relay-only through a TURN server that is not there: Chromium gathers nothing
    const deadTurn = await freePort({ protocols: ['udp', 'tcp'] });
    await page.route('**/api/webphone-config', async (route) => {
      const real = (await (await route.fetch()).json()) as Record<string, unknown>;
      await route.fulfill({ json: { ...real, iceServers: [{ urls: `turn:127.0.0.1:${deadTurn}`, username: 'u', credential: 'p' }], iceTransportPolicy: 'relay' } });
    });
    await page.goto(`http://127.0.0.1:${stack.httpPort}/?user=alice`);
    await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 15_000 });
    await page.fill('#password', 'alice-page-secret');
    await page.click('#register');
    await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15_000 });
    await page.fill('#target', 'bob');
    const t0 = Date.now();
    await page.click('#call');
    await page.waitForFunction(() => (window as unknown as { ferryCallState?: string }).ferryCallState === 'failed', undefined, { timeout: 15_000 });
    const ms = Date.now() - t0;
    assert.match((await page.textContent('#message')) ?? '', /no network path for audio/);
    assert.ok(ms < 10_000, `failed after ${ms} ms`);
    console.log(`# measured: no ICE candidate -> call failed with a message after ${ms} ms`);
    await page.context().close();
  });

  test('the Content-Security-Policy blocked nothing the page did (registering, calling)', () => {
    assert.deepEqual(cspViolations, []);
  });
});
