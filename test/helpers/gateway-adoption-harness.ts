import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './chromium';
import { openRegisteredPage } from './gateway-webphone';
import { freePort } from './free-port';
import { describeSipp, startSipp, type SippProcess } from './sipp';
import { getJson, sippMediaPort, startStack, waitFor, type Stack } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Shared set-up of the gateway adoption fault tests (test/faults/gateway-adoption.test.ts,
 * gateway-restart.test.ts): the three processes on Redis (optionally two gateways), a Chromium
 * webphone registered as alice, SIPp as the IP phone.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';
export const LEASE_MS = 1500;

export interface Ctx {
  stack: Stack;
  browser: Browser;
  page: Page;
  uacPort: number;
  dir: string;
  redis: Redis;
  sipps: SippProcess[];
  /** call ids seen by callRecord so far (tests sharing a Ctx each add one call) */
  seenCalls: Set<string>;
}

export async function setUp(secondGateway: boolean): Promise<Ctx> {
  const uacPort = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-adopt-'));
  writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
    domain: 'ferry.local',
    users: [{ user: 'alice', password: 'alice-adopt' }],
    trunks: [{ name: 'pbx', address: '127.0.0.1:9', acceptFrom: [`127.0.0.1:${uacPort}`] }],
    routes: [{ match: '.*', to: 'user' }],
  }));
  const startingStack = startStack({
    redisUrl: REDIS_URL,
    secondGateway,
    partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_GATEWAY_ADOPT_INTERVAL_MS: '250', FERRY_CALL_RECORD_TTL_MS: '30000' } },
  });
  // Chromium starts while the processes do
  const [stack, browser] = await Promise.all([startingStack, launchChromium()]);
  const page = await openRegisteredPage(browser, stack.httpPort, 'alice', 'alice-adopt').catch(async (err: unknown) => {
    await browser.close().catch(() => undefined);
    await stack.stop();
    throw err;
  });
  return { stack, browser, page, uacPort, dir, redis: new Redis(REDIS_URL), sipps: [], seenCalls: new Set() };
}

export async function tearDown(c: Ctx | undefined): Promise<void> {
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

export const state = (page: Page): Promise<string> => page.evaluate(() => (window as unknown as { ferryCallState?: string }).ferryCallState ?? '');
export const received = (page: Page): Promise<number> =>
  page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ received: number }> }).ferryStats()).then((s) => s.received);

/** the record of the call placed now: exactly one call record not seen by an earlier callRecord on this Ctx */
export async function callRecord(c: Ctx): Promise<CallRecord> {
  const ids = (await c.redis.smembers(`${c.stack.redisPrefix}calls`)).filter((id) => !c.seenCalls.has(id));
  assert.equal(ids.length, 1, `one new call record (earlier ones: ${[...c.seenCalls].join(', ') || 'none'})`);
  return JSON.parse((await c.redis.get(`${c.stack.redisPrefix}call:${ids[0]}`))!) as CallRecord;
}

/** phone calls the webphone, webphone answers; the phone hangs up `lingerMs` after answer */
export async function answeredCall(c: Ctx, lingerMs: number): Promise<{ sipp: SippProcess; record: CallRecord }> {
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
  c.seenCalls.add(record.id);
  return { sipp, record };
}

/** like answeredCall, with the phone holding 4.5 s after answer (an adoption takes 1.3-1.8 s after the kill), resuming 2.5 s later, hanging up 1 s after that */
export async function answeredHoldingCall(c: Ctx): Promise<{ sipp: SippProcess; record: CallRecord }> {
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
  c.seenCalls.add(record.id);
  return { sipp, record };
}

export async function expectEndedAndClean(c: Ctx, sipp: SippProcess, id: string): Promise<CallRecord> {
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

