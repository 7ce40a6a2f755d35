/**
 * The webphone page after a server restart (docs/sip-engine.md, "New requests while no app routes
 * them"): its REGISTER reaches ferry sip while no app is connected, is held, and is answered 503 with
 * Retry-After when no app comes within the hold (here shortened to 300 ms). JsSIP does not send a failed
 * REGISTER again; the page does, after the Retry-After, and registers once the app is there. A refused
 * password (403) is not retried (control).
 *
 * The page's own files (src/gateway/http/webphone/, the JsSIP bundle the gateway serves) are served by
 * a small HTTP server here, so real Chromium runs the real page against a real ferry sip and
 * drachtio-srf app without the rest of the gateway.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { UNROUTED_RETRY_AFTER_S } from '../../src/sip/engine/unrouted-request-hold';
import { jssipBundle } from '../../src/gateway/http/jssip-bundle';
import { newChromiumContext } from '../helpers/chromium';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';

const PAGE_DIR = path.join(__dirname, '../../src/gateway/http/webphone');
const FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/webphone.js': ['webphone.js', 'text/javascript; charset=utf-8'],
  '/webphone.css': ['webphone.css', 'text/css; charset=utf-8'],
};

async function servePage(wsPort: number): Promise<http.Server> {
  const jssip = await jssipBundle();
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    const file = FILES[url];
    if (file) { res.writeHead(200, { 'Content-Type': file[1] }); res.end(readFileSync(path.join(PAGE_DIR, file[0]))); return; }
    if (url === '/jssip.js') { res.writeHead(200, { 'Content-Type': 'text/javascript' }); res.end(jssip); return; }
    if (url === '/api/webphone-config') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ wsUrl: `ws://127.0.0.1:${wsPort}`, domain: 'ferry.local', iceServers: [] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return server;
}

describe('webphone page: a REGISTER refused 503 after a server restart is retried after Retry-After', { timeout: 60_000 }, () => {
  let engine: RunningSipEngine;
  let server: http.Server;
  let srf: any;

  before(async () => {
    engine = await startSipEngine({ unroutedHold: { holdMs: 300 } });
    server = await servePage(engine.ports.ws);
  });
  after(async () => {
    try { srf?.disconnect(); } catch { /* gone */ }
    server?.close();
    await engine?.close();
  });

  async function openPage(user: string, password: string): Promise<Page> {
    const page = await (await newChromiumContext()).newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 10_000 });
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('#register');
    return page;
  }
  const regState = (page: Page): Promise<string> => page.evaluate(() => document.getElementById('reg-state')?.textContent ?? '');
  const hooks = (page: Page): Promise<{ retries: number; retryMs: number }> => page.evaluate(() => {
    const w = window as unknown as { ferryRegisterRetries?: number; ferryRegisterRetryMs?: number };
    return { retries: w.ferryRegisterRetries ?? 0, retryMs: w.ferryRegisterRetryMs ?? -1 };
  });

  test('no app for longer than the hold: 503 with Retry-After, the page retries after it and registers once the app is back; a 403 is not retried', { timeout: 45_000 }, async () => {
    const page = await openPage('alice', 'secret');
    await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'failed', undefined, { timeout: 10_000 });
    assert.match(await page.textContent('#message') ?? '', /\(503\)\. Trying again in 5 s\./);
    assert.deepEqual(await hooks(page), { retries: 1, retryMs: UNROUTED_RETRY_AFTER_S * 1000 }, 'one retry scheduled, after the Retry-After');

    // the app comes back (as the gateway's control connection would)
    const registers: string[] = [];
    srf = await connectBareSrf(engine.ports.control);
    srf.register((req: any, res: any) => {
      const user = /sip:([^@]+)@/.exec(req.get('From'))?.[1] ?? '';
      registers.push(user);
      if (user === 'mallory') { res.send(403); return; }
      res.send(200, { headers: { Contact: req.get('Contact'), Expires: '300' } });
    });
    await routesApplied(srf);
    const failedAt = Date.now();
    await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15_000 });
    const waited = Date.now() - failedAt;
    assert.deepEqual(registers, ['alice'], 'the retried REGISTER reached the app');
    assert.ok(waited >= UNROUTED_RETRY_AFTER_S * 1000 - 1500, `the page waited for the Retry-After (${waited} ms after the app was back)`);
    assert.equal((await hooks(page)).retries, 1);
    assert.equal(engine.engine.stats().bindings, 1, 'ferry sip bound alice to her WebSocket');

    // control: a refused password is final, no retry
    const refused = await openPage('mallory', 'wrong');
    await refused.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'failed', undefined, { timeout: 10_000 });
    assert.deepEqual(await hooks(refused), { retries: 0, retryMs: -1 });
    assert.doesNotMatch(await refused.textContent('#message') ?? '', /Trying again/);
    assert.deepEqual(registers, ['alice', 'mallory'], 'the refused REGISTER reached the app once');
    assert.equal(await regState(page), 'registered');
    await page.context().close();
    await refused.context().close();
  });
});
