import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { RedisStateStore } from '../../src/gateway/state/redis-state-store';
import { StateStore } from '../../src/gateway/state/state-store';
import { waitFor } from '../helpers/stack';

/** The authentication state (digest nonce counts, failure counters, lockouts) on the real Redis and in memory. */
const REDIS_URL = process.env.FERRY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

function contract(name: string, make: () => StateStore): void {
  describe(`auth state: ${name}`, { timeout: 30_000 }, () => {
    const store = make();
    after(() => store.close());

    test('nonce counts: higher counts are claimed once, repeats and lower ones refused, per nonce', async () => {
      assert.equal(await store.claimNonceCount('n1', 1, 10_000), true);
      assert.equal(await store.claimNonceCount('n1', 1, 10_000), false, 'same count again');
      assert.equal(await store.claimNonceCount('n1', 5, 10_000), true);
      assert.equal(await store.claimNonceCount('n1', 4, 10_000), false, 'lower count');
      assert.equal(await store.claimNonceCount('n2', 1, 10_000), true, 'another nonce has its own counts');
      assert.equal(await store.claimNonceCount('n3', 0, 10_000), true, 'without qop (count 0): once');
      assert.equal(await store.claimNonceCount('n3', 0, 10_000), false);
    });

    test('failures lock a subject out at the limit, for the lockout time; others are not affected', async () => {
      const results: boolean[] = [];
      for (let i = 0; i < 4; i++) results.push(await store.countAuthFailure('ip:10.9.9.9', 3, 10_000, 400));
      assert.deepEqual(results, [false, false, true, false], 'the third failure locks out; counting restarts');
      const left = await store.authLockoutLeft('ip:10.9.9.9');
      assert.ok(left > 0 && left <= 400, `lockout left ${left} ms`);
      assert.equal(await store.authLockoutLeft('ip:10.9.9.8'), 0);
      await waitFor(async () => (await store.authLockoutLeft('ip:10.9.9.9')) === 0, 5000, 20, 'lockout over');
    });
  });
}

const prefix = `ferry-test-auth-${randomUUID().slice(0, 8)}:`;
contract('memory', () => new MemoryStateStore());
contract('redis', () => new RedisStateStore(REDIS_URL, prefix));

describe('auth state shared by gateways on one Redis', { timeout: 30_000 }, () => {
  const a = new RedisStateStore(REDIS_URL, prefix);
  const b = new RedisStateStore(REDIS_URL, prefix);
  const redis = new Redis(REDIS_URL);
  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await a.close();
    await b.close();
  });

  test('the same nonce count claimed at once by two gateways (40 times each) is granted exactly once', async () => {
    const claims = await Promise.all(Array.from({ length: 80 }, (_, i) => (i % 2 ? a : b).claimNonceCount('race', 7, 10_000)));
    assert.equal(claims.filter(Boolean).length, 1);
    const pttl = await redis.pttl(`${prefix}nonce:race`);
    assert.ok(pttl > 0 && pttl <= 10_000, `the nonce record expires (${pttl} ms)`);
  });

  test('failures counted at two gateways add up to one lockout seen by both', async () => {
    const locks = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).countAuthFailure('user:alice', 10, 10_000, 5_000)));
    assert.equal(locks.filter(Boolean).length, 1);
    assert.ok((await a.authLockoutLeft('user:alice')) > 0);
    assert.ok((await b.authLockoutLeft('user:alice')) > 0);
  });
});
