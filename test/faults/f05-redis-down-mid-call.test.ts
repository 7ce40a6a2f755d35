import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { TEST_API_TOKEN, waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import { RedisServerProcess } from '../helpers/redis-server-process';
import { SipRawClient, digestAnswer } from '../helpers/sip-raw-client';
import { WEBPHONE_USERS } from '../helpers/lifecycle-sip-config';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md F5: the gateway's Redis dies mid-call (the whole stack — sip, media, gateway — on a
 * PRIVATE redis-server this test SIGKILLs and restarts empty, as after a crash without persistence;
 * Chromium webphone alice registered on the gateway page, the scripted SIP phone in the call):
 *  - while Redis is down: /api/calls and /api/calls/:id answer 503 within 1 s, /metrics answers
 *    within 1 s with ferry_store_up 0, RTP keeps flowing both ways, and a new call to alice still
 *    routes (on the binding this gateway accepted) and ends normally;
 *  - when Redis returns empty: alice's registration, the gateway's lease and the live call's record
 *    are written back within a few seconds; the call then ends normally (the phone's BYE reaches the
 *    webphone, the record is ended with its TTL, the pipeline is released); ferry_store_errors_total > 0.
 */
const LEASE_MS = 2000;
const OUTAGE_MS = 10_000;
const HTTP_BOUND_MS = 1000;

interface Timed {
  status: number;
  ms: number;
  body: string;
}

