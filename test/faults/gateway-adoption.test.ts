import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS } from '../helpers/browser-webphone';
import { freePort } from '../helpers/free-port';
import { describeSipp, startSipp, type SippProcess } from '../helpers/sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Gateway death mid-call (lifecycle.md S13, S14; issue 5 item 6): the call survives, another (or the
 * restarted) gateway adopts it from Redis within the lease time — re-attaching to its media objects
 * by id and taking over both dialogs through ferry sip's extension — and then handles the phone's
 * BYE: BYE to the webphone, pipeline released, record ended.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';
const LEASE_MS = 1500;

interface Ctx {
  stack: Stack;
  browser: Browser;
  page: Page;
  uacPort: number;
  dir: string;
  redis: Redis;
  sipps: SippProcess[];
}

async function setUp(secondGateway: boolean): Promise<Ctx> {
  const uacPort = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-adopt-'));
  writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
    domain: 'ferry.local',
    users: [{ user: 'alice', password: 'alice-adopt' }],
    trunks: [{ name: 'pbx', address: '127.0.0.1:9', acceptFrom: [`127.0.0.1:${uacPort}`] }],
    routes: [{ match: '.*', to: 'user' }],
  }));
  const stack = await startStack({
    redisUrl: REDIS_URL,
    secondGateway,
    partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_GATEWAY_ADOPT_INTERVAL_MS: '250', FERRY_CALL_RECORD_TTL_MS: '30000' } },
  });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext()).newPage();
  await page.goto(`http://127.0.0.1:${stack.httpPort}/?user=alice&password=alice-adopt`);
  await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true);
  await page.click('#register');
  await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15000 });
  return { stack, browser, page, uacPort, dir, redis: new Redis(REDIS_URL), sipps: [] };
}

async function tearDown(c: Ctx | undefined): Promise<void> {
  if (!c) return;
  if (process.env.FERRY_TEST_DUMP) console.log(c.stack.output.filter((l) => l.startsWith('[gateway') || (process.env.FERRY_TEST_DUMP === 'all' && l.startsWith('[sip]'))).join('\n'));
  for (const s of c.sipps) await s.stop().catch(() => undefined);
  await c.browser.close().catch(() => undefined);
  const keys = await c.redis.keys(`${c.stack.redisPrefix}*`);
  if (keys.length) await c.redis.del(...keys);
  c.redis.disconnect();
  await c.stack.stop();
  rmSync(c.dir, { recursive: true, force: true });
}

const state = (page: Page): Promise<string> => page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
const received = (page: Page): Promise<number> =>
  page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ received: number }> }).ferryStats()).then((s) => s.received);

async function callRecord(c: Ctx): Promise<CallRecord> {
  const ids = await c.redis.smembers(`${c.stack.redisPrefix}calls`);
  assert.equal(ids.length, 1, 'one call record');
  return JSON.parse((await c.redis.get(`${c.stack.redisPrefix}call:${ids[0]}`))!) as CallRecord;
}

/** phone calls the webphone, webphone answers; the phone hangs up `lingerMs` after answer */
async function answeredCall(c: Ctx, lingerMs: number): Promise<{ sipp: SippProcess; record: CallRecord }> {
  const sipp = await startSipp({
    scenario: 'gateway-uac-call.xml', localPort: c.uacPort, mediaPort: await sippMediaPort(),
    remote: `127.0.0.1:${c.stack.sipPort}`, service: 'alice', lingerMs, extraArgs: ['-rtp_echo'], timeoutS: 60,
  });
  c.sipps.push(sipp);
  await waitFor(async () => (await state(c.page)) === 'ringing-in', 15000, 25, 'incoming call');
  await c.page.click('#answer');
  await waitFor(async () => (await state(c.page)) === 'connected', 15000, 25, 'connected');
  await waitFor(async () => (await received(c.page)) > 20, 10000, 50, 'RTP to the browser');
  const record = await waitFor(async () => {
    const r = await callRecord(c);
    return r.state === 'answered' ? r : undefined;
  }, 5000, 50, 'answered record');
  return { sipp, record };
}

