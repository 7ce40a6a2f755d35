import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import Redis from 'ioredis';
import winston from 'winston';
import { createStateStore } from '../../src/gateway/state/create-state-store';
import { ResilientStateStore } from '../../src/gateway/state/resilient-state-store';
import { StoreUnavailableError } from '../../src/gateway/state/store-unavailable-error';
import { CallRecord } from '../../src/gateway/state/call-record';
import { Registration } from '../../src/gateway/state/registration';
import { RedisServerProcess } from '../helpers/redis-server-process';
import { waitFor } from '../helpers/stack';

/**
 * The gateway's state store when Redis goes away (ResilientStateStore over RedisStateStore, built as
 * the gateway builds it), against a private redis-server this test kills, freezes and restarts empty.
 */
const TIMEOUT_MS = 300;
/** what "answered within the bound" allows on a loaded 2-core machine: the bound plus scheduling slack */
const ANSWER_BOUND_MS = TIMEOUT_MS + 500;

function reg(user: string, contact: string, expiresAt: number): Registration {
  return { aor: `sip:${user}@d`, user, contact, transport: 'ws', source: '127.0.0.1:1', webrtc: true, registeredAt: Date.now(), expiresAt };
}

function call(id: string, state: CallRecord['state'] = 'answered'): CallRecord {
  return {
    id,
    state,
    createdAt: Date.now(),
    caller: { uri: 'sip:alice@d', kind: 'webrtc', party: 'alice' },
    callee: { uri: 'sip:1001@d', kind: 'rtp', party: 'pbx' },
    media: { mediaUrl: 'ws://x' },
    owner: 'gw-x',
    timeline: [{ t: 1, event: 'invite' }],
  };
}

interface World {
  redis: RedisServerProcess;
  store: ResilientStateStore;
  /** a plain client reading what is really in Redis */
  reader: Redis;
  prefix: string;
  logs: { message: string; [k: string]: unknown }[];
  close(): Promise<void>;
}

async function world(): Promise<World> {
  const redis = await RedisServerProcess.start();
  const logs: World['logs'] = [];
  const log = winston.createLogger({
    level: 'info',
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, cb) {
            for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as World['logs'][number]);
            cb();
          },
        }),
      }),
    ],
  });
  const prefix = `ferry-test-${randomUUID().slice(0, 8)}:`;
  const store = createStateStore(redis.url, prefix, undefined, { timeoutMs: TIMEOUT_MS, log }) as ResilientStateStore;
  assert.ok(store instanceof ResilientStateStore, 'a Redis store is the resilient one');
  const reader = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  reader.on('error', () => {});
  return {
    redis,
    store,
    reader,
    prefix,
    logs,
    close: async () => {
      if (redis.pid) {
        try {
          process.kill(redis.pid, 'SIGCONT');
        } catch {
          /* gone */
        }
      }
      await store.close().catch(() => {});
      reader.disconnect();
      await redis.stop();
    },
  };
}

/** runs `fn`, asserting it settles within ANSWER_BOUND_MS; returns its outcome and the time taken */
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = Date.now();
  try {
    const value = await fn();
    return { ms: Date.now() - t0, value };
  } catch (error) {
    return { ms: Date.now() - t0, error };
  }
}

