import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import Redis from 'ioredis';
import { createLogger } from '../../src/common/logger';
import { LocalCallEventBus } from '../../src/gateway/events/call-events';
import { RedisWebhookQueue } from '../../src/gateway/webhooks/redis-webhook-queue';
import { WebhookReceiver } from '../../src/gateway/webhooks/webhook-config';
import { Webhooks } from '../../src/gateway/webhooks/webhooks';
import { SendOutcome } from '../../src/gateway/webhooks/webhook-sender';
import { removeTestKeys } from '../helpers/redis-test-keys';
import { waitFor } from '../helpers/stack';

const log = createLogger('test.webhooks');
const receiver = (over: Partial<WebhookReceiver> = {}): WebhookReceiver => ({
  name: 'r',
  url: 'http://127.0.0.1:9/',
  secret: 'receiver-secret-0123456789',
  timeoutMs: 1000,
  retryInitialMs: 20,
  retryMaxMs: 80,
  maxAgeMs: 60_000,
  maxQueue: 100,
  ...over,
});

interface Attempt {
  id: string;
  type: string;
  at: number;
  attempt: number;
}

/** a fake receiver: answers per `answer`, records every attempt */
function fakeSend(answer: (a: Attempt) => SendOutcome | Promise<SendOutcome>): { attempts: Attempt[]; send: ConstructorParameters<typeof Webhooks>[0]['send'] } {
  const attempts: Attempt[] = [];
  return {
    attempts,
    send: async (_r, item, nowMs, attempt) => {
      const a = { id: item.id, type: item.type, at: nowMs, attempt };
      attempts.push(a);
      return answer(a);
    },
  };
}

describe('webhook delivery', { timeout: 20_000 }, () => {
  test('in order; a failing receiver is retried with doubling back-off up to the cap, then gets everything in order', { timeout: 5000 }, async () => {
    const bus = new LocalCallEventBus('gw', Date.now);
    let up = false;
    const fake = fakeSend(() => (up ? { ok: true, status: 204 } : { ok: false, status: 503, error: 'HTTP 503' }));
    const hooks = new Webhooks({ receivers: [receiver()], events: bus, log, instanceId: 'gw', send: fake.send });
    hooks.start();
    try {
      for (const type of ['call.ringing', 'call.answered', 'call.ended'] as const) bus.publish({ type, callId: 'c1', data: {} });
      await waitFor(() => fake.attempts.length >= 6, 3000, 5, 'six failed attempts');
      const first = fake.attempts.filter((a) => a.type === 'call.ringing');
      assert.equal(first.length, fake.attempts.length, 'the head is retried, the rest wait behind it');
      const gaps = first.slice(1).map((a, i) => a.at - first[i]!.at);
      // 20, 40, 80, 80, 80 ms (±20 % jitter): doubling, then capped
      assert.ok(gaps[0]! >= 14 && gaps[0]! < 60, `first gap ${gaps}`);
      assert.ok(gaps[1]! >= 30, `second gap ${gaps}`);
      assert.ok(gaps.every((g) => g < 80 * 1.2 + 40), `capped ${gaps}`);
      assert.equal(hooks.counters.get('r')!.retried, fake.attempts.length);
      up = true;
      await waitFor(() => hooks.counters.get('r')!.delivered === 3, 2000, 5, 'all delivered');
      const ok = fake.attempts.slice(-3);
      assert.deepEqual(ok.map((a) => a.type), ['call.ringing', 'call.answered', 'call.ended']);
      assert.ok(ok[0]!.attempt > 1 && ok[1]!.attempt === 1);
      assert.equal(hooks.counters.get('r')!.queueLength, 0);
    } finally {
      await hooks.stop();
    }
  });

  test('event filter, queue cap and max age are counted drops; the publisher never waits on a hanging receiver', { timeout: 5000 }, async () => {
    const bus = new LocalCallEventBus('gw', Date.now);
    let release: () => void = () => {};
    const hang = new Promise<SendOutcome>((r) => (release = () => r({ ok: false, error: 'no answer' })));
    const fake = fakeSend(() => hang);
    const hooks = new Webhooks({ receivers: [receiver({ maxQueue: 3, maxAgeMs: 100, events: ['call.ended'] })], events: bus, log, instanceId: 'gw', send: fake.send });
    hooks.start();
    try {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) bus.publish({ type: 'call.ended', callId: `c${i}`, data: {} });
      bus.publish({ type: 'call.ringing', callId: 'c-filtered', data: {} });
      assert.ok(performance.now() - t0 < 50, 'publishing is immediate');
      const c = hooks.counters.get('r')!;
      await waitFor(() => c.dropped.get('queue-full') === 7, 1000, 5, 'seven over the cap');
      assert.equal(fake.attempts.length, 1, 'one POST in flight');
      assert.ok(fake.attempts.every((a) => a.type === 'call.ended'), 'the filtered type is not queued');
      release();
      // the three queued events are older than maxAgeMs by the time the retry is due
      await waitFor(() => c.dropped.get('expired') === 3, 2000, 5, 'three expired');
      assert.equal(c.delivered, 0);
      const lines = hooks.metricLines().join('\n');
      assert.match(lines, /ferry_webhook_dropped_total\{receiver="r",reason="queue-full"\} 7/);
      assert.match(lines, /ferry_webhook_dropped_total\{receiver="r",reason="expired"\} 3/);
      assert.match(lines, /ferry_webhook_queue_length\{receiver="r"\} 0/);
    } finally {
      await hooks.stop();
    }
  });
});

