import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import type { BrowserContext, Page } from 'playwright-core';
import { newChromiumContext, warmChromium } from './chromium';
import { freePort } from './free-port';
import { describeSipp, startSipp, type SippProcess } from './sipp';
import { getJson, sippMediaPort, startStack, TEST_API_TOKEN, waitFor, type Stack } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The gateway's end-to-end acceptance scenarios, run through the real three processes
 * with real Chromium on the webphone page and SIPp as the IP phone. Used twice: with the
 * in-memory store and with Redis (test/e2e/gateway-calls-*.test.ts).
 */
interface MediaStats {
  pipelines: number;
  elements: number;
  boundPorts: number;
}

/** runs `fn`; on failure adds the newest call record's timeline to the error */
async function explained<T>(port: number, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    let extra = '';
    try {
      const all = (await getJson<{ calls: CallRecord[] }>(port, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt);
      extra = all[0] ? ` | newest call ${all[0].state}: ${all[0].timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ')}` : ' | no call record';
    } catch {
      /* gateway gone */
    }
    throw new Error(`${(err as Error).message}${extra}`);
  }
}

/** the call state a test writes on the page to see later that no call came (PageDriver.markState) */
const NO_CALL_MARK = 'untouched';

class PageDriver {
  constructor(readonly context: BrowserContext, readonly page: Page) {}
  state(): Promise<string> {
    return this.page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
  }
  async waitState(s: string | RegExp, timeoutMs = 10000): Promise<void> {
    await waitFor(async () => {
      const cur = await this.state();
      return typeof s === 'string' ? cur === s : s.test(cur);
    }, timeoutMs, 25, `webphone call state ${String(s)} (is ${await this.state()})`);
  }
  stats(): Promise<{ sent: number; received: number }> {
    return this.page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
  }
  endedAt(): Promise<number | undefined> {
    return this.page.evaluate(() => (window as unknown as { ferryEndedAt?: number }).ferryEndedAt);
  }
  async message(): Promise<string> {
    return (await this.page.textContent('#message')) ?? '';
  }
  /** a call on the page (ringing, talking, held): anything but no call yet, 'ended', 'failed' or a test's mark */
  async inCall(): Promise<string | undefined> {
    const s = await this.state();
    return ['', 'ended', 'failed', NO_CALL_MARK].includes(s) ? undefined : s;
  }
  /** the hang-up button, when the page offers it (an incoming call: declines it); false when it is disabled */
  hangUpIfOffered(): Promise<boolean> {
    return this.page.evaluate(() => {
      const b = document.getElementById('hangup') as HTMLButtonElement | null;
      if (!b || b.disabled) return false;
      b.click();
      return true;
    });
  }
  /**
   * writes `label` as the page's call state: any call the page sees from now on overwrites it ('ringing-in',
   * 'failed'...), so finding it unchanged later proves the page saw no call in between
   */
  async markState(label: string): Promise<void> {
    await this.page.evaluate((l) => {
      (window as unknown as { ferryCallState?: string }).ferryCallState = l;
    }, label);
  }
  async dial(target: string): Promise<void> {
    // the previous call's end stays on the page ('failed', its message) until the new call starts, which
    // can take a while (getUserMedia first): cleared here so a wait for this call's end cannot read the last one's
    await this.page.evaluate(() => {
      const w = window as unknown as { ferryEndedAt?: number; ferryCallState?: string };
      w.ferryEndedAt = undefined;
      w.ferryCallState = '';
    });
    await this.page.fill('#target', target);
    await this.page.click('#call');
  }
}

/** each scenario's own bound (its waits add up to less: see the describe) */
const TEST_MS = 90_000;
/** the clean-up after each test: SIPp stop (2 s), the page's hang-up (10 s), the calls' ends (3 + 10 s), the page and pipelines (10 s each) */
const CLEANUP_MS = 60_000;