/** like answeredCall, with the phone holding 6 s after answer, resuming 2.5 s later, hanging up 1 s after that */
async function answeredHoldingCall(c: Ctx): Promise<{ sipp: SippProcess; record: CallRecord }> {
  const sipp = await startSipp({
    scenario: 'gateway-uac-hold-late.xml', localPort: c.uacPort, mediaPort: await sippMediaPort(),
    remote: `127.0.0.1:${c.stack.sipPort}`, service: 'alice', extraArgs: ['-rtp_echo'], timeoutS: 60,
  });
  c.sipps.push(sipp);
  await waitFor(async () => (await state(c.page)) === 'ringing-in', 15000, 25, 'incoming call');
  await c.page.click('#answer');
  await waitFor(async () => (await state(c.page)) === 'connected', 15000, 25, 'connected');
  const record = await waitFor(async () => {
    const r = await callRecord(c);
    return r.state === 'answered' ? r : undefined;
  }, 5000, 50, 'answered record');
  return { sipp, record };
}

async function expectEndedAndClean(c: Ctx, sipp: SippProcess, id: string): Promise<CallRecord> {
  const result = await sipp.done;
  assert.equal(result.exitCode, 0, `the phone's BYE was answered: ${describeSipp(result)}`);
  await waitFor(async () => (await state(c.page)) === 'ended', 3000, 25, 'browser told the call ended');
  await waitFor(async () => (await getJson<{ pipelines: number }>(c.stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
  const rec = await waitFor(async () => {
    const r = JSON.parse((await c.redis.get(`${c.stack.redisPrefix}call:${id}`))!) as CallRecord;
    return r.state === 'ended' ? r : undefined;
  }, 2000, 20, 'record ended');
  assert.equal(rec.reason, 'sip-bye');
  const ttl = await c.redis.pttl(`${c.stack.redisPrefix}call:${id}`);
  assert.ok(ttl > 0 && ttl <= 30000, `ended record has a TTL backstop (${ttl})`);
  return rec;
}

describe('gateway adoption (Redis)', { timeout: 120_000 }, () => {
  describe('two gateways share Redis; the owner is SIGKILLed mid-call (S14)', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(true);
    });
    after(() => tearDown(c));

    test('the other gateway adopts the call within the lease, media keeps flowing, and it handles the BYE', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 9000);
      const ownerPart = record.owner.startsWith('gw-a-') ? 'gateway' : 'gateway2';
      const survivorPort = ownerPart === 'gateway' ? ctx.stack.httpPort2! : ctx.stack.httpPort;
      const before = await received(ctx.page);
      const killedAt = Date.now();
      await ctx.stack.kill(ownerPart, 'SIGKILL');
      const adopted = await waitFor(async () => {
        const r = await getJson<CallRecord>(survivorPort, `/api/calls/${record.id}`);
        return r.owner !== record.owner ? r : undefined;
      }, LEASE_MS + 3000, 50, 'adoption by the surviving gateway');
      const adoptMs = Date.now() - killedAt;
      assert.ok(adoptMs < LEASE_MS + 2000, `adopted ${adoptMs} ms after the kill (lease ${LEASE_MS} ms)`);
      console.log(`# measured: owner SIGKILL -> call adopted by the other gateway ${adoptMs} ms (lease ${LEASE_MS} ms, scan 250 ms)`);
      assert.equal(adopted.state, 'answered');
      assert.ok(adopted.timeline.some((e) => e.event === 'adopted'));
      assert.ok(adopted.timeline.some((e) => e.event === 'media-reattached'), adopted.timeline.map((e) => e.event).join(','));
      assert.equal((await getJson<{ pipelines: number }>(ctx.stack.mediaPort, '/stats')).pipelines, 1, 'pipeline kept');
      await waitFor(async () => (await received(ctx.page)) > before + 50, 5000, 50, 'media still flowing to the browser');
      assert.equal(await state(ctx.page), 'connected');
      const ended = await expectEndedAndClean(ctx, sipp, record.id);
      assert.equal(ended.owner, adopted.owner);
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.includes('bye-sent'), `BYE sent to the webphone by the adopting gateway: ${events.join(',')}`);
      const metrics = await (await fetch(`http://127.0.0.1:${survivorPort}/metrics`)).text();
      assert.match(metrics, /^ferry_calls_adopted_total 1$/m);
    });
  });

  describe('the only gateway is SIGKILLed and restarted mid-call (S13)', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(false);
    });
    after(() => tearDown(c));

    test('the restarted gateway resumes the call from Redis and handles the phone hanging up', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 8000);
      await ctx.stack.kill('gateway', 'SIGKILL');
      const before = await received(ctx.page);
      await new Promise((r) => setTimeout(r, 500));
      assert.ok((await received(ctx.page)) > before, 'media flows while no gateway is alive');
      await ctx.stack.restart('gateway');
      const adopted = await waitFor(async () => {
        const r = await getJson<CallRecord>(ctx.stack.httpPort, `/api/calls/${record.id}`);
        return r.timeline.some((e) => e.event === 'adopted') ? r : undefined;
      }, 5000, 50, 'adoption by the restarted gateway');
      assert.equal(adopted.state, 'answered');
      await expectEndedAndClean(ctx, sipp, record.id);
    });
  });
  describe('re-INVITE (hold/resume) on an adopted call', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(true);
    });
    after(() => tearDown(c));

    test('the adopting gateway answers the phone\'s hold, carries it to the webphone over the extension, then the resume and the BYE', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredHoldingCall(ctx);
      const ownerPart = record.owner.startsWith('gw-a-') ? 'gateway' : 'gateway2';
      const survivorPort = ownerPart === 'gateway' ? ctx.stack.httpPort2! : ctx.stack.httpPort;
      await ctx.stack.kill(ownerPart, 'SIGKILL');
      await waitFor(async () => (await getJson<CallRecord>(survivorPort, `/api/calls/${record.id}`)).owner !== record.owner, LEASE_MS + 3000, 50, 'adopted');
      await waitFor(async () => (await state(ctx.page)) === 'held by the other side', 10000, 25, 'webphone told of the hold by the adopter');
      await waitFor(async () => (await state(ctx.page)) === 'connected', 8000, 25, 'resume carried');
      const ended = await expectEndedAndClean(ctx, sipp, record.id);
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.indexOf('adopted') < events.indexOf('hold') && events.indexOf('hold') < events.indexOf('resume'), events.join(','));
      assert.ok(!events.includes('reinvite-failed'), events.join(','));
    });
  });

  describe('the call ends while no gateway is alive (phone vanishes; media server releases the orphan)', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(false);
    });
    after(() => tearDown(c));

    test('the restarted gateway finds the media gone, finishes the call (BYE to whoever is left) and ends the record', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 30000);
      await ctx.stack.kill('gateway', 'SIGKILL');
      process.kill(sipp.pid!, 'SIGKILL');
      // ferry media (orphans policy) releases the pipeline itself once the phone leg ends
      await waitFor(async () => (await getJson<{ pipelines: number }>(ctx.stack.mediaPort, '/stats')).pipelines === 0, 8000, 50, 'orphan released by the media server');
      const stale = JSON.parse((await ctx.redis.get(`${ctx.stack.redisPrefix}call:${record.id}`))!) as CallRecord;
      assert.equal(stale.state, 'answered', 'no gateway was alive to record the end');
      await ctx.stack.restart('gateway');
      const ended = await waitFor(async () => {
        const r = JSON.parse((await ctx.redis.get(`${ctx.stack.redisPrefix}call:${record.id}`))!) as CallRecord;
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, 'record finished by the restarted gateway');
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.includes('adopted') && events.includes('media-gone'), events.join(','));
      assert.equal(ended.endedBy, 'gateway');
      const ttl = await ctx.redis.pttl(`${ctx.stack.redisPrefix}call:${record.id}`);
      assert.ok(ttl > 0, 'ended record kept only with a TTL');
      assert.equal((await getJson<{ calls: CallRecord[] }>(ctx.stack.httpPort, '/api/calls')).calls.length, 0, 'no live calls left');
    });
  });
});
