import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { LineProcess } from '../helpers/line-process';
import { MediaServerProcess } from '../helpers/media-server-process';
import { closePhonePairs, startPhonePairs, writePhonePairsConfig, type PhonePair } from '../helpers/trunk-phone-pairs';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Adoption with several media servers (docs/gateway.md, "Several media servers": a call stays where
 * it started): ferry sip, two `ferry media` (A, the stack's; B), Redis (a key prefix of this test's
 * own), scripted SIP/RTP phones. Call 0 is placed on A, call 1 on B.
 *  - S13 with two servers: the gateway is SIGKILLed and restarted under its id; it re-attaches each
 *    call on its own server (B's call is not looked for on A, the first listed), RTP goes on, a hold
 *    and resume re-INVITE of B's call is answered by B's endpoint;
 *  - S14 onto a gateway whose FERRY_MEDIA_URL names only A: the owner is SIGKILLed, that gateway
 *    adopts both calls, connecting to B for call 1; hang-ups then release each pipeline on its server.
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');

type Pair = PhonePair;

describe('several media servers: adopted calls stay on their media server', { timeout: 240_000 }, () => {
  let stack: Stack | undefined;
  let mediaB: MediaServerProcess | undefined;
  let other: LineProcess | undefined;
  let otherHttp = 0;
  let portA = 0;
  let dir = '';
  let sipConfigFile = '';
  const pairs: Pair[] = [];
  const records: CallRecord[] = [];

  before(async () => {
    pairs.push(...(await startPhonePairs(2)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-media-servers-adopt-'));
    sipConfigFile = path.join(dir, 'ferry.json');
    await writePhonePairsConfig(sipConfigFile, pairs);
    mediaB = await MediaServerProcess.start();
    portA = await freePort({ protocols: ['tcp'] });
    stack = await startStack({
      redisUrl: 'redis://127.0.0.1:6379',
      env: { FERRY_SIP_CONFIG: sipConfigFile, FERRY_GATEWAY_LEASE_MS: '1500', FERRY_GATEWAY_ADOPT_INTERVAL_MS: '250' },
      partEnv: {
        media: { FERRY_MEDIA_PORT: String(portA) },
        gateway: { FERRY_MEDIA_URL: `ws://127.0.0.1:${portA}/kurento,${mediaB.url}`, FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS: '250' },
      },
    });
  });

  after(async () => {
    await closePhonePairs(pairs);
    if (other && other.child.exitCode === null) {
      other.child.kill('SIGTERM');
      await other.exited;
    }
    if (process.env.FERRY_TEST_DUMP) console.log([...(stack?.output ?? []), ...(other?.stderr ?? [])].slice(-150).join('\n'));
    const prefix = stack?.redisPrefix;
    await stack?.stop();
    await mediaB?.stop();
    if (prefix) await clearRedisPrefix(prefix);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const urlA = (): string => `ws://127.0.0.1:${portA}/kurento`;
  const pipelinesA = async (): Promise<number> => (await getJson<{ pipelines: number }>(portA, '/stats')).pipelines;
  const pipelinesB = async (): Promise<number> => (await mediaB!.stats()).pipelines;
  async function flowing(p: Pair, since: number, what: string): Promise<void> {
    await waitFor(async () => (await p.callee.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the callee`);
    await waitFor(async () => (await p.caller.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the caller`);
  }
  const record = (httpPort: number, id: string): Promise<CallRecord> => getJson<CallRecord>(httpPort, `/api/calls/${id}`);

  test('two calls: the first on A, the second on B', async () => {
    for (let i = 0; i < 2; i++) {
      const since = Date.now();
      await pairs[i]!.caller.call(`sip:7${i}@127.0.0.1:${stack!.sipPort}`, { host: '127.0.0.1', port: stack!.sipPort });
      await flowing(pairs[i]!, since, `call ${i}`);
      const { calls } = await getJson<{ calls: { id: string; caller: { party: string } }[] }>(stack!.httpPort, '/api/calls');
      const id = calls.find((c) => c.caller.party === `caller${i}`)?.id;
      assert.ok(id, `call ${i} listed`);
      records.push(await record(stack!.httpPort, id));
    }
    assert.equal(records[0]!.media.mediaUrl, urlA());
    assert.equal(records[1]!.media.mediaUrl, mediaB!.url);
    assert.equal(await pipelinesA(), 1);
    assert.equal(await pipelinesB(), 1);
  });

  test('S13 with two media servers: the restarted gateway re-attaches each call on its own server; RTP goes on; hold/resume of the call on B is answered by B', async () => {
    const killedAt = Date.now();
    await stack!.kill('gateway', 'SIGKILL');
    await stack!.restart('gateway');
    for (const r of records) {
      const adopted = await waitFor(async () => {
        const rec = await record(stack!.httpPort, r.id);
        return rec.timeline.some((e) => e.t >= killedAt && (e.event === 'media-reattached' || e.event === 'media-gone')) ? rec : undefined;
      }, 20_000, 100, `call ${r.id} adopted`);
      assert.ok(adopted.timeline.some((e) => e.t >= killedAt && e.event === 'media-reattached'), `re-attached: ${adopted.timeline.map((e) => `${e.event} ${e.detail ?? ''}`).join(' | ')}`);
      assert.equal(adopted.state, 'answered');
      assert.equal(adopted.media.mediaUrl, r.media.mediaUrl);
    }
    const since = Date.now();
    for (const p of pairs) await flowing(p, since, 'after the restart');
    // the call on B: its hold and resume reach B's RtpEndpoint (a renegotiated answer comes back)
    const held = await pairs[1]!.caller.reinvite('sendonly');
    assert.match(held, /a=recvonly/, 'hold answered recvonly');
    const resumed = await pairs[1]!.caller.reinvite('sendrecv');
    assert.match(resumed, /a=sendrecv/);
    assert.equal(await pipelinesA(), 1);
    assert.equal(await pipelinesB(), 1);
    for (const p of pairs) assert.equal(p.caller.received.filter((m) => m.method === 'BYE').length + p.callee.received.filter((m) => m.method === 'BYE').length, 0, 'no BYE to anyone');
  });

  test('S14 onto a gateway whose FERRY_MEDIA_URL names only A: it adopts both calls, connecting to B for the call on B; hang-ups release each pipeline on its own server', async () => {
    other = LineProcess.spawn(process.execPath, [BIN, 'gateway'], {
      NODE_ENV: 'test',
      FERRY_SIP_CONTROL_URL: `127.0.0.1:${stack!.controlPort}`,
      FERRY_MEDIA_URL: urlA(),
      FERRY_HTTP_HOST: '127.0.0.1',
      FERRY_HTTP_PORT: '0',
      FERRY_API_TOKEN: TEST_API_TOKEN,
      FERRY_REDIS_PREFIX: stack!.redisPrefix,
      REDIS_URL: 'redis://127.0.0.1:6379',
      FERRY_GATEWAY_ID: `gw-only-a-${stack!.redisPrefix}`,
      FERRY_SIP_CONFIG: sipConfigFile,
      FERRY_GATEWAY_LEASE_MS: '1500',
      FERRY_GATEWAY_ADOPT_INTERVAL_MS: '250',
    });
    const ready = await other.waitForLine(/^ferry gateway ready (\{.*\})/, 30_000);
    otherHttp = (JSON.parse(ready[1]!) as { http: number }).http;
    const killedAt = Date.now();
    await stack!.kill('gateway', 'SIGKILL');
    for (const r of records) {
      const adopted = await waitFor(async () => {
        const rec = await record(otherHttp, r.id);
        return rec.owner === `gw-only-a-${stack!.redisPrefix}` && rec.timeline.some((e) => e.t >= killedAt && (e.event === 'media-reattached' || e.event === 'media-gone')) ? rec : undefined;
      }, 20_000, 100, `call ${r.id} adopted by the other gateway`);
      assert.ok(adopted.timeline.some((e) => e.t >= killedAt && e.event === 'media-reattached'), `re-attached: ${adopted.timeline.map((e) => `${e.event} ${e.detail ?? ''}`).join(' | ')}`);
      assert.equal(adopted.state, 'answered');
    }
    const since = Date.now();
    for (const p of pairs) await flowing(p, since, 'after the adoption');
    const m = await (await fetch(`http://127.0.0.1:${otherHttp}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } })).text();
    assert.ok(m.includes(`ferry_media_server_up{url="${mediaB!.url}"} 1`), `the adopting gateway is connected to B:\n${m.split('\n').filter((l) => l.startsWith('ferry_media_server')).join('\n')}`);
    // the call on B ends from its callee: the caller is told, B's pipeline is released (A's untouched)
    const byeAt = await pairs[1]!.callee.hangup();
    await pairs[1]!.caller.waitForRequest('BYE', 5000, byeAt);
    await waitFor(async () => (await pipelinesB()) === 0, 5000, 50, "B's pipeline released");
    assert.equal(await pipelinesA(), 1);
    // and the call on A from its caller
    const byeAt0 = await pairs[0]!.caller.hangup();
    await pairs[0]!.callee.waitForRequest('BYE', 5000, byeAt0);
    await waitFor(async () => (await pipelinesA()) === 0, 5000, 50, "A's pipeline released");
    for (const p of pairs) {
      await p.caller.media.stopMedia();
      await p.callee.media.stopMedia();
    }
    for (const r of records) assert.equal((await record(otherHttp, r.id)).reason, 'sip-bye');
  });
});

async function clearRedisPrefix(prefix: string): Promise<void> {
  const { default: Redis } = await import('ioredis');
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
