import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Redis from 'ioredis';
import { WebSocket } from 'ws';
import type { CallEvent } from '../../src/gateway/events/call-events';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { RtpPhone } from '../helpers/rtp-phone';
import { removeTestKeys } from '../helpers/redis-test-keys';
import { SipPhone } from '../helpers/sip-phone';
import { digestAnswer, SipRawClient } from '../helpers/sip-raw-client';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import { WebhookReceiverServer } from '../helpers/webhook-receiver';

/**
 * Webhooks and /api/events against the real three ferry processes on the shared Redis: scripted
 * phone "a" (a trunk) calls "9100", routed to scripted phone "b" (another trunk); the webhook
 * receiver is a real HTTP server in this process that checks every signature.
 */
const SECRET = 'webhook-test-secret-0123456789';
const TIMEOUT_MS = 1000;
const CAROL_PASSWORD = 'carol-webhook-secret';
const CALL_FLOW = ['call.ringing', 'call.answered', 'call.held', 'call.resumed', 'call.ended'];

describe('gateway webhooks and /api/events', { timeout: 150_000 }, () => {
  const receiver = new WebhookReceiverServer(SECRET);
  const a = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'a' });
  const b = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'b' });
  let stack: Stack;
  let dir: string;
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });

  before(async () => {
    await receiver.start();
    const [pa, pb] = [await a.start(), await b.start()];
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-webhooks-'));
    const file = path.join(dir, 'ferry.json');
    const trunk = (name: string, port: number) => ({ name, address: `127.0.0.1:${port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${port}`] });
    await writeFile(
      file,
      JSON.stringify({
        domain: 'ferry.local',
        users: [{ user: 'carol', password: CAROL_PASSWORD }],
        trunks: [trunk('a', pa), trunk('b', pb)],
        routes: [{ match: '9(\\d+)', to: 'trunk:b', rewrite: '$1' }],
        webhooks: [{ name: 'test', url: receiver.url, secret: SECRET, timeoutMs: TIMEOUT_MS, retryInitialMs: 200, retryMaxMs: 1000 }],
      }),
    );
    stack = await startStack({ redisUrl: 'redis://127.0.0.1:6379', env: { FERRY_SIP_CONFIG: file } });
  });

  after(async () => {
    await stack?.stop();
    await a.close();
    await b.close();
    await receiver.stop();
    await removeTestKeys(redis, stack?.redisPrefix ?? 'ferry-test-none:');
    await rm(dir, { recursive: true, force: true });
  });

  async function call(): Promise<{ id: string; setupMs: number }> {
    const since = Date.now();
    await a.call('sip:9100@127.0.0.1', { host: '127.0.0.1', port: stack.sipPort });
    const setupMs = Date.now() - since;
    const rec = await waitFor(
      async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.find((c) => c.createdAt >= since - 50 && c.state === 'answered'),
      5000,
      20,
      'the answered call',
    );
    return { id: rec.id, setupMs };
  }

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{receiver="test"} `));
    return line ? Number(line.split(' ').pop()) : NaN;
  }

  function typesOf(events: CallEvent[], callId: string): string[] {
    return events.filter((e) => e.callId === callId).map((e) => e.type);
  }

  test('a call’s events reach the receiver in order, signed, and the /api/events stream (token required)', { timeout: 30_000 }, async () => {
    // without the token the upgrade is refused
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/api/events`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('opened without a token')));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 401);
    const streamed: CallEvent[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/api/events`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    ws.on('message', (m) => streamed.push(JSON.parse(String(m)) as CallEvent));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    try {
      const { id } = await call();
      await a.reinvite('sendonly');
      await a.reinvite('sendrecv');
      await a.hangup();
      await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 10_000, 20, 'call.ended at the receiver');
      const got = receiver.eventsOf(id);
      assert.deepEqual(got.map((r) => r.event.type), CALL_FLOW);
      for (const r of got) {
        assert.ok(r.verified, `signature of ${r.event.type}: ${r.verifyProblem}`);
        assert.equal(r.eventId, r.event.id);
      }
      assert.equal(new Set(got.map((r) => r.event.id)).size, got.length, 'one id per event');
      const ended = got.at(-1)!.event;
      assert.equal(ended.data.reason, 'sip-bye');
      assert.equal(ended.data.endedBy, 'caller');
      assert.ok((ended.data.talkMs as number) > 0, 'talk time');
      assert.equal((ended.data.parties as { caller: { party: string } }).caller.party, 'a');
      assert.equal((ended.data.parties as { callee: { party: string } }).callee.party, 'b');
      assert.equal(got[2]!.event.data.by, 'caller');
      // the WebSocket stream carries the same events (same ids)
      await waitFor(() => typesOf(streamed, id).length === CALL_FLOW.length, 5000, 20, 'the call’s events on /api/events');
      assert.deepEqual(typesOf(streamed, id), CALL_FLOW);
      assert.deepEqual(streamed.filter((e) => e.callId === id).map((e) => e.id), got.map((r) => r.event.id));
    } finally {
      ws.close();
    }
  });

  test('registration.changed when a binding is added or removed, not on a refresh', { timeout: 15_000 }, async () => {
    const client = await SipRawClient.open('udp', stack.sipPort);
    try {
      const register = async (expires: number): Promise<number> => {
        const uri = 'sip:ferry.local';
        const challenge = await client.request({ method: 'REGISTER', uri, fromUser: 'carol', expires });
        assert.equal(challenge.status, 401);
        const authorization = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'carol', password: CAROL_PASSWORD, method: 'REGISTER', uri });
        return (await client.request({ method: 'REGISTER', uri, fromUser: 'carol', expires, authorization, cseq: 2 })).status;
      };
      const changes = () => receiver.received.filter((r) => r.event.type === 'registration.changed').map((r) => r.event);
      assert.equal(await register(300), 200);
      await waitFor(() => changes().length === 1, 5000, 20, 'registration.changed (added)');
      assert.equal(await register(300), 200); // a refresh
      assert.equal(await register(0), 200);
      await waitFor(() => changes().length >= 2, 5000, 20, 'registration.changed (removed)');
      const [added, removed] = changes();
      assert.equal(added!.data.user, 'carol');
      assert.equal((added!.data.added as string[]).length, 1);
      assert.equal((added!.data.contacts as unknown[]).length, 1);
      // the refresh between them was no change: the next event is the removal
      assert.deepEqual(removed!.data.removed, added!.data.added);
      assert.deepEqual(removed!.data.contacts, []);
      assert.equal(changes().length, 2);
      assert.ok(receiver.received.filter((r) => r.event.type === 'registration.changed').every((r) => r.verified));
    } finally {
      client.close();
    }
  });

  test('a receiver that is down gets the events once it is back (retried with back-off)', { timeout: 30_000 }, async () => {
    await receiver.stop();
    const retriedBefore = await metric('ferry_webhook_retried_total');
    const { id } = await call();
    await a.hangup();
    await waitFor(async () => (await metric('ferry_webhook_retried_total')) >= retriedBefore + 3, 10_000, 50, 'failed attempts counted');
    assert.equal(receiver.eventsOf(id).length, 0, 'nothing delivered while down');
    assert.ok((await metric('ferry_webhook_queue_length')) >= 1, 'events queued');
    await receiver.start(); // the same port
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 10_000, 20, 'call.ended after the receiver returned');
    const got = receiver.eventsOf(id);
    assert.deepEqual(got.map((r) => r.event.type), ['call.ringing', 'call.answered', 'call.ended']);
    assert.ok(got.every((r) => r.verified));
    assert.ok(got[0]!.attempt > 1, `the first event was retried (attempt ${got[0]!.attempt})`);
    await waitFor(async () => (await metric('ferry_webhook_queue_length')) === 0, 5000, 50, 'queue drained');
  });

  test('events queued in Redis before a gateway restart are delivered after it', { timeout: 40_000 }, async () => {
    receiver.mode = 'fail';
    const postsBefore = receiver.posts;
    const { id } = await call();
    await a.hangup();
    const queueKey = `${stack.redisPrefix}webhook:test:queue`;
    await waitFor(async () => receiver.posts > postsBefore && (await redis.llen(queueKey)) >= 3, 10_000, 50, 'the call’s events queued in Redis, receiver failing');
    const restartAt = Date.now();
    await stack.restart('gateway');
    receiver.mode = 'ok';
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 15_000, 20, 'call.ended after the restart');
    const got = receiver.eventsOf(id);
    assert.deepEqual(got.map((r) => r.event.type), ['call.ringing', 'call.answered', 'call.ended']);
    for (const r of got) {
      assert.ok(r.verified);
      assert.ok(r.event.at < restartAt && r.at > restartAt, 'published before the restart, delivered after');
    }
    await waitFor(async () => (await redis.llen(queueKey)) === 0, 5000, 50, 'Redis queue drained');
  });

  test('calls are not slowed by a receiver that never answers', { timeout: 40_000 }, async () => {
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const setups = async (): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { setupMs } = await call();
        await a.hangup();
        out.push(setupMs);
      }
      return out;
    };
    receiver.mode = 'ok';
    const healthy = await setups();
    const deliveredBefore = receiver.received.length;
    const postsBefore = receiver.posts;
    receiver.mode = 'hang';
    const dead = await setups();
    // positive control: the POSTs did reach the hanging receiver, and none was answered
    await waitFor(() => receiver.posts > postsBefore, 5000, 20, 'a POST at the hanging receiver');
    assert.equal(receiver.received.length, deliveredBefore);
    // a call that waited for even one POST would be slower by the POST timeout
    assert.ok(median(dead) - median(healthy) < TIMEOUT_MS / 2, `set-up ms healthy ${healthy.join(',')} vs dead receiver ${dead.join(',')}`);
    receiver.mode = 'ok';
    await waitFor(async () => (await metric('ferry_webhook_queue_length')) === 0, 20_000, 100, 'queue drained once the receiver answers');
  });
});