/** GET with its answer time; a request unanswered after 3 s counts as status 0 (a hang) */
async function timedGet(port: number, p: string): Promise<Timed> {
  const t0 = Date.now();
  try {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(3000), headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    const body = await res.text();
    return { status: res.status, ms: Date.now() - t0, body };
  } catch (err) {
    return { status: 0, ms: Date.now() - t0, body: String(err) };
  }
}

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('F5: Redis down mid-call', { timeout: 240_000 }, () => {
  let redis: RedisServerProcess;
  let fx: GatewayCallFixture;
  let reader: Redis;

  before(async () => {
    redis = await RedisServerProcess.start();
    fx = await GatewayCallFixture.start({ redisUrl: redis.url, env: { FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_MEDIA_DEAD_MS: '5000' } });
    reader = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    reader.on('error', () => {});
  });
  afterEach(async () => {
    if (redis?.running) process.kill(redis.pid!, 'SIGCONT'); // after a freeze
    if (redis && !redis.running) await redis.restart();
    if (!fx) return;
    await fx.phone.media.stopMedia().catch(() => undefined);
    const state = await fx.webphone.callState();
    if (state !== 'ended' && state !== 'idle') await fx.webphone.hangup().catch(() => undefined);
    await fx.releasedAt(5000).catch(() => undefined);
  });
  after(async () => {
    reader?.disconnect();
    await fx?.close();
    await redis?.stop();
  });

  const key = (s: string): string => `${fx.stack.redisPrefix}${s}`;
  const gatewayLines = (): string => fx.stack.output.filter((l) => l.startsWith('[gateway]')).slice(-25).join('\n');

  test('F5: Redis SIGKILLed for 10 s mid-call -> /api/calls 503 < 1 s, /metrics < 1 s, RTP flows; restarted empty -> registration and live record written back; the call then ends normally', async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    // positive control: what must come back is in Redis before the outage
    assert.equal(await reader.hexists(key('reg:alice'), (await reader.hkeys(key('reg:alice')))[0] ?? '-'), 1, "alice's binding is in Redis");
    assert.equal(await reader.exists(key(`call:${call.id}`)), 1, 'the call record is in Redis');
    const browserBefore = (await fx.webphone.rtpStats()).received;

    await redis.kill('SIGKILL');
    const killedAt = Date.now();
    const api: Timed[] = [];
    const one: Timed[] = [];
    const metrics: Timed[] = [];
    while (Date.now() < killedAt + OUTAGE_MS) {
      const round = Date.now();
      api.push(await timedGet(fx.stack.httpPort, '/api/calls'));
      one.push(await timedGet(fx.stack.httpPort, `/api/calls/${call.id}`));
      metrics.push(await timedGet(fx.stack.httpPort, '/metrics'));
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - round))));
    }
    const outageEnd = Date.now();
    const browserAfter = (await fx.webphone.rtpStats()).received;
    const fromBrowser = await fx.phone.media.rtpReceivedBetween(killedAt, outageEnd);
    const gap = await fx.phone.media.maxRtpGap(killedAt, outageEnd);

    assert.ok(api.length >= 5, `the API was asked ${api.length} times during the outage`);
    assert.deepEqual([...new Set(api.map((r) => r.status))], [503], `/api/calls answers 503 while Redis is down: ${api.map((r) => r.status).join(',')}`);
    assert.deepEqual([...new Set(one.map((r) => r.status))], [503], `/api/calls/:id answers 503: ${one.map((r) => r.status).join(',')}`);
    assert.match(api[0]!.body, /state store unavailable/, 'a JSON error');
    const slowest = (rs: Timed[]): number => Math.max(...rs.map((r) => r.ms));
    assert.ok(slowest(api) < HTTP_BOUND_MS, `/api/calls within ${HTTP_BOUND_MS} ms (slowest ${slowest(api)} ms)`);
    assert.ok(slowest(one) < HTTP_BOUND_MS, `/api/calls/:id within ${HTTP_BOUND_MS} ms (slowest ${slowest(one)} ms)`);
    assert.deepEqual([...new Set(metrics.map((r) => r.status))], [200], '/metrics still renders');
    assert.ok(slowest(metrics) < HTTP_BOUND_MS, `/metrics within ${HTTP_BOUND_MS} ms (slowest ${slowest(metrics)} ms)`);
    assert.equal(metric(metrics.at(-1)!.body, 'ferry_store_up'), 0, 'ferry_store_up 0 while Redis is down');
    assert.equal(metric(metrics.at(-1)!.body, 'ferry_active_calls'), 1, 'the call this gateway drives, known locally');
    // 50 packets/s each way for 10 s: allow for a loaded machine, fail on a stopped stream
    assert.ok(fromBrowser > (OUTAGE_MS / 20) * 0.6, `RTP from the browser reached the phone during the outage: ${fromBrowser} packets`);
    // Redis is not on the media path: any gap here is the loaded test process itself (measured 80-410 ms)
    assert.ok(gap < 1000, `no stall in the browser's RTP at the phone (largest gap ${gap} ms)`);
    assert.ok(browserAfter - browserBefore > (OUTAGE_MS / 20) * 0.6, `RTP from the phone reached the browser: ${browserAfter - browserBefore} packets`);
    assert.equal(await fx.webphone.callState(), 'connected', 'the webphone is still in the call');

    // Redis comes back EMPTY
    await redis.restart();
    const restartedAt = Date.now();
    await waitFor(async () => (await reader.ping().catch(() => '')) === 'PONG', 5000, 20, 'test reader reconnected');
    await waitFor(async () => (await reader.hlen(key('reg:alice'))) > 0 && (await reader.exists(key(`call:${call.id}`))) === 1, 10_000, 20, 'registration and call record written back').catch(async (err: Error) => {
      throw new Error(`${err.message}; keys now: ${JSON.stringify(await reader.keys(`${fx.stack.redisPrefix}*`))}\n${gatewayLines()}`);
    });
    const writtenBackMs = Date.now() - restartedAt;
    assert.ok(writtenBackMs < 5000, `written back ${writtenBackMs} ms after Redis restarted`);
    const record = JSON.parse((await reader.get(key(`call:${call.id}`)))!) as CallRecord;
    assert.equal(record.state, 'answered');
    assert.equal(await reader.pttl(key(`call:${call.id}`)), -1, 'the live record has no TTL');
    assert.ok((await reader.smembers(key('calls'))).includes(call.id), 'listed as a live call');
    assert.ok((await reader.keys(key('lease:*'))).length > 0, "the gateway's lease is back");
    const binding = Object.values(await reader.hgetall(key('reg:alice'))).map((j) => JSON.parse(j) as { expiresAt: number });
    assert.ok(binding.length === 1 && binding[0]!.expiresAt > Date.now(), 'an unexpired binding');
    await waitFor(async () => (await timedGet(fx.stack.httpPort, '/api/calls')).status === 200, 5000, 50, '/api/calls answering again');
    assert.equal((await fx.calls()).filter((c) => c.state !== 'ended').length, 1, 'the API lists the call again');

    // ... and the call ends normally
    const byeAt = await fx.phone.hangup();
    await fx.phone.media.sendBye();
    await fx.phone.media.stopMedia();
    await fx.webphone.waitCallState('ended', 5000);
    const toldMs = (await fx.webphone.endedAt())! - byeAt;
    assert.ok(toldMs < 1000, `the phone's BYE reached the webphone in ${toldMs} ms`);
    await waitFor(async () => {
      const r = await fx.redisCall(call.id);
      return r !== undefined && r.record.state === 'ended' && r.record.reason === 'sip-bye' && r.ttlMs > 0;
    }, 5000, 50, 'the record ended (sip-bye) with a TTL');
    await fx.releasedAt(5000);
    const after = (await timedGet(fx.stack.httpPort, '/metrics')).body;
    assert.equal(metric(after, 'ferry_store_up'), 1);
    const errors = metric(after, 'ferry_store_errors_total') ?? 0;
    assert.ok(errors > 0, `ferry_store_errors_total counted the outage: ${errors}`);
    console.log(
      `# measured F5: /api/calls 503 in <= ${slowest(api)} ms, /metrics <= ${slowest(metrics)} ms during a ${outageEnd - killedAt} ms outage; ` +
        `RTP at the phone ${fromBrowser} packets (gap <= ${gap} ms), at the browser ${browserAfter - browserBefore}; ` +
        `written back ${writtenBackMs} ms after the empty restart; BYE told in ${toldMs} ms; ferry_store_errors_total ${errors}`,
    );
  });

  test('F5: Redis frozen (SIGSTOP) mid-call -> once the gateway sees it down, the phone\'s hang-up reaches the webphone < 400 ms (no write waits for Redis); the end reaches Redis when it resumes', async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    process.kill(redis.pid!, 'SIGSTOP');
    const frozenAt = Date.now();
    // the gateway's next lease renewal times out (FERRY_STORE_TIMEOUT_MS): it knows the store is down
    await waitFor(async () => metric(await (await fetch(`http://127.0.0.1:${fx.stack.httpPort}/metrics`)).text(), 'ferry_store_up') === 0, 10_000, 50, 'the gateway to see the store down');
    const seenDownMs = Date.now() - frozenAt;
    const byeAt = await fx.phone.hangup();
    await fx.phone.media.sendBye();
    await fx.phone.media.stopMedia();
    await fx.webphone.waitCallState('ended', 5000);
    const toldMs = (await fx.webphone.endedAt())! - byeAt;
    // were the end's record write waiting for the frozen Redis, this would take >= the 500 ms store timeout
    assert.ok(toldMs < 400, `the phone's BYE reached the webphone ${toldMs} ms after it was sent, Redis frozen`);
    await fx.releasedAt(5000);
    process.kill(redis.pid!, 'SIGCONT');
    await waitFor(async () => {
      const r = await fx.redisCall(call.id);
      return r !== undefined && r.record.state === 'ended' && r.ttlMs > 0;
    }, 10_000, 50, 'the ended record in Redis after the freeze');
    console.log(`# measured F5 (frozen Redis): gateway saw the store down after ${seenDownMs} ms; BYE told in ${toldMs} ms`);
  });

  test('F5: while Redis is down, a call to the registered webphone still routes and ends normally, and a phone registers (digest); the ended record and the new binding reach Redis when it returns', async () => {
    await waitFor(async () => (await reader.hlen(key('reg:alice'))) > 0, 10_000, 50, "alice's binding in Redis");
    await redis.kill('SIGKILL');
    // a device registers while Redis is down: challenged, then accepted
    const device = await SipRawClient.open('udp', fx.stack.sipPort);
    try {
      const uri = 'sip:ferry.local';
      const challenge = await device.request({ method: 'REGISTER', uri, fromUser: 'bob', expires: 600 });
      assert.equal(challenge.status, 401, `challenged: ${challenge.status}`);
      const authorization = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'bob', password: WEBPHONE_USERS.bob, method: 'REGISTER', uri });
      const registered = await device.request({ method: 'REGISTER', uri, fromUser: 'bob', expires: 600, authorization, cseq: 2 });
      assert.equal(registered.status, 200, `REGISTER accepted while Redis is down: ${registered.status}`);
    } finally {
      device.close();
    }
    const since = await fx.phoneCallsWebphone();
    const byeAt = await fx.phone.hangup();
    await fx.phone.media.stopMedia();
    await fx.webphone.waitCallState('ended', 5000);
    const toldMs = (await fx.webphone.endedAt())! - byeAt;
    assert.ok(toldMs < 1000, `BYE reached the webphone in ${toldMs} ms while Redis was down`);
    await fx.releasedAt(5000);
    assert.equal((await timedGet(fx.stack.httpPort, '/api/calls')).status, 503, 'Redis was still down throughout the call');

    await redis.restart();
    const ended = await waitFor(async () => {
      const calls = (await fx.calls().catch(() => [])).filter((c) => c.createdAt >= since - 1000);
      return calls.length === 1 && calls[0]!.state === 'ended' ? calls[0] : undefined;
    }, 10_000, 50, 'the ended record written back');
    assert.equal(ended.reason, 'sip-bye');
    await waitFor(async () => (await reader.hlen(key('reg:bob'))) === 1, 5000, 50, "bob's binding, accepted during the outage, written back");
    // Redis came back empty: this record is there only because the gateway wrote its end back
    assert.ok((await fx.redisCall(ended.id))!.ttlMs > 0, 'ended, with its TTL backstop (not a live record)');
    console.log(`# measured F5: call during the outage told of the BYE in ${toldMs} ms`);
  });
});
