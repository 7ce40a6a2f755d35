import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import { RedisServerProcess } from '../helpers/redis-server-process';

/**
 * docs/lifecycle.md F5 with two gateways: their shared (private) Redis, with an append-only file as
 * `ferry start` runs it, crashes (SIGKILL) mid-call and comes back after twice the lease with its
 * data: the call record is there, every lease has lapsed (no gateway could renew its own). The
 * gateway that does not own the call must not take the lapsed lease for a dead owner, whichever
 * reconnects first: nobody adopts for two lease times (counters and the record checked throughout).
 * Positive control: the owner is then SIGKILLed and the other gateway adopts the call, and handles
 * the phone's hang-up.
 */
const LEASE_MS = 2000;
const OUTAGE_MS = LEASE_MS * 2;

async function metricsOf(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('F5: Redis (append-only) down longer than the lease, two gateways', { timeout: 180_000 }, () => {
  let redis: RedisServerProcess;
  let fx: GatewayCallFixture;
  let reader: Redis;

  before(async () => {
    redis = await RedisServerProcess.start({ appendOnly: true });
    fx = await GatewayCallFixture.start({ redisUrl: redis.url, secondGateway: true, env: { FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_MEDIA_DEAD_MS: '5000' } });
    reader = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    reader.on('error', () => {});
  });
  after(async () => {
    reader?.disconnect();
    await fx?.close();
    await redis?.stop();
  });

  test('F5: Redis (append-only) SIGKILLed mid-call, back after 2 x lease with the record but no lease -> neither gateway adopts the other\'s live call; the owner SIGKILLed afterwards -> the other adopts it (control) and handles the hang-up', async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since).catch(() => fx.liveCall(since, fx.stack.httpPort2));
    const ownerIsA = call.owner.startsWith('gw-a-');
    const ports = [fx.stack.httpPort, fx.stack.httpPort2!];
    const otherHttp = ownerIsA ? fx.stack.httpPort2! : fx.stack.httpPort;
    const leaseKey = `${fx.stack.redisPrefix}lease:${call.owner}`;
    assert.ok((await reader.pttl(leaseKey)) > 0, "the owner's lease is in Redis");

    await redis.kill('SIGKILL');
    const downAt = Date.now();
    // both gateways notice, and the outage lasts 2 x lease
    await waitFor(async () => {
      const ups = await Promise.all(ports.map(async (p) => metric(await metricsOf(p), 'ferry_store_up')));
      return ups.every((u) => u === 0) && Date.now() - downAt >= OUTAGE_MS;
    }, OUTAGE_MS + 10_000, 100, 'both gateways see the store down, for 2 x lease');
    await redis.restart();
    const resumedAt = Date.now();
    await waitFor(async () => (await reader.ping().catch(() => '')) === 'PONG', 5000, 20, 'Redis answering');
    assert.equal(await reader.exists(`${fx.stack.redisPrefix}call:${call.id}`), 1, 'the record came back from the append-only file');

    // two lease times after the resume: nobody adopted anything
    const adoptedTotals = async (): Promise<number[]> => Promise.all(ports.map(async (p) => metric(await metricsOf(p), 'ferry_calls_adopted_total') ?? -1));
    let checks = 0;
    // at least 2 x lease, and at least 5 looks at the record (a loaded machine makes each look slow)
    while ((Date.now() < resumedAt + LEASE_MS * 2 || checks < 5) && Date.now() < resumedAt + LEASE_MS * 6) {
      assert.deepEqual(await adoptedTotals(), [0, 0], 'no gateway adopted a call');
      const rec = await fx.redisCall(call.id).catch(() => undefined);
      if (rec) {
        assert.equal(rec.record.owner, call.owner, 'the owner is unchanged');
        assert.ok(!rec.record.timeline.some((e) => e.event === 'adopted'), `not adopted: ${JSON.stringify(rec.record.timeline.map((e) => e.event))}`);
        checks++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(checks >= 5, `the record was checked ${checks} times`);
    await waitFor(async () => (await Promise.all(ports.map(async (p) => metric(await metricsOf(p), 'ferry_store_up')))).every((u) => u === 1), 5000, 50, 'both gateways see the store up');
    assert.ok((await reader.pttl(leaseKey)) > 0, 'the owner renewed its lease');
    assert.equal(await fx.webphone.callState(), 'connected');

    // positive control: a really dead owner is still adopted
    await fx.stack.kill(ownerIsA ? 'gateway' : 'gateway2', 'SIGKILL');
    const killedAt = Date.now();
    await waitFor(async () => (await fx.call(call.id, otherHttp).catch(() => undefined))?.timeline.some((e) => e.event === 'adopted'), LEASE_MS * 3 + 10_000, 50, 'the other gateway adopts the call of the dead owner');
    const adoptedAfter = Date.now() - killedAt;
    assert.ok(adoptedAfter <= LEASE_MS * 2 + 2000, `adopted ${adoptedAfter} ms after the owner died`);

    const byeAt = await fx.phone.hangup();
    await fx.phone.media.sendBye();
    await fx.phone.media.stopMedia();
    await fx.webphone.waitCallState('ended', 5000);
    const toldMs = (await fx.webphone.endedAt())! - byeAt;
    assert.ok(toldMs < 1000, `webphone told ${toldMs} ms after the phone's BYE`);
    await fx.releasedAt(5000);
    console.log(`# measured F5 (two gateways): Redis down ${resumedAt - downAt} ms, 0 adoptions in the ${LEASE_MS * 2} ms after; the owner killed -> adopted in ${adoptedAfter} ms; BYE told in ${toldMs} ms`);
  });
});
