import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { freePort } from '../helpers/free-port';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { describeSipp, startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Webphone <-> webphone through the gateway (two WebRtcEndpoints in one pipeline), with the page's
 * hold and mute buttons and the DTMF keypad, in two real Chromium pages. An IP phone (SIPp, trusted
 * as a trunk by its address) calls a webphone whose page crashed without unregistering (480 on the
 * first call, not srf's 500) and a trunk that refuses connections (503).
 */
describe('webphone calls webphone', { timeout: 90_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let alice: Page;
  let bob: Page;
  let dir: string;
  /** the IP phone (SIPp, a trunk by its address) */
  let phonePort: number;
  const sipps: SippProcess[] = [];

  const state = (p: Page): Promise<string> => p.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
  const waitState = (p: Page, s: string, ms = 10000): Promise<unknown> => waitFor(async () => (await state(p)) === s, ms, 25, `state ${s}`);
  const stats = (p: Page): Promise<{ sent: number; received: number }> =>
    p.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());

  const open = (user: string, password: string): Promise<Page> => openRegisteredPage(browser, stack.httpPort, user, password);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-wp-'));
    phonePort = await freePort();
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'pa' }, { user: 'bob', password: 'pb', displayName: 'Bob' }, { user: 'carol', password: 'pc' }],
      trunks: [
        { name: 'pbx', address: `127.0.0.1:${await freePort()}`, transport: 'udp', acceptFrom: [`127.0.0.1:${phonePort}`] },
        // nothing listens there: a TCP connection to it is refused
        { name: 'down', address: `127.0.0.1:${await freePort()}`, transport: 'tcp' },
      ],
      routes: [{ match: '8(\\d+)', to: 'trunk:down', rewrite: '$1' }, { match: '.*', to: 'user' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    alice = await open('alice', 'pa');
    bob = await open('bob', 'pb');
  });

  after(async () => {
    for (const p of sipps) await p.stop().catch(() => undefined);
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

  /** the IP phone calls `user` with `scenario`; its result, explained on failure */
  const phoneCalls = async (user: string, scenario: string, extraArgs: string[] = []): Promise<SippProcess> => {
    const p = await startSipp({ scenario, localPort: phonePort, remote: `127.0.0.1:${stack.sipPort}`, service: user, mediaPort: await sippMediaPort(), extraArgs, lingerMs: 300, timeoutS: 20 });
    sipps.push(p);
    return p;
  };
  const newestCall = async (): Promise<CallRecord> => {
    const all = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt);
    return getJson<CallRecord>(stack.httpPort, `/api/calls/${all[0]!.id}`);
  };

  // ferry sip answers an INVITE to a Contact whose connection closed with its own 410 Gone, as
  // drachtio-server's stack does; the gateway answers the caller 480 itself (srf's createB2BUA is
  // told not to pass failures on) and drops the binding
  test('an IP phone calls a webphone that vanished without unregistering: the first call gets 480 at once and the stale binding is dropped; control: while the page is open it answers', async () => {
    const carol = await open('carol', 'pc');
    // control: the page is alive, rings and answers; the phone gets 200
    const control = await phoneCalls('carol', 'gateway-uac-call.xml', ['-rtp_echo']);
    await waitState(carol, 'ringing-in').catch(async (err: Error) => { throw new Error(`${err.message}\n${describeSipp(await control.stop())}`); });
    await carol.click('#answer');
    const answered = await control.done;
    assert.equal(answered.exitCode, 0, `the phone's call to the live webphone was answered: ${describeSipp(answered)}`);
    await waitState(carol, 'ended');
    assert.equal((await newestCall()).reason, 'sip-bye');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');

    // the browser goes without unregistering: its renderer crashes, the WebSocket drops, the binding stays
    const cdp = await carol.context().newCDPSession(carol);
    const crashed = carol.waitForEvent('crash', { timeout: 10_000 });
    void cdp.send('Page.crash').catch(() => undefined);
    await crashed;
    await carol.close().catch(() => undefined);
    assert.match(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text(), /^ferry_registrations 3$/m, 'carol still registered');

    const dialled = Date.now();
    const first = await (await phoneCalls('carol', 'gateway-uac-unavailable.xml')).done;
    assert.equal(first.exitCode, 0, `the first call got 480 (not 500): ${describeSipp(first)}`);
    assert.ok(Date.now() - dialled < 5000, `failed after ${Date.now() - dialled} ms`);
    assert.match(first.messages, /SIP\/2\.0 480 Temporarily Unavailable/);
    assert.doesNotMatch(first.messages, /SIP\/2\.0 500/);
    const rec = await newestCall();
    assert.equal(rec.reason, 'unavailable');
    const events = rec.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(',');
    assert.ok(rec.timeline.some((e) => e.event === 'stale-registration-removed'), events);
    assert.match(events, /failed\(410/, events);
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
    assert.match(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text(), /^ferry_registrations 2$/m, 'the stale binding is gone');

    // the binding is gone: the next call is refused by the router (480, no media built)
    const second = await (await phoneCalls('carol', 'gateway-uac-unavailable.xml')).done;
    assert.equal(second.exitCode, 0, `the second call got 480: ${describeSipp(second)}`);
    assert.equal((await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines, 0);
  });

  test('a webphone calls a webphone that vanished without unregistering: the caller is told Unavailable at once', async () => {
    const carol = await open('carol', 'pc');
    await carol.close(); // WebSocket closed, REGISTER binding still in the store
    await alice.evaluate(() => {
      (window as unknown as { ferryCallState?: string }).ferryCallState = 'idle';
      document.getElementById('message')!.textContent = '';
    });
    await alice.fill('#target', 'carol');
    const dialled = Date.now();
    await alice.click('#call');
    await waitState(alice, 'failed', 10000);
    assert.ok(Date.now() - dialled < 5000, `failed after ${Date.now() - dialled} ms`);
    // JsSIP's cause for 480 (a 500 reads "SIP Failure Code")
    assert.match((await alice.textContent('#message')) ?? '', /Unavailable/);
    const rec = await newestCall();
    assert.equal(rec.reason, 'unavailable');
    assert.ok(rec.timeline.some((e) => e.event === 'stale-registration-removed'), rec.timeline.map((e) => e.event).join(','));
  });

  test('an IP phone calls through a trunk whose TCP connection is refused: 503 at once (not 500), reason unavailable, no pipeline left', async () => {
    const dialled = Date.now();
    const r = await (await phoneCalls('85550100', 'gateway-uac-trunk-down.xml')).done;
    assert.equal(r.exitCode, 0, `the phone got 503: ${describeSipp(r)}`);
    assert.ok(Date.now() - dialled < 5000, `failed after ${Date.now() - dialled} ms`);
    assert.doesNotMatch(r.messages, /SIP\/2\.0 500/);
    const rec = await newestCall();
    assert.equal(rec.callee.party, 'down');
    assert.equal(rec.reason, 'unavailable');
    assert.ok(!rec.timeline.some((e) => e.event === 'stale-registration-removed'), 'a trunk has no binding to drop');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
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