describe('webhook delivery stop', { timeout: 10_000 }, () => {
  test('stopping aborts a POST in flight instead of waiting out its timeout', { timeout: 5000 }, async () => {
    const bus = new LocalCallEventBus('gw', Date.now);
    let aborted = 0;
    const started: string[] = [];
    const hooks = new Webhooks({
      receivers: [receiver({ timeoutMs: 30_000 })],
      events: bus,
      log,
      instanceId: 'gw',
      send: (_r, item, _now, _attempt, signal) =>
        new Promise<SendOutcome>((resolve) => {
          started.push(item.type);
          signal?.addEventListener('abort', () => {
            aborted++;
            resolve({ ok: false, error: 'aborted' });
          });
        }),
    });
    hooks.start();
    bus.publish({ type: 'call.ringing', callId: 'c', data: {} });
    await waitFor(() => started.length === 1, 1000, 2, 'the POST started');
    const t0 = Date.now();
    await hooks.stop();
    assert.ok(Date.now() - t0 < 1000, `stopped in ${Date.now() - t0} ms`);
    assert.equal(aborted, 1);
    assert.equal(hooks.counters.get('r')!.retried, 0, 'an aborted POST is not a failure of the receiver');
  });
});

describe('Redis webhook queue', { timeout: 20_000 }, () => {
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
  const prefix = `ferry-test-${randomUUID().slice(0, 8)}:`;
  after(async () => removeTestKeys(redis, prefix));

  test('one lease holder at a time; capped push; the head is removed only by its id', { timeout: 5000 }, async () => {
    const q1 = new RedisWebhookQueue(redis, prefix, 'r', 'gw-1', 300, 2);
    const q2 = new RedisWebhookQueue(redis, prefix, 'r', 'gw-2', 300, 2);
    assert.equal(await q1.acquire(), true);
    assert.equal(await q2.acquire(), false, 'held by gw-1');
    assert.equal(await q1.acquire(), true, 'renewed');
    assert.ok((await redis.pttl(`${prefix}webhook:r:lease`)) > 200);
    await q1.release();
    assert.equal(await q2.acquire(), true, 'free after release');
    assert.equal(await q1.acquire(), false);
    const item = (id: string) => ({ id, type: 'call.ended', queuedAt: Date.now(), body: `{"id":"${id}"}` });
    assert.equal(await q1.push(item('e1')), true);
    assert.equal(await q2.push(item('e2')), true);
    assert.equal(await q1.push(item('e3')), false, 'cap 2');
    await q2.remove('e2');
    assert.equal((await q1.head()).item?.id, 'e1', 'not the head: kept');
    await q2.remove('e1');
    assert.deepEqual({ id: (await q1.head()).item?.id, length: (await q1.head()).length }, { id: 'e2', length: 1 });
    await redis.lpush(`${prefix}webhook:r:queue`, 'not json');
    const h = await q1.head();
    assert.equal(h.malformed, true);
    assert.equal((await q1.head()).item?.id, 'e2', 'the unreadable entry is gone');
  });

  test('a lease not renewed passes to another gateway', { timeout: 5000 }, async () => {
    const q1 = new RedisWebhookQueue(redis, prefix, 'r2', 'gw-1', 100, 10);
    const q2 = new RedisWebhookQueue(redis, prefix, 'r2', 'gw-2', 100, 10);
    assert.equal(await q1.acquire(), true);
    assert.equal(await q2.acquire(), false);
    await waitFor(() => q2.acquire(), 1000, 20, 'the lease expired');
    assert.equal(await q1.acquire(), false);
  });
});
