import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { openRegisteredPage } from '../helpers/gateway-webphone';
import { startStack, waitFor, TEST_API_TOKEN, type Stack } from '../helpers/stack';

/**
 * The agent webphone page and the /status page in real Chromium against the real stack, one real
 * call webphone -> webphone through the gateway: the callee sees the caller's display name and its
 * ring tone plays; once answered the call timer counts, the quality graph gets getStats samples and
 * the keypad (disabled while idle) works; the status page shows the call's row with the media
 * server's quality figures while the call lives and drops it when it ends. Then /metrics has the
 * set-up and per-leg quality histograms, and every metric the Grafana dashboard queries. A second
 * call is transferred blind from the page (JsSIP REFER) to a third webphone.
 * Screenshots go to a temporary directory; FERRY_UPDATE_SCREENSHOTS=1 writes them to docs/images/.
 */
const DASHBOARD = path.join(__dirname, '..', '..', 'docs', 'grafana', 'ferry-dashboard.json');
const SHOTS = process.env.FERRY_UPDATE_SCREENSHOTS === '1' ? path.join(__dirname, '..', '..', 'docs', 'images') : mkdtempSync(path.join(tmpdir(), 'ferry-shots-'));

type W = Record<string, unknown> & { ferryStatus?: { polls: number; last: { calls: { id: string; quality?: { caller?: { packetsReceived: number }; callee?: { packetsReceived: number } } }[] } | null } };

/** metric names a Prometheus text scrape declares (# TYPE lines; a histogram also as _bucket/_sum/_count) and carries as samples */
export function scrapedMetricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (t) {
      names.add(t[1]!);
      if (t[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(t[1]! + s);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

/** the ferry_* metric names a PromQL expression uses */
export function queriedMetricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bferry_[a-z0-9_]+/g) ?? [])];
}