describe('resilient state store (private redis-server)', () => {
  const worlds: World[] = [];
  after(async () => {
    for (const w of worlds) await w.close();
  });

  test('F5: Redis killed — every operation answers within the bound; writes are kept, reads fail (an unreadable lease is not an expired one), bindings fall back to this gateway\'s', { timeout: 60_000 }, async () => {
    const w = await world();
    worlds.push(w);
    const { store } = w;
    const now = Date.now();
    await store.putRegistration(reg('alice', 'sip:alice@a.invalid;transport=ws', now + 60_000));
    await store.putCall(call('c-live'));
    await store.renewLease('gw-x', 5000);
    // positive control: while Redis is up, reads answer from Redis
    assert.equal((await store.listCalls()).length, 1);
    assert.equal(await store.leaseAlive('gw-other'), false);
    assert.deepEqual(store.health(), { up: true, errorsTotal: 0 });

    await w.redis.kill('SIGKILL');
    await waitFor(() => !store.health().up || undefined, 5000, 20, 'the store to notice the lost connection').catch(() => undefined);

    const results = {
      listCalls: await timed(() => store.listCalls()),
      getCall: await timed(() => store.getCall('c-live')),
      leaseAlive: await timed(() => store.leaseAlive('gw-other')),
      claimAdoption: await timed(() => store.claimAdoption('c-live', 'gw-x', 1000)),
      countCallKeys: await timed(() => store.countCallKeys()),
      putCall: await timed(() => store.putCall({ ...call('c-live'), timeline: [{ t: 2, event: 'hold' }] })),
      putRegistration: await timed(() => store.putRegistration(reg('carol', 'sip:carol@c.invalid', now + 60_000))),
      removeRegistration: await timed(() => store.removeRegistration('nobody', 'sip:x@y.invalid')),
      renewLease: await timed(() => store.renewLease('gw-x', 5000)),
      getRegistrations: await timed(() => store.getRegistrations('alice')),
      countRegistrations: await timed(() => store.countRegistrations()),
    };
    const slow = Object.entries(results).filter(([, r]) => r.ms > ANSWER_BOUND_MS);
    assert.deepEqual(slow.map(([op, r]) => `${op} ${r.ms} ms`), [], `every operation answers within ${ANSWER_BOUND_MS} ms`);
    for (const op of ['listCalls', 'getCall', 'leaseAlive', 'claimAdoption', 'countCallKeys'] as const) {
      assert.ok(results[op].error instanceof StoreUnavailableError, `${op} rejects with StoreUnavailableError (got ${String(results[op].error ?? JSON.stringify(results[op].value))})`);
    }
    for (const op of ['putCall', 'putRegistration', 'removeRegistration', 'renewLease'] as const) {
      assert.equal(results[op].error, undefined, `${op} resolves (kept for write-back)`);
    }
    assert.deepEqual((results.getRegistrations.value ?? []).map((r) => r.contact), ['sip:alice@a.invalid;transport=ws'], 'alice routes on the binding this gateway accepted');
    assert.equal(results.countRegistrations.value, 2, 'alice and carol, as this gateway knows them');
    const health = store.health();
    assert.equal(health.up, false);
    assert.ok(health.errorsTotal >= 9, `failed operations counted: ${health.errorsTotal}`);
    const unavailable = w.logs.filter((l) => l.message === 'state store unavailable');
    assert.equal(unavailable.length, 1, `one line for the outage, not one per operation: ${JSON.stringify(unavailable)}`);
    console.log(`# measured: with Redis killed, slowest store operation answered in ${Math.max(...Object.values(results).map((r) => r.ms))} ms (bound ${TIMEOUT_MS} ms)`);
  });

  test('F5: Redis restarted empty — lease, live call record and unexpired bindings written back; an ended call comes back ended, an expired binding not at all', { timeout: 60_000 }, async () => {
    const w = await world();
    worlds.push(w);
    const { store, reader, prefix } = w;
    const now = Date.now();
    await store.putRegistration(reg('alice', 'sip:alice@a.invalid;transport=ws', now + 60_000));
    await store.putRegistration(reg('bob', 'sip:bob@b.invalid', now + 1500));
    await store.putCall(call('c-live'));
    await store.putCall(call('c-ends'));
    await store.renewLease('gw-x', 30_000);
    const nonceKey = await store.sharedKey('digest-nonce');
    assert.equal(await reader.exists(`${prefix}call:c-live`, `${prefix}call:c-ends`, `${prefix}reg:alice`, `${prefix}reg:bob`, `${prefix}lease:gw-x`, `${prefix}key:digest-nonce`), 6);

    await w.redis.kill('SIGKILL');
    // while it is down: the live call changes, the other call ends, a new binding arrives
    await store.putCall({ ...call('c-live'), timeline: [{ t: 1, event: 'invite' }, { t: 2, event: 'hold' }] });
    await store.putCall({ ...call('c-ends', 'ended'), reason: 'sip-bye', endedAt: Date.now() }, 60_000);
    await store.putRegistration(reg('carol', 'sip:carol@c.invalid', now + 60_000));
    assert.equal(store.health().up, false);
    await waitFor(() => Date.now() > now + 1700 || undefined, 5000, 20, "bob's binding to expire");

    const restartedAt = Date.now();
    await w.redis.restart();
    assert.equal(await waitFor(async () => (await reader.ping().catch(() => '')) === 'PONG' || undefined, 5000, 20, 'reader reconnected'), true);
    await waitFor(async () => (await reader.exists(`${prefix}call:c-live`, `${prefix}reg:carol`, `${prefix}call:c-ends`)) === 3 || undefined, 5000, 20, 'written back');
    const writtenBackMs = Date.now() - restartedAt;
    await store.settled();

    const live = JSON.parse((await reader.get(`${prefix}call:c-live`))!) as CallRecord;
    assert.equal(live.state, 'answered');
    assert.deepEqual(live.timeline.map((t) => t.event), ['invite', 'hold'], 'the newest version of the live record');
    assert.equal(await reader.pttl(`${prefix}call:c-live`), -1, 'a live record has no TTL');
    assert.ok((await reader.smembers(`${prefix}calls`)).includes('c-live'), 'listed in the live-call index');
    const ended = JSON.parse((await reader.get(`${prefix}call:c-ends`))!) as CallRecord;
    assert.equal(ended.state, 'ended', 'an ended call is not resurrected as live');
    const endedTtl = await reader.pttl(`${prefix}call:c-ends`);
    assert.ok(endedTtl > 0 && endedTtl <= 60_000, `ended record keeps its TTL backstop: ${endedTtl}`);
    assert.ok((await reader.pttl(`${prefix}lease:gw-x`)) > 0, 'the lease is back');
    assert.equal(await reader.get(`${prefix}key:digest-nonce`), nonceKey.toString('hex'), 'the shared nonce key is back, the same');
    assert.deepEqual(Object.keys(await reader.hgetall(`${prefix}reg:alice`)), ['sip:alice@a.invalid;transport=ws']);
    assert.deepEqual(Object.keys(await reader.hgetall(`${prefix}reg:carol`)), ['sip:carol@c.invalid']);
    assert.equal(await reader.exists(`${prefix}reg:bob`), 0, 'an expired binding is not written back');
    assert.equal(await store.countRegistrations(), 2);
    assert.equal(store.health().up, true);
    assert.ok(w.logs.some((l) => l.message === 'state store written back'), 'the write-back is logged');
    // the ended call is confirmed now: it is not written again on the next recovery
    await w.redis.restart();
    await waitFor(async () => (await reader.exists(`${prefix}call:c-live`)) === 1 || undefined, 5000, 20, 'second write-back');
    await store.settled();
    assert.equal(await reader.exists(`${prefix}call:c-ends`), 0, 'a confirmed end is not written again');
    console.log(`# measured: Redis restarted empty -> call record and bindings back in ${writtenBackMs} ms`);
    await reader.del(`${prefix}call:c-live`, `${prefix}calls`, `${prefix}reg:alice`, `${prefix}reg:carol`, `${prefix}regs`, `${prefix}lease:gw-x`, `${prefix}key:digest-nonce`);
  });

  test('F5: Redis frozen (SIGSTOP) — operations time out within the bound, then writes return at once; after it resumes, the end and the deletion made meanwhile are applied, and a peer lease that lapsed meanwhile is not taken for expired for one lease time', { timeout: 60_000 }, async () => {
    const w = await world();
    worlds.push(w);
    const { store, reader, prefix } = w;
    await store.putCall(call('c-ends'));
    await store.putCall(call('c-deleted'));
    await store.putRegistration(reg('dave', 'sip:dave@d.invalid', Date.now() + 60_000));
    await store.renewLease('gw-x', 2000);
    // a peer gateway's lease, due to lapse during the freeze (its owner cannot renew it either)
    await reader.set(`${prefix}lease:gw-peer`, '1', 'PX', 600);
    const peerLeaseSetAt = Date.now();
    assert.equal(await store.leaseAlive('gw-peer'), true);
    assert.equal(await reader.exists(`${prefix}call:c-ends`, `${prefix}call:c-deleted`), 2);

    process.kill(w.redis.pid!, 'SIGSTOP');
    const list = await timed(() => store.listCalls());
    assert.ok(list.error instanceof StoreUnavailableError, 'listCalls fails against a frozen Redis');
    assert.ok(list.ms >= TIMEOUT_MS - 20 && list.ms <= ANSWER_BOUND_MS, `bounded by the timeout: ${list.ms} ms`);
    const end = await timed(() => store.putCall({ ...call('c-ends', 'ended'), reason: 'sip-bye' }, 60_000));
    const del = await timed(() => store.deleteCall('c-deleted'));
    const remove = await timed(() => store.removeRegistration('dave', 'sip:dave@d.invalid'));
    for (const r of [end, del, remove]) {
      assert.equal(r.error, undefined);
      // the store is known down: a write is kept and does not wait for Redis (a BYE must not wait either)
      assert.ok(r.ms < 100, `a write while the store is down returns at once: ${r.ms} ms`);
    }
    assert.equal(store.health().up, false);
    // the freeze lasts until the peer's lease has lapsed inside Redis
    await waitFor(() => Date.now() > peerLeaseSetAt + 900 || undefined, 5000, 20, 'the freeze to outlast the peer lease');
    process.kill(w.redis.pid!, 'SIGCONT');

    // the first operation that is answered again brings the store back and starts the write-back
    await waitFor(async () => (await store.listCalls().then(() => true, () => false)) || undefined, 5000, 50, 'store answering again');
    await store.settled();
    assert.equal(store.health().up, true);
    const ended = JSON.parse((await reader.get(`${prefix}call:c-ends`))!) as CallRecord;
    assert.equal(ended.state, 'ended', 'the end made during the freeze reached Redis');
    assert.ok((await reader.pttl(`${prefix}call:c-ends`)) > 0, 'with its TTL');
    assert.equal(await reader.exists(`${prefix}call:c-deleted`), 0, 'the deletion reached Redis');
    assert.equal(await reader.hexists(`${prefix}reg:dave`, 'sip:dave@d.invalid'), 0, 'the removal reached Redis');
    assert.deepEqual((await store.listCalls()).filter((c) => c.state !== 'ended'), [], 'no call is live any more');

    // the peer's lease lapsed while Redis was frozen: not a reason to adopt its calls at once
    assert.equal(await reader.exists(`${prefix}lease:gw-peer`), 0, 'the peer lease really lapsed');
    assert.equal(await store.leaseAlive('gw-peer'), true, 'a lease that lapsed during the outage counts as alive for one lease time');
    const graceStart = Date.now();
    await waitFor(async () => (await store.leaseAlive('gw-peer')) === false, 5000, 50, 'the grace to end');
    const grace = Date.now() - graceStart;
    assert.ok(grace < 2000 + 500, `the grace lasts at most one lease time (${grace} ms)`);
    console.log(`# measured: a peer lease that lapsed during the outage counted as alive ${grace} ms more (lease 2000 ms, polled every 50 ms)`);
    await reader.del(`${prefix}call:c-ends`, `${prefix}calls`, `${prefix}regs`, `${prefix}lease:gw-x`);
  });
});