export function gatewayCallScenarios(storeName: 'memory' | 'redis'): void {
  const redisUrl = storeName === 'redis' ? 'redis://127.0.0.1:6379' : undefined;
  // Each test has its own bound, above the sum of its own waits (the longest: ring 25 s, answer 25 s, SIPp's own
  // 40 s): a test slow but progressing is not cancelled by a bound on the whole file. The describe's bound is only
  // a backstop for the file (every test and its clean-up at their bounds). Before, the describe's 120 s was the
  // only bound and node:test counts it for all nine tests together (from the end of before()): once the tests
  // took that long, the test then running and every test after it were cancelled ('test did not finish before
  // its parent and was cancelled') and the describe failed ('test timed out after 120000ms').
  describe(`gateway calls end to end (${storeName} store)`, { timeout: 9 * (TEST_MS + CLEANUP_MS) + 120_000 }, () => {
    let stack: Stack;
    let context: BrowserContext | undefined;
    let phone: PageDriver;
    let dir: string;
    let uasPort: number;
    let uacPort: number;
    let redis: Redis | undefined;
    const sipps: SippProcess[] = [];

    before(async () => {
      uasPort = await freePort();
      uacPort = await freePort();
      dir = mkdtempSync(path.join(tmpdir(), 'ferry-gw-e2e-'));
      const config = {
        domain: 'ferry.local',
        users: [{ user: 'alice', password: 'alice-e2e-secret', displayName: 'Alice' }],
        trunks: [{ name: 'pbx', address: `127.0.0.1:${uasPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${uacPort}`] }],
        routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }, { match: '.*', to: 'user' }],
      };
      writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
      warmChromium(); // the browser starts while the stack does
      stack = await startStack({ ...(redisUrl ? { redisUrl } : {}), partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '4000' } } });
      if (redisUrl) redis = new Redis(redisUrl);
      context = await newChromiumContext();
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${stack.httpPort}/?user=alice`);
      await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true);
      await page.fill('#password', 'alice-e2e-secret');
      assert.equal(await page.inputValue('#ws-url'), `ws://127.0.0.1:${stack.wsPort}`, 'the page points at the SIP engine');
      await page.click('#register');
      await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15000 });
      phone = new PageDriver(context, page);
    });

    after(async () => {
      if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.filter((l) => l.startsWith('[gateway]')).join('\n'));
      for (const s of sipps) await s.stop().catch(() => undefined);
      await context?.close().catch(() => undefined);
      if (redis) {
        const keys = await redis.keys(`${stack.redisPrefix}*`);
        if (keys.length) await redis.del(...keys);
        redis.disconnect();
      }
      await stack?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const mediaStats = (): Promise<MediaStats> => getJson<MediaStats>(stack.mediaPort, '/stats');
    const calls = (): Promise<CallRecord[]> => getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all').then((r) => r.calls);
    const latestCall = async (): Promise<CallRecord> => {
      const all = await calls();
      assert.ok(all.length > 0, 'a call record exists');
      // the list holds summaries; the whole record (dialogs, media ids) is at /api/calls/:id
      return getJson<CallRecord>(stack.httpPort, `/api/calls/${all.sort((a, b) => b.createdAt - a.createdAt)[0]!.id}`);
    };
    const callKeys = async (): Promise<string[]> => (redis ? redis.keys(`${stack.redisPrefix}call:*`) : []);
    /** SIPps whose process has exited (its `done` settled) */
    const exited = new WeakSet<SippProcess>();
    const track = (s: SippProcess): SippProcess => {
      sipps.push(s);
      void s.done.then(() => exited.add(s));
      return s;
    };
    /** a SIPp left over by a failed test would hold the port: stop them all before the next one; names those still running */
    const stopLeftovers = async (): Promise<string[]> => {
      const left: string[] = [];
      for (const s of sipps.splice(0)) {
        if (!exited.has(s)) left.push(`SIPp ${s.options.scenario} still running (stopped)`);
        await s.stop().catch(() => undefined);
      }
      return left;
    };
    const uas = async (scenario: string, extra: string[] = []): Promise<SippProcess> => {
      await stopLeftovers();
      const s = track(await startSipp({ scenario, localPort: uasPort, mediaPort: await sippMediaPort(), extraArgs: ['-rtp_echo', ...extra], timeoutS: 40 }));
      await s.ready();
      return s;
    };
    /** the calling phone: SIPp from uacPort to the SIP engine, dialling alice */
    const uac = async (scenario: string, options: { lingerMs?: number; extraArgs?: string[]; timeoutS: number }): Promise<SippProcess> => {
      await stopLeftovers();
      const s = track(await startSipp({ scenario, localPort: uacPort, mediaPort: await sippMediaPort(), remote: `127.0.0.1:${stack.sipPort}`, service: 'alice', ...options }));
      return s;
    };
    /** polls `get` every 25 ms until the record it returns has ended */
    const recordEnded = (get: () => Promise<CallRecord>, timeoutMs: number): Promise<CallRecord> =>
      waitFor(async () => {
        const r = await get();
        return r.state === 'ended' ? r : undefined;
      }, timeoutMs, 25, 'record ended');
    /** waits for the incoming call on the page; on failure shows what SIPp sent and got */
    const ringsOrExplain = async (sipp: SippProcess): Promise<void> => {
      try {
        await phone.waitState('ringing-in', 25000);
      } catch (err) {
        const r = await sipp.stop();
        throw new Error(`${(err as Error).message}\n${describeSipp(r)}`);
      }
    };
    const callsStarted = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
      const m = /^ferry_calls_started_total (\d+)$/m.exec(text);
      assert.ok(m, 'ferry_calls_started_total is exported');
      return Number(m[1]);
    };
    const expectClean = async (): Promise<void> => {
      await waitFor(async () => (await mediaStats()).pipelines === 0, 3000, 25, 'media pipelines back to 0');
      const st = await mediaStats();
      assert.equal(st.elements, 0);
      assert.equal(st.boundPorts, 0);
      const live = (await calls()).filter((c) => c.state !== 'ended');
      assert.deepEqual(live.map((c) => c.id), [], 'no live call records');
    };

    const liveCalls = async (): Promise<CallRecord[]> => (await calls()).filter((c) => c.state !== 'ended');
    /**
     * After every test, passed or failed: what a test left behind (a SIPp still running, a call on the webphone
     * page, a live call record, a media pipeline) must not fail the tests after it. Stops the SIPps, hangs up the
     * page's call, ends any call still live through the API, and waits (bounded) until the page shows no call,
     * the gateway has no live call and ferry media has no pipeline. Each test still checks its own clean end
     * (expectClean); this only names what was left over and clears it, and fails when it cannot.
     */
    const clearLeftovers = async (testName: string): Promise<void> => {
      const left = await stopLeftovers();
      if (!stack || !phone) return; // before() failed: nothing was started to leave anything over
      const onPage = await phone.inCall();
      if (onPage) {
        const clicked = await phone.hangUpIfOffered();
        left.push(`webphone page in a call ('${onPage}'${clicked ? ', hung up' : ', no hang-up button'})`);
        try {
          await waitFor(async () => (await phone.inCall()) === undefined, 10_000, 50, 'the page ends its call');
        } catch {
          /* the gateway's end of the call below ends it on the page too */
        }
      }
      // a call whose end is under way (the page's hang-up, a SIPp BYE) ends within the gateway's BYE wait (500 ms)
      const lingering = await waitFor(async () => (await liveCalls()).length === 0, 3000, 50, 'live calls ended').then(() => [], () => liveCalls());
      for (const c of lingering.filter((x) => x.state !== 'ending')) {
        left.push(`call ${c.id} live (${c.state}, ended through the API)`);
        await fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${c.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } }).catch(() => undefined);
      }
      const problems: string[] = [];
      /** waits (bounded) until `left` names nothing; else notes what it named last */
      const gone = async (what: string, leftover: () => Promise<string | undefined>): Promise<void> => {
        let last: string | undefined = 'not read';
        await waitFor(async () => {
          last = await leftover().catch((err: Error) => `unreadable: ${err.message}`);
          return last === undefined;
        }, 10_000, 50, what).catch(() => problems.push(`${what}: ${last}`));
      };
      await gone('live calls', async () => {
        const live = await liveCalls();
        return live.length ? live.map((c) => `${c.id} ${c.state}`).join(', ') : undefined;
      });
      await gone('webphone page in a call', async () => phone.inCall());
      await gone('ferry media', async () => {
        const st = await mediaStats();
        return st.pipelines === 0 ? undefined : JSON.stringify(st);
      });
      if (left.length) console.log(`# left over after '${testName}': ${left.join('; ')}`);
      if (problems.length) throw new Error(`after '${testName}' still left over (${left.join('; ') || 'nothing named'}): ${problems.join('; ')}`);
    };
    afterEach(async (t) => {
      await clearLeftovers(t.name);
    }, { timeout: CLEANUP_MS });

    test('webphone calls an IP phone: 200, RTP both ways, browser hangs up, phone gets BYE, pipeline released', { timeout: TEST_MS }, async () => {
      const sipp = await uas('gateway-uas-echo.xml');
      const startedBefore = await callsStarted();
      await phone.dial('95550100');
      await explained(stack.httpPort, () => phone.waitState('connected', 25000));
      // JsSIP's INVITE is challenged (407) and retried with credentials: one call, counted once
      assert.equal(await callsStarted(), startedBefore + 1, 'ferry_calls_started_total counts the challenged INVITE and its retry once');
      const during = await latestCall();
      assert.equal(during.state, 'answered');
      assert.equal(during.caller.kind, 'webrtc');
      assert.equal(during.callee.kind, 'rtp');
      assert.ok(during.caller.dialog?.callId && during.callee.dialog?.remoteTag, 'both dialogs recorded');
      assert.ok(during.media.pipelineId && during.media.callerEndpointId && during.media.calleeEndpointId, 'media ids recorded');
      assert.deepEqual(during.timeline.slice(0, 1).map((e) => e.event), ['invite']);
      if (redis) {
        const keys = await callKeys();
        assert.ok(keys.includes(`${stack.redisPrefix}call:${during.id}`), 'call key exists in Redis during the call');
        assert.equal(await redis.pttl(`${stack.redisPrefix}call:${during.id}`), -1, 'no TTL while the call is live');
      }
      assert.equal((await mediaStats()).pipelines, 1);
      // RTP: the browser sends, SIPp echoes it back through the gateway, the browser receives
      const stats = await waitFor(async () => {
        const s = await phone.stats();
        return s.sent >= 50 && s.received >= 50 ? s : undefined;
      }, 15000, 100, 'RTP both ways');
      assert.ok(stats.received > 0 && stats.sent > 0);
      const metrics = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
      assert.match(metrics, /^ferry_active_calls 1$/m);
      assert.match(metrics, /^ferry_registrations 1$/m);

      const hungUpAt = Date.now();
      await phone.page.click('#hangup');
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `SIPp got BYE and answered it: ${describeSipp(result)}`);
      await waitFor(async () => (await mediaStats()).pipelines === 0, 3000, 20, 'pipeline released');
      const releaseMs = Date.now() - hungUpAt;
      assert.ok(releaseMs < 1500, `released ${releaseMs} ms after hang-up`);
      console.log(`# measured (${storeName}): webphone hang-up click -> pipeline released ${releaseMs} ms`);
      const ended = await recordEnded(() => getJson<CallRecord>(stack.httpPort, `/api/calls/${during.id}`), 3000);
      // the browser's BYE and its DTLS close_notify leave together; whichever reaches the gateway first wins
      assert.ok(['sip-bye', 'dtls-close'].includes(ended.reason!), `reason ${ended.reason}`);
      assert.ok(ended.endedBy === 'caller' || ended.endedBy === 'media', `ended by ${ended.endedBy}`);
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.indexOf('bye-sent') < events.indexOf('media-released'), `BYE to the phone before release: ${events.join(',')}`);
      if (redis) {
        const ttl = await redis.pttl(`${stack.redisPrefix}call:${during.id}`);
        assert.ok(ttl > 0 && ttl <= 60000, `ended record kept only with a TTL backstop (pttl ${ttl})`);
      }
      await expectClean();
      const after = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
      assert.match(after, new RegExp(`^ferry_calls_ended_total\\{reason="${ended.reason}"\\} 1$`, 'm'));
      assert.match(after, /^ferry_active_calls 0$/m);
    });

    test('IP phone calls the registered webphone; webphone answers; phone hangs up; browser shows ended within 1 s', { timeout: TEST_MS }, async () => {
      const sipp = await uac('gateway-uac-call.xml', { lingerMs: 3000, extraArgs: ['-rtp_echo'], timeoutS: 40 });
      await ringsOrExplain(sipp);
      await phone.page.click('#answer');
      await phone.waitState('connected', 25000);
      const call = await latestCall();
      assert.equal(call.caller.kind, 'rtp');
      assert.equal(call.callee.kind, 'webrtc');
      assert.equal(call.caller.party, 'pbx');
      const s = await waitFor(async () => {
        const x = await phone.stats();
        return x.received >= 40 && x.sent >= 40 ? x : undefined;
      }, 10000, 100, 'RTP both ways (phone plays PCMA, echoes the browser)');
      assert.ok(s.received > 0);
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, describeSipp(result));
      await phone.waitState('ended', 3000);
      const ended = await recordEnded(() => getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`), 3000);
      const byeAt = ended.timeline.find((e) => e.event === 'bye')!.t;
      const shownAt = (await phone.endedAt())!;
      assert.ok(shownAt - byeAt < 1000, `browser showed the end ${shownAt - byeAt} ms after the phone's BYE reached the gateway`);
      console.log(`# measured (${storeName}): phone BYE at the gateway -> webphone shows ended ${shownAt - byeAt} ms`);
      assert.match(await phone.message(), /other side hung up/);
      assert.equal(ended.reason, 'sip-bye');
      assert.equal(ended.endedBy, 'caller');
      await expectClean();
    });

    test('webphone cancels before the phone answers: CANCEL reaches the phone, pipeline released', { timeout: TEST_MS }, async () => {
      const sipp = await uas('gateway-uas-ring.xml');
      await phone.dial('95550101');
      await explained(stack.httpPort, () => phone.waitState('ringing', 25000));
      const ringing = await latestCall();
      assert.equal(ringing.state, 'ringing');
      if (redis) assert.ok((await callKeys()).includes(`${stack.redisPrefix}call:${ringing.id}`), 'record written before answer');
      await phone.page.click('#hangup');
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `SIPp saw CANCEL, answered 487, got ACK: ${describeSipp(result)}`);
      const ended = await recordEnded(() => getJson<CallRecord>(stack.httpPort, `/api/calls/${ringing.id}`), 5000);
      assert.equal(ended.reason, 'sip-cancel');
      await phone.waitState('failed', 3000);
      await expectClean();
    });

    test('busy phone: 486 is relayed to the webphone, call ends with reason busy', { timeout: TEST_MS }, async () => {
      const sipp = await uas('gateway-uas-busy.xml');
      await phone.dial('95550102');
      await explained(stack.httpPort, () => phone.waitState('failed', 25000));
      assert.match(await phone.message(), /busy/i);
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, describeSipp(result));
      const rec = await recordEnded(latestCall, 5000);
      assert.equal(rec.reason, 'busy');
      await expectClean();
    });

    test('in-dialog UPDATE (session timer refresh) is answered and SIP INFO DTMF is relayed to the webphone', { timeout: TEST_MS }, async () => {
      const sipp = await uac('gateway-uac-update-info.xml', { extraArgs: ['-rtp_echo'], timeoutS: 40 });
      await ringsOrExplain(sipp);
      await phone.page.click('#answer');
      await phone.waitState('connected', 25000);
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `UPDATE and INFO both got 200: ${describeSipp(result)}`);
      await explained(stack.httpPort, () => phone.waitState('ended', 3000));
      const rec = await latestCall();
      assert.ok(rec.timeline.some((e) => e.event === 'info' && /application\/dtmf-relay/.test(e.detail ?? '')), rec.timeline.map((e) => e.event).join(','));
      await expectClean();
    });

    test('an INVITE without a G.711 codec gets 488 with a Warning; nothing is created', { timeout: TEST_MS }, async () => {
      const before = (await calls()).length;
      // the page's state is whatever the last test left ('ended', 'failed'): a marker of our own instead, which
      // a ring would overwrite (the tests before show the page does change its state when rung)
      await phone.markState(NO_CALL_MARK);
      const sipp = await uac('gateway-uac-bad-sdp.xml', { timeoutS: 20 });
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, describeSipp(result));
      assert.match(result.messages, /Warning: 399 ferry "no G\.711 codec/);
      assert.equal((await calls()).length, before, 'no call record');
      assert.equal((await mediaStats()).pipelines, 0);
      assert.equal(await phone.state(), NO_CALL_MARK, 'the webphone was never rung');
    });

    test('nobody answers the phone: the gateway cancels it after FERRY_NO_ANSWER_MS and tells the webphone (480)', { timeout: TEST_MS }, async () => {
      const sipp = await uas('gateway-uas-ring.xml');
      const dialled = Date.now();
      await phone.dial('95550103');
      await explained(stack.httpPort, () => phone.waitState('ringing', 25000));
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `the phone got CANCEL: ${describeSipp(result)}`);
      await phone.waitState('failed', 5000);
      const waited = Date.now() - dialled;
      assert.ok(waited >= 3500 && waited < 9000, `cancelled after ${waited} ms (configured 4000)`);
      assert.match(await phone.message(), /Unavailable/);
      const rec = await recordEnded(latestCall, 3000);
      assert.equal(rec.reason, 'no-answer');
      await expectClean();
    });

    test('the webphone declines an incoming call: the failure reaches the phone', { timeout: TEST_MS }, async () => {
      const sipp = await uac('gateway-uac-rejected.xml', { timeoutS: 20 });
      await ringsOrExplain(sipp);
      await phone.page.click('#hangup');
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `the phone got 480: ${describeSipp(result)}`);
      const rec = await recordEnded(latestCall, 3000);
      assert.equal(rec.reason, 'no-answer');
      await expectClean();
    });

    test('hold and resume from the phone are carried to the webphone', { timeout: TEST_MS }, async () => {
      const sipp = await uac('gateway-uac-hold.xml', { extraArgs: ['-rtp_echo'], timeoutS: 40 });
      await ringsOrExplain(sipp);
      await phone.page.click('#answer');
      await phone.waitState('connected', 25000);
      await phone.waitState('held by the other side', 8000);
      // the record is written once the webphone's answer to the carried re-INVITE is back
      const held = await waitFor(async () => {
        const r = await latestCall();
        return r.callee.direction === 'recvonly' ? r : undefined;
      }, 5000, 25, 'hold recorded');
      assert.equal(held.caller.direction, 'sendonly', 'phone put the call on hold');
      assert.equal(held.callee.direction, 'recvonly', 'the webphone answered the carried hold with recvonly');
      assert.ok(held.timeline.some((e) => e.event === 'hold'));
      try {
        await phone.waitState('connected', 8000);
      } catch (err) {
        const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${held.id}`);
        throw new Error(`${(err as Error).message}; timeline: ${JSON.stringify(r.timeline)}`);
      }
      const result = await sipp.done;
      assert.equal(result.exitCode, 0, `hold answered recvonly, resume answered sendrecv: ${describeSipp(result)}`);
      await phone.waitState('ended', 3000);
      const ended = await recordEnded(() => getJson<CallRecord>(stack.httpPort, `/api/calls/${held.id}`), 3000);
      assert.ok(ended.timeline.some((e) => e.event === 'resume'), ended.timeline.map((e) => e.event).join(','));
      await expectClean();
      if (redis) {
        for (const k of await callKeys()) assert.ok((await redis.pttl(k)) > 0, `${k} has a TTL once ended`);
      }
    });
  });
}