describe('agent webphone and /status page (Chromium, real calls through the gateway)', { timeout: 120_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  let alice: Page;
  let bob: Page;
  let status: Page;
  let dir: string;
  /** a webhook receiver (204 to everything), so the webhook metrics the dashboard shows exist */
  let hooks: http.Server | undefined;
  const cspViolations: string[] = [];

  /** runs `fn(window)` in the page */
  const w = <T>(p: Page, fn: (w: W) => T): Promise<T> => p.evaluate(`(${fn.toString()})(window)`) as Promise<T>;
  const state = (p: Page): Promise<string> => w(p, (x) => String(x.ferryCallState ?? ''));
  const waitState = (p: Page, s: string, ms = 10_000): Promise<unknown> => waitFor(async () => (await state(p)) === s, ms, 25, `state ${s}`);
  const keypadDisabled = (p: Page): Promise<boolean[]> => p.$$eval('#keypad button', (bs) => bs.map((b) => (b as HTMLButtonElement).disabled));
  const watchCsp = (p: Page): void => {
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  };
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-status-'));
    hooks = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => hooks!.listen(0, '127.0.0.1', r));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-status-pw', displayName: 'Alice Agent' }, { user: 'bob', password: 'bob-status-pw' }, { user: 'carol', password: 'carol-status-pw' }],
      webhooks: [{ name: 'crm', url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`, secret: 'status-test-webhook-secret' }],
    }));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    browser = await launchChromium();
    alice = await openRegisteredPage(browser, stack.httpPort, 'alice', 'alice-status-pw');
    bob = await openRegisteredPage(browser, stack.httpPort, 'bob', 'bob-status-pw');
    watchCsp(alice);
    watchCsp(bob);
    status = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
    watchCsp(status);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    hooks?.closeAllConnections();
    await new Promise<void>((r) => (hooks ? hooks.close(() => r()) : r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (process.env.FERRY_UPDATE_SCREENSHOTS !== '1') rmSync(SHOTS, { recursive: true, force: true });
  });

  test('the status page asks for the token: a wrong one is refused with a message, the right one shows the (empty) call list', async () => {
    await status.goto(`http://127.0.0.1:${stack.httpPort}/status`);
    await status.waitForSelector('#token-form:not([hidden])');
    await status.fill('#token', 'not-the-token-0123456789');
    await status.click('#token-submit');
    await status.waitForFunction(() => /refused the token/.test(document.getElementById('status-error')?.textContent ?? ''), undefined, { timeout: 5000 });
    assert.equal(await status.isVisible('#status-main'), false);
    await status.fill('#token', TEST_API_TOKEN);
    await status.click('#token-submit');
    await status.waitForFunction(() => ((window as unknown as W).ferryStatus?.polls ?? 0) > 0, undefined, { timeout: 5000 });
    assert.equal(await status.isVisible('#no-calls'), true);
    assert.equal(await status.$$eval('#calls-body tr', (r) => r.length), 0);
    // the token lives in this tab's sessionStorage, never in the URL
    assert.equal(await status.evaluate(() => sessionStorage.getItem('ferry-api-token')), TEST_API_TOKEN);
    const fav = await fetch(`http://127.0.0.1:${stack.httpPort}/favicon.svg`);
    assert.equal(fav.status, 200);
    assert.match(fav.headers.get('content-type') ?? '', /image\/svg\+xml/);
    assert.match(await fav.text(), /^<svg/);
  });

  test('a call: caller name and ring tone, timer, quality graph, keypad only in the call; the status page row comes and goes with it', async () => {
    assert.ok((await keypadDisabled(alice)).every(Boolean), 'keypad disabled while idle');
    assert.equal(await alice.isDisabled('#transfer'), true);
    const started = Date.now();
    await alice.fill('#target', 'bob');
    await alice.click('#call');
    await waitState(bob, 'ringing-in');
    assert.match((await bob.textContent('#caller-name')) ?? '', /Incoming call from Alice Agent/);
    assert.equal(await w(bob, (x) => x.ferryRinging), true, 'the ring tone plays');
    assert.ok((await keypadDisabled(bob)).every(Boolean), 'keypad disabled while ringing');
    await bob.screenshot({ path: path.join(SHOTS, 'webphone-ringing.png'), fullPage: true });
    await bob.click('#answer');
    await waitState(alice, 'connected');
    await waitState(bob, 'connected');
    assert.equal(await w(bob, (x) => x.ferryRinging), false, 'the ring tone stops on answer');

    await waitFor(async () => Number(await w(alice, (x) => x.ferryCallSeconds ?? 0)) >= 2, 10_000, 100, 'call timer at 2 s');
    assert.match((await alice.textContent('#call-timer')) ?? '', /^0:0[2-9]$/);
    await waitFor(async () => Number(await w(alice, (x) => x.ferryQualitySamples ?? 0)) >= 3, 10_000, 100, 'three quality samples');
    assert.match((await alice.textContent('#quality-text')) ?? '', /loss \d+\.\d % · jitter \d+\.\d ms · RTT/);
    const painted = await alice.$eval('#quality-graph', (c) => {
      const data = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n;
    });
    assert.ok(painted > 50, `the quality graph is drawn (${painted} pixels)`);
    assert.ok((await keypadDisabled(alice)).every((d) => !d), 'keypad enabled in the call');
    assert.equal(await alice.isDisabled('#transfer'), false);
    await alice.click('#dtmf-5');
    assert.equal(await state(alice), 'connected');

    // the status page: the call's row, with the media server's figures (sampled every 5 s)
    const row = await waitFor(async () => {
      const last = (await w(status, (x) => x.ferryStatus?.last)) as NonNullable<W['ferryStatus']>['last'];
      const c = last?.calls[0];
      return c?.quality?.caller && c.quality.caller.packetsReceived > 0 && c.quality.callee && c.quality.callee.packetsReceived > 0 ? c : undefined;
    }, 15_000, 200, 'the call with quality on the status page');
    const rowSel = `tr[data-call-id="${row.id}"]`;
    await status.waitForSelector(rowSel);
    assert.match((await status.textContent(`${rowSel} .state`)) ?? '', /answered/);
    assert.match((await status.textContent(`${rowSel} .caller`)) ?? '', /alice/);
    assert.match((await status.textContent(`${rowSel} .loss`)) ?? '', /^\d+\.\d % \/ \d+\.\d %$/);
    assert.match((await status.textContent(`${rowSel} .jitter`)) ?? '', /^\d+ ms \/ \d+ ms$/);
    assert.equal(await status.isVisible('#no-calls'), false);
    await alice.screenshot({ path: path.join(SHOTS, 'webphone-in-call.png'), fullPage: true });
    await status.screenshot({ path: path.join(SHOTS, 'status-page.png'), fullPage: true });
    for (const f of ['webphone-ringing.png', 'webphone-in-call.png', 'status-page.png']) {
      const png = readFileSync(path.join(SHOTS, f));
      assert.equal(png.subarray(1, 4).toString(), 'PNG', `${f} is a PNG`);
    }

    await bob.click('#hangup');
    await waitState(alice, 'ended', 5000);
    await status.waitForSelector(rowSel, { state: 'detached', timeout: 6000 });
    assert.equal(await status.isVisible('#no-calls'), true);
    assert.ok((await keypadDisabled(alice)).every(Boolean), 'keypad disabled again after the call');
    const seconds = Number(await w(alice, (x) => x.ferryCallSeconds));
    // two more status polls (2 s apart): a running timer would have ticked meanwhile
    const polls = Number(await w(status, (x) => x.ferryStatus?.polls ?? 0));
    await waitFor(async () => Number(await w(status, (x) => x.ferryStatus?.polls ?? 0)) >= polls + 2, 8000, 100, 'two status polls');
    assert.equal(Number(await w(alice, (x) => x.ferryCallSeconds)), seconds, 'the timer stopped');
    // the charts' last minute counts the end
    await waitFor(async () => {
      const last = (await w(status, (x) => x.ferryStatus?.last)) as unknown as { history: { ended: Record<string, number>; activeMax?: number }[] } | null;
      const h = last?.history ?? [];
      return h.some((m) => Object.values(m.ended).some((n) => n > 0)) && h.some((m) => (m.activeMax ?? 0) >= 1);
    }, 6000, 200, 'the end and the live call in the charts');
    await status.screenshot({ path: path.join(SHOTS, 'status-page-after.png'), fullPage: true });

    // the histograms observed this call: set-up time, and each leg's quality from the last sample
    const text = await metrics();
    const count = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    assert.ok(count('ferry_call_setup_seconds_count') >= 1, 'set-up time observed');
    assert.ok(count('ferry_call_answer_seconds_count') >= 1, 'answer time observed');
    assert.ok(count('ferry_call_jitter_seconds_count\\{leg="caller"\\}') >= 1, 'caller jitter observed');
    assert.ok(count('ferry_call_packet_loss_ratio_count\\{leg="callee"\\}') >= 1, 'callee loss observed');
    console.log(`# measured: call set-up to status-page row with quality ${Date.now() - started} ms (sampler period 5 s)`);
  });

  test('blind transfer from the page: bob sends alice to carol; alice and carol talk, bob is released', async () => {
    const carol = await openRegisteredPage(browser, stack.httpPort, 'carol', 'carol-status-pw');
    watchCsp(carol);
    await alice.fill('#target', 'bob');
    await alice.click('#call');
    await waitState(bob, 'ringing-in');
    await bob.click('#answer');
    await waitState(bob, 'connected');
    await waitState(alice, 'connected');
    await bob.fill('#transfer-target', 'carol');
    await bob.click('#transfer');
    await waitState(carol, 'ringing-in');
    await carol.click('#answer');
    await waitState(carol, 'connected');
    await waitState(bob, 'ended', 10_000);
    // the final NOTIFY (sipfrag 200) reached bob's page before the gateway released its leg
    assert.equal(await w(bob, (x) => x.ferryTransferred), 'carol');
    assert.equal(await state(alice), 'connected', 'alice stays in the call');
    // alice and carol hear each other: RTP both ways, counted from now on
    const stats = (p: Page): Promise<{ sent: number; received: number }> => p.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
    const [a0, c0] = [await stats(alice), await stats(carol)];
    await waitFor(async () => (await stats(alice)).received > a0.received + 25 && (await stats(carol)).received > c0.received + 25, 10_000, 100, 'RTP between alice and carol');
    await carol.click('#hangup');
    await waitState(alice, 'ended', 5000);
    await waitFor(async () => (await (await fetch(`http://127.0.0.1:${stack.mediaPort}/stats`)).json() as { pipelines: number }).pipelines === 0, 5000, 50, 'pipeline released');
    await carol.context().close();
  });

  test('no microphone, no mediaDevices: the page says so instead of calling', async () => {
    const ctx = await browser.newContext();
    // a browser that lists no audio input
    const noMic = await ctx.newPage();
    await noMic.addInitScript(() => {
      navigator.mediaDevices.enumerateDevices = async () => [];
    });
    await noMic.goto(`http://127.0.0.1:${stack.httpPort}/?user=carol`);
    await noMic.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 10_000 });
    assert.equal(await noMic.isVisible('#no-media'), false, 'positive control: mediaDevices present, no notice');
    await noMic.fill('#password', 'carol-status-pw');
    await noMic.click('#register');
    await noMic.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 10_000 });
    await noMic.fill('#target', 'bob');
    await noMic.click('#call');
    await noMic.waitForFunction(() => /No microphone found/.test(document.getElementById('message')?.textContent ?? ''), undefined, { timeout: 5000 });
    assert.equal(await state(noMic), 'idle', 'no call was tried');
    // a browser that gives the page no mediaDevices at all
    const noDevices = await ctx.newPage();
    await noDevices.addInitScript(() => {
      Object.defineProperty(navigator, 'mediaDevices', { value: undefined, configurable: true });
    });
    await noDevices.goto(`http://127.0.0.1:${stack.httpPort}/`);
    await noDevices.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 10_000 });
    assert.ok(await noDevices.isVisible('#no-media'));
    assert.match((await noDevices.textContent('#no-media')) ?? '', /no access to microphones/);
    await ctx.close();
  });

  test('the Grafana dashboard is Grafana JSON and every metric it queries is in /metrics', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { title: string; uid: string; schemaVersion: number; panels: { type: string; title: string; gridPos: Record<string, number>; targets?: { expr: string; refId: string }[] }[] };
    assert.equal(typeof dash.title, 'string');
    assert.equal(typeof dash.uid, 'string');
    assert.ok(dash.schemaVersion >= 30);
    const graphs = dash.panels.filter((p) => p.type !== 'row');
    assert.ok(graphs.length >= 10);
    const names = new Set<string>();
    for (const p of graphs) {
      assert.ok(p.title && p.gridPos && typeof p.gridPos.w === 'number' && typeof p.gridPos.h === 'number', `panel ${p.title} has a place`);
      assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel ${p.title} has targets`);
      for (const t of p.targets!) {
        assert.match(t.refId, /^[A-Z]$/);
        const used = queriedMetricNames(t.expr);
        assert.ok(used.length > 0, `${p.title}: ${t.expr} queries a ferry metric`);
        used.forEach((n) => names.add(n));
      }
    }
    const scraped = scrapedMetricNames(await metrics());
    const missing = [...names].filter((n) => !scraped.has(n));
    assert.deepEqual(missing, [], `queried but not in /metrics: ${missing.join(', ')}`);
    // positive control: the same check finds a name that is not there
    assert.equal(scraped.has('ferry_not_a_metric_total'), false);
    assert.ok(names.has('ferry_call_jitter_seconds_bucket') && names.has('ferry_call_setup_seconds_bucket'));
  });

  test('neither page broke its Content-Security-Policy', () => {
    assert.deepEqual(cspViolations, []);
  });
});
