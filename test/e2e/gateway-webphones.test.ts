import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Webphone <-> webphone through the gateway (two WebRtcEndpoints in one pipeline), with the page's
 * hold and mute buttons and the DTMF keypad, in two real Chromium pages.
 */
describe('webphone calls webphone', { timeout: 90_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let alice: Page;
  let bob: Page;
  let dir: string;

  const state = (p: Page): Promise<string> => p.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
  const waitState = (p: Page, s: string, ms = 10000): Promise<unknown> => waitFor(async () => (await state(p)) === s, ms, 25, `state ${s}`);
  const stats = (p: Page): Promise<{ sent: number; received: number }> =>
    p.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());

  const open = (user: string, password: string): Promise<Page> => openRegisteredPage(browser, stack.httpPort, user, password);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-wp-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'pa' }, { user: 'bob', password: 'pb', displayName: 'Bob' }, { user: 'carol', password: 'pc' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    alice = await open('alice', 'pa');
    bob = await open('bob', 'pb');
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a wrong password is refused at registration', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`http://127.0.0.1:${stack.httpPort}/?user=alice`);
    await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true);
    await page.fill('#password', 'nope');
    await page.click('#register');
    await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'failed', undefined, { timeout: 15000 });
    assert.match((await page.textContent('#message')) ?? '', /Registration failed/);
    await page.close();
  });

  test('alice calls bob: both WebRTC legs carry RTP, hold/resume from the page, DTMF keys, bob hangs up', async () => {
    await alice.fill('#target', 'bob');
    await alice.click('#call');
    try {
      await waitState(bob, 'ringing-in');
    } catch (err) {
      const all = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt);
      throw new Error(`${(err as Error).message}; alice: ${await alice.textContent('#message')}; ${JSON.stringify(all.slice(0, 2).map((c) => [c.callee.uri, c.reason, c.timeline]))}`);
    }
    assert.equal(await bob.textContent('#peer'), '(alice)');
    await bob.click('#answer');
    await waitState(alice, 'connected');
    await waitState(bob, 'connected');
    const call = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!;
    assert.equal(call.caller.kind, 'webrtc');
    assert.equal(call.callee.kind, 'webrtc');
    await waitFor(async () => {
      const [a, b] = [await stats(alice), await stats(bob)];
      return a.received > 50 && b.received > 50 && a.sent > 50 && b.sent > 50;
    }, 15000, 100, 'RTP both ways between the browsers');

    await alice.click('#hold');
    await waitState(bob, 'held by the other side');
    await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).caller.direction === 'sendonly', 5000, 25, 'hold recorded');
    await waitFor(async () => (await alice.textContent('#hold')) === 'Resume', 5000, 25, 'hold button shows Resume');
    await alice.click('#hold');
    await waitState(bob, 'connected');
    // recorded once bob's answer to the carried re-INVITE is back
    await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).timeline.some((e) => e.event === 'resume'), 5000, 25, 'resume recorded');

    await alice.click('#mute');
    assert.equal(await alice.textContent('#mute'), 'Unmute');
    await alice.click('#mute');
    for (const d of ['1', 'star', 'pound']) await alice.click(`#dtmf-${d}`);
    assert.equal(await state(alice), 'connected', 'DTMF keys do not disturb the call');

    const byeAt = Date.now();
    await bob.click('#hangup');
    await waitState(alice, 'ended', 3000);
    const shownAt = await alice.evaluate(() => (window as unknown as { ferryEndedAt?: number }).ferryEndedAt!);
    assert.ok(shownAt - byeAt < 1000, `alice saw the end ${shownAt - byeAt} ms after bob hung up`);
    assert.match((await alice.textContent('#message')) ?? '', /other side hung up/);
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
    const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
    assert.equal(ended.state, 'ended');
    assert.ok(['sip-bye', 'dtls-close'].includes(ended.reason!));
  });

  // srf's createB2BUA itself answers 500 when the request to the callee cannot be sent, before the
  // gateway sees the error; the gateway records why and drops the stale binding
  test('a webphone that vanished without unregistering: callers fail at once, the stale binding is dropped', async () => {
    const carol = await open('carol', 'pc');
    await carol.close(); // WebSocket closed, REGISTER binding still in the store
    await alice.fill('#target', 'carol');
    const dialled = Date.now();
    await alice.click('#call');
    await waitState(alice, 'failed', 10000);
    assert.ok(Date.now() - dialled < 5000, `failed after ${Date.now() - dialled} ms`);
    assert.match((await alice.textContent('#message')) ?? '', /Call failed|Unavailable/);
    const rec = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt)[0]!;
    assert.equal(rec.reason, 'unavailable');
    assert.ok(rec.timeline.some((e) => e.event === 'stale-registration-removed'), rec.timeline.map((e) => e.event).join(','));
    assert.equal((await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines, 0);
    // the binding is gone: the next call is refused by the router (480, no media built)
    await alice.evaluate(() => {
      (window as unknown as { ferryCallState?: string }).ferryCallState = 'idle';
      document.getElementById('message')!.textContent = '';
    });
    await alice.click('#call');
    await waitState(alice, 'failed', 10000);
    assert.match((await alice.textContent('#message')) ?? '', /Nobody|Unavailable/);
  });

  test('calling a user who is not registered gets a clear failure', async () => {
    await bob.evaluate(() => document.getElementById('unregister')!.click());
    await waitFor(async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls.length === 0, 5000, 50, 'no call in progress');
    await waitFor(async () => /ferry_registrations 1$/m.test(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text()), 5000, 50, 'bob unregistered');
    // the page still shows the previous test's failure: clear it, so only this call's outcome can pass
    await alice.evaluate(() => {
      (window as unknown as { ferryCallState?: string }).ferryCallState = 'idle';
      document.getElementById('message')!.textContent = '';
    });
    await alice.fill('#target', 'bob');
    await alice.click('#call');
    await waitState(alice, 'failed');
    assert.match((await alice.textContent('#message')) ?? '', /Unavailable|Nobody/);
  });
});
