import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FakeClock } from '../../src/common/clock';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { RedisStateStore } from '../../src/gateway/state/redis-state-store';
import { StateStore } from '../../src/gateway/state/state-store';
import { CallRecord } from '../../src/gateway/state/call-record';
import { Registration } from '../../src/gateway/state/registration';

/** One contract, run against the real Redis on 127.0.0.1:6379 and against the in-memory store. */
const REDIS_URL = process.env.FERRY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

function reg(user: string, contact: string, expiresAt: number): Registration {
  return { aor: `sip:${user}@d`, user, contact, transport: 'ws', source: '127.0.0.1:1', webrtc: true, registeredAt: 0, expiresAt };
}

function call(id: string): CallRecord {
  return {
    id,
    state: 'ringing',
    createdAt: Date.now(),
    caller: { uri: 'sip:alice@d', kind: 'webrtc', party: 'alice' },
    callee: { uri: 'sip:1001@d', kind: 'rtp', party: 'pbx' },
    media: { mediaUrl: 'ws://x' },
    owner: 'gw-a',
    timeline: [{ t: 1, event: 'invite' }],
  };
}

function contract(name: string, make: () => { store: StateStore; wait: (ms: number) => Promise<void>; now: () => number }): void {
  describe(`state store: ${name}`, () => {
    const { store, wait, now: clockNow } = make();
    after(() => store.close());

    test('registrations expire and are counted', { timeout: 120_000 }, async () => {
      const now = clockNow();
      await store.putRegistration(reg('u1', 'sip:a@x.invalid', now + 60_000));
      await store.putRegistration(reg('u1', 'sip:b@x.invalid', now + 1000));
      await store.putRegistration(reg('u2', 'sip:c@x.invalid', now + 60_000));
      assert.equal((await store.getRegistrations('u1')).length, 2);
      assert.equal(await store.countRegistrations(), 3);
      await wait(1300); // well past the short binding's expiry, with room for a loaded machine
      assert.deepEqual((await store.getRegistrations('u1')).map((r) => r.contact), ['sip:a@x.invalid']);
      assert.equal(await store.countRegistrations(), 2);
      await store.removeRegistration('u1', 'sip:a@x.invalid');
      await store.removeRegistration('u2', 'sip:c@x.invalid');
      assert.equal(await store.countRegistrations(), 0);
      assert.deepEqual(await store.getRegistrations('u1'), []);
    });

    test('call records: live without TTL, ended with TTL, deleted', { timeout: 120_000 }, async () => {
      const a = call(randomUUID());
      const b = call(randomUUID());
      await store.putCall(a);
      await store.putCall(b);
      assert.equal(await store.countCallKeys(), 2);
      assert.deepEqual(await store.getCall(a.id), a);
      assert.equal((await store.listCalls()).length, 2);
      await store.putCall({ ...b, state: 'ended', reason: 'sip-bye' }, 200);
      assert.equal((await store.getCall(b.id))?.reason, 'sip-bye');
      await wait(400);
      assert.equal(await store.getCall(b.id), undefined, 'ended record expires by TTL');
      assert.deepEqual((await store.listCalls()).map((c) => c.id), [a.id]);
      await store.deleteCall(a.id);
      assert.equal(await store.countCallKeys(), 0);
      assert.deepEqual(await store.listCalls(), []);
    });

    test('leases and adoption claims', { timeout: 120_000 }, async () => {
      await store.renewLease('gw-1', 200);
      assert.equal(await store.leaseAlive('gw-1'), true);
      assert.equal(await store.leaseAlive('gw-2'), false);
      await wait(400);
      assert.equal(await store.leaseAlive('gw-1'), false);
      assert.equal(await store.claimAdoption('c1', 'gw-2', 200), true);
      assert.equal(await store.claimAdoption('c1', 'gw-3', 200), false, 'another gateway holds the claim');
      assert.equal(await store.claimAdoption('c1', 'gw-2', 200), true, 'the holder may re-claim');
      await wait(400);
      assert.equal(await store.claimAdoption('c1', 'gw-3', 200), true, 'claim expired');
      await store.deleteCall('c1');
      await store.dropLease('gw-1');
    });
  });
}

contract('redis', () => ({
  store: new RedisStateStore(REDIS_URL, `ferry-test-${randomUUID().slice(0, 8)}:`),
  wait: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => Date.now(),
}));

contract('memory (fake clock)', () => {
  const clock = new FakeClock(Date.now());
  return { store: new MemoryStateStore(clock), wait: async (ms) => clock.advance(ms), now: () => clock.now() };
});
