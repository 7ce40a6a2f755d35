import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { WebSocket } from 'ws';
import type { CallEvent } from '../../src/gateway/events/call-events';
import { freePort } from '../helpers/free-port';
import { removeTestKeys } from '../helpers/redis-test-keys';
import { RtpPhone, type ReceivedTelephoneEvent } from '../helpers/rtp-phone';
import { describeSipp, startSipp } from '../helpers/sipp';
import { SipPhone } from '../helpers/sip-phone';
import { getJson, sippMediaPort, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import { webphoneRegisters } from '../helpers/raw-webphone-registration';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * REST call control on the real stack (ferry sip, ferry media, two gateways on one Redis) with two
 * scripted SIP phones behind two trunks: originate A=8100 (phone A) then B=9200 (phone B), RTP
 * counted at both phones; hold/resume seen at phone B as the direction of the re-INVITE it gets;
 * DTMF seen at phone B as RFC 4733 telephone-events (digits decoded); the other gateway answers 409 naming the
 * owner; DELETE ends it with api-hangup, both phones get BYE, the pipeline is released. Before the
 * bridge: B busy (a phone answering 486) ends the call busy and A gets BYE; DELETE while B rings (SIPp
 * ringing until cancelled) sends A BYE and B CANCEL.
 */
describe('REST call control: originate, hold, resume, dtmf, 409, DELETE', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  const mediaA = new RtpPhone({ rtcpIntervalMs: 1000 });
  const mediaB = new RtpPhone({ rtcpIntervalMs: 1000 });
  const phoneA = new SipPhone(mediaA, { user: 'agent' });
  const phoneB = new SipPhone(mediaB, { user: 'customer' });
  const busyPhone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'busy', autoAnswer: false });
  const phoneC = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'supervisor' });
  let ringerPort = 0;
  /**
   * The INVITE transactions a phone received (one per CSeq): a retransmission of an INVITE the phone answered late
   * (Timer A, when this process was slow to answer) is the same INVITE, not a re-INVITE.
   */
  const invitesTo = (phone: SipPhone): SipPhone['received'] => {
    const seen = new Set<string>();
    return phone.received.filter((m) => {
      if (m.method !== 'INVITE') return false;
      const cseq = `${m.message.headers.get('call-id')?.[0]} ${m.message.headers.get('cseq')?.[0]}`;
      if (seen.has(cseq)) return false;
      seen.add(cseq);
      return true;
    });
  };

  const api = async (port: number, method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; location: string | null }> => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, {
      method,
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown>, location: res.headers.get('location') };
  };

  before(async () => {
    const a = `127.0.0.1:${await phoneA.start()}`;
    const b = `127.0.0.1:${await phoneB.start()}`;
    const busy = `127.0.0.1:${await busyPhone.start()}`;
    const c = `127.0.0.1:${await phoneC.start()}`;
    ringerPort = await freePort();
    const ringer = `127.0.0.1:${ringerPort}`;
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-api-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local', users: [{ user: 'alice', password: 'alice-secret-1' }],
      trunks: [
        { name: 'desk', address: a, transport: 'udp', acceptFrom: [a] }, { name: 'pstn', address: b, transport: 'udp', acceptFrom: [b] },
        { name: 'busy', address: busy, transport: 'udp', acceptFrom: [busy] }, { name: 'ringer', address: ringer, transport: 'udp', acceptFrom: [ringer] },
        { name: 'third', address: c, transport: 'udp', acceptFrom: [c] },
      ],
      routes: [
        { match: '8(\\d+)', to: 'trunk:desk', rewrite: '$1' }, { match: '9(\\d+)', to: 'trunk:pstn', rewrite: '$1' },
        { match: '6(\\d+)', to: 'trunk:busy', rewrite: '$1' }, { match: '7(\\d+)', to: 'trunk:ringer', rewrite: '$1' },
        { match: '5(\\d+)', to: 'trunk:third', rewrite: '$1' },
      ],
    }));
    stack = await startStack({ redisUrl: 'redis://127.0.0.1:6379', secondGateway: true, env: { FERRY_MEDIA_FILES_DIR: path.join(dir, 'media') }, partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
  });

  after(async () => {
    await phoneA.close();
    await phoneB.close();
    await busyPhone.close();
    await phoneC.close();
    await stack?.stop();
    await removeTestKeys(new Redis('redis://127.0.0.1:6379', { lazyConnect: false }), stack?.redisPrefix ?? 'ferry-test-none:');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('A answers, then B; media both ways; hold/resume/dtmf at B; other gateway 409; DELETE ends both', async () => {
    const streamed: CallEvent[] = [];
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const w = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/api/events`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
      w.on('message', (m) => streamed.push(JSON.parse(String(m)) as CallEvent));
      w.once('open', () => resolve(w));
      w.once('error', reject);
    });
    const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: '9200', from: '5550100', ringTimeoutMs: 10_000, record: true, tags: { crm: 'ticket-42' } });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    const id = made.json.id as string;
    assert.equal(made.location, `/api/calls/${id}`);
    const answered = await waitFor(async () => {
      const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
      return r.state === 'answered' ? r : undefined;
    }, 15_000, 50, 'the originated call answered');
    assert.equal(answered.origin, 'api');
    assert.equal(answered.record, true);
    assert.deepEqual(answered.tags, { crm: 'ticket-42' });
    const events = answered.timeline.map((e) => e.event);
    assert.ok(events.indexOf('a-answered') < events.indexOf('answered'), events.join(','));
    // A was rung first and shown B's number; B was shown the caller id asked for
    const inviteA = phoneA.received.find((m) => m.method === 'INVITE')!;
    const inviteB = phoneB.received.find((m) => m.method === 'INVITE')!;
    assert.ok(inviteA.at <= inviteB.at);
    assert.match(inviteA.message.headers.get('from')![0]!, /sip:9200@/);
    assert.match(inviteB.message.headers.get('from')![0]!, /sip:5550100@/);
    await waitFor(async () => (await phoneA.media.stats()).rtpReceived > 25 && (await phoneB.media.stats()).rtpReceived > 25, 10_000, 50, 'RTP at both phones');

    // hold: B gets a=sendonly (answers recvonly); resume: a=sendrecv
    const reinvitesBefore = invitesTo(phoneB).length;
    const held = await api(stack.httpPort, 'POST', `/api/calls/${id}/hold`, { party: 'callee' });
    assert.equal(held.status, 200, JSON.stringify(held.json));
    const reinvites = invitesTo(phoneB);
    assert.equal(reinvites.length, reinvitesBefore + 1);
    assert.match(reinvites.at(-1)!.message.body, /a=sendonly/);
    assert.equal((held.json.directions as Record<string, string>).callee, 'recvonly');
    assert.equal(invitesTo(phoneA).length, 1, 'A was not re-INVITEd (party: callee)');
    const resumed = await api(stack.httpPort, 'POST', `/api/calls/${id}/resume`, {});
    assert.equal(resumed.status, 200, JSON.stringify(resumed.json));
    assert.match(phoneB.received.filter((m) => m.method === 'INVITE').at(-1)!.message.body, /a=sendrecv/);
    assert.match(phoneA.received.filter((m) => m.method === 'INVITE').at(-1)!.message.body, /a=sendrecv/, 'both resumed (party defaults to both)');

    // DTMF to B in RTP (RFC 4733 from B's media endpoint, ferry media's sendDtmf): B counts the events and decodes the digits
    const dtmf = await api(stack.httpPort, 'POST', `/api/calls/${id}/dtmf`, { digits: '5#', party: 'callee' });
    assert.equal(dtmf.status, 200, JSON.stringify(dtmf.json));
    assert.equal(dtmf.json.method, 'rfc4733');
    assert.equal(dtmf.json.sent, 2);
    const eventsOf = (phone: RtpPhone) => {
      const byTs = new Map<number, ReceivedTelephoneEvent[]>();
      for (const p of phone.telephoneEvents()) byTs.set(p.ts, [...(byTs.get(p.ts) ?? []), p]);
      return [...byTs.values()];
    };
    const complete = () => eventsOf(mediaB).filter((e) => e.filter((p) => p.end).length === 3);
    await waitFor(async () => complete().length >= 2 || undefined, 10_000, 20, 'two complete RFC 4733 events at B');
    const digitOf = (code: number) => '0123456789*#ABCD'[code]!;
    const eventsAtB = eventsOf(mediaB);
    assert.equal(eventsAtB.length, 2, 'two events');
    assert.equal(eventsAtB.map((e) => digitOf(e[0]!.event)).join(''), '5#');
    for (const e of eventsAtB) {
      assert.ok(e.every((p) => p.event === e[0]!.event), 'one digit per event');
      assert.equal(e[0]!.marker, true, 'marker on the first packet');
      assert.deepEqual(e.map((p) => p.duration), [160, 320, 480, 640, 800, 960, 1120, 1280, 1280, 1280], 'durations of a 160 ms digit');
      assert.deepEqual(e.map((p) => p.end), [false, false, false, false, false, false, false, true, true, true], 'end bit on the last three');
      assert.equal(new Set(e.map((p) => p.ssrc)).size, 1);
    }
    assert.equal(phoneB.received.filter((m) => m.method === 'INFO').length, 0, 'no SIP INFO: the media server has sendDtmf');
    assert.equal(mediaA.telephoneEvents().length, 0, 'nothing to A (party: callee) while B got its events');

    // the other gateway does not drive this call: 409 naming the owner, and the call is untouched
    const elsewhere = await api(stack.httpPort2!, 'DELETE', `/api/calls/${id}`);
    assert.equal(elsewhere.status, 409);
    assert.equal(elsewhere.json.owner, answered.owner);
    assert.equal((await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).state, 'answered');

    const hungUp = await api(stack.httpPort, 'DELETE', `/api/calls/${id}`);
    assert.equal(hungUp.status, 200, JSON.stringify(hungUp.json));
    assert.equal(hungUp.json.reason, 'api-hangup');
    assert.ok(phoneA.received.some((m) => m.method === 'BYE'), 'A got BYE');
    assert.ok(phoneB.received.some((m) => m.method === 'BYE'), 'B got BYE');
    const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    assert.equal(ended.state, 'ended');
    assert.equal(ended.endedBy, 'gateway');
    assert.deepEqual(await getJson<{ pipelines: number }>(stack.mediaPort, '/stats').then((s) => s.pipelines), 0);
    assert.equal((await api(stack.httpPort, 'DELETE', `/api/calls/${id}`)).status, 409, 'an ended call cannot be hung up again');
    // every event of the call carries its tags; hold/resume by the API and the end reason are in them
    await waitFor(() => streamed.some((e) => e.callId === id && e.type === 'call.ended'), 5000, 25, 'call.ended on /api/events');
    ws.close();
    const mine = streamed.filter((e) => e.callId === id);
    assert.deepEqual(mine.map((e) => e.type), ['call.ringing', 'call.answered', 'call.held', 'call.resumed', 'call.ended']);
    for (const e of mine) assert.deepEqual(e.tags, { crm: 'ticket-42' }, e.type);
    assert.equal(mine[2]!.data.by, 'api');
    assert.equal(mine[4]!.data.reason, 'api-hangup');
  });

  test('unknown parties: 404 / 409 before anything rings', async () => {
    const none = await api(stack.httpPort, 'POST', '/api/calls', { a: '4000', b: '9200' });
    assert.equal(none.status, 404);
    assert.equal(none.json.field, 'a');
    const unregistered = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: 'alice' });
    assert.equal(unregistered.status, 409);
    assert.equal(unregistered.json.field, 'b');
  });

  const byes = (p: SipPhone): number => p.received.filter((m) => m.method === 'BYE').length;
  const endedRecord = (id: string): Promise<CallRecord> => waitFor(async () => {
    const r = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    return r.state === 'ended' ? r : undefined;
  }, 10_000, 50, 'the call ended');

  test('B is a webphone gone without unregistering: the call ends unavailable, A is sent BYE, the binding is forgotten (control: 409 once it is gone)', async () => {
    const ws = await webphoneRegisters(stack.wsPort, 'alice', 'alice-secret-1');
    const bindings = async (): Promise<number> => (await getJson<{ registrations: unknown[] }>(stack.httpPort, '/api/registrations?user=alice')).registrations.length;
    assert.equal(await bindings(), 1);
    const closed = new Promise((r) => ws.once('close', r));
    ws.terminate();
    await closed;
    const byesBefore = byes(phoneA);
    const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: 'alice' });
    assert.equal(made.status, 201, 'positive control: the binding is still there, so the call is made');
    const ended = await endedRecord(made.json.id as string);
    assert.equal(ended.reason, 'unavailable');
    assert.ok(ended.timeline.some((e) => e.event === 'stale-registration-removed'), JSON.stringify(ended.timeline));
    await waitFor(() => byes(phoneA) === byesBefore + 1, 3000, 25, 'BYE at A');
    assert.equal(await bindings(), 0, 'the binding ferry sip could not send to is forgotten');
    const again = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: 'alice' });
    assert.equal(again.status, 409, 'the next call is refused before anything rings');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
  });


  test('B busy: the call ends busy and A is sent BYE', async () => {
    const byesBefore = byes(phoneA);
    const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: '6300' });
    assert.equal(made.status, 201);
    const ended = await endedRecord(made.json.id as string);
    assert.equal(ended.reason, 'busy');
    assert.equal(ended.endedBy, 'callee');
    assert.ok(ended.timeline.some((e) => e.event === 'a-answered'), 'A had answered');
    await waitFor(() => byes(phoneA) === byesBefore + 1, 3000, 25, 'BYE at A');
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
  });

  test('DELETE while B rings: A gets BYE, B gets CANCEL', async () => {
    const sipp = await startSipp({ scenario: 'gateway-uas-ring.xml', localPort: ringerPort, mediaPort: await sippMediaPort(), timeoutS: 30 });
    try {
      await sipp.ready();
      const byesBefore = byes(phoneA);
      const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: '7300' });
      assert.equal(made.status, 201);
      const id = made.json.id as string;
      await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).timeline.some((e) => e.event === 'callee-ringing'), 10_000, 25, 'B rings');
      const del = await api(stack.httpPort, 'DELETE', `/api/calls/${id}`);
      assert.equal(del.status, 200);
      assert.equal(del.json.reason, 'api-hangup');
      assert.equal(byes(phoneA), byesBefore + 1, 'A was sent BYE before the DELETE answered');
      const r = await sipp.done;
      assert.equal(r.exitCode, 0, describeSipp(r));
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
    } finally {
      await sipp.stop().catch(() => undefined);
    }
  });

  test('ringTimeoutMs: B rings past it, the call ends no-answer, B gets CANCEL and A BYE', async () => {
    const sipp = await startSipp({ scenario: 'gateway-uas-ring.xml', localPort: ringerPort, mediaPort: await sippMediaPort(), timeoutS: 30 });
    try {
      await sipp.ready();
      const byesBefore = byes(phoneA);
      const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: '7300', ringTimeoutMs: 1000 });
      assert.equal(made.status, 201);
      const ended = await endedRecord(made.json.id as string);
      assert.equal(ended.reason, 'no-answer');
      assert.equal(ended.endedBy, 'callee');
      const ringAt = ended.timeline.find((e) => e.event === 'callee-ringing')!.t;
      const giveUpAt = ended.timeline.find((e) => e.event === 'no-answer')!.t;
      assert.ok(giveUpAt - ringAt >= 900 && giveUpAt - ringAt < 3000, `gave up ${giveUpAt - ringAt} ms after B rang`);
      assert.equal(byes(phoneA), byesBefore + 1, 'A was sent BYE');
      const r = await sipp.done;
      assert.equal(r.exitCode, 0, describeSipp(r));
    } finally {
      await sipp.stop().catch(() => undefined);
    }
  });

  test('blind transfer by API: A stays and talks to C, B is released', async () => {
    const byesB = byes(phoneB);
    const made = await api(stack.httpPort, 'POST', '/api/calls', { a: '8100', b: '9200' });
    assert.equal(made.status, 201);
    const id = made.json.id as string;
    await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).state === 'answered', 10_000, 50, 'answered');
    const moved = await api(stack.httpPort, 'POST', `/api/calls/${id}/transfer`, { target: '5400', keep: 'caller' });
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
    assert.equal(moved.json.party, 'third');
    await waitFor(() => byes(phoneB) === byesB + 1, 5000, 25, 'BYE at B');
    const before = { a: (await phoneA.media.stats()).rtpReceived, c: (await phoneC.media.stats()).rtpReceived };
    await waitFor(async () => (await phoneA.media.stats()).rtpReceived > before.a + 25 && (await phoneC.media.stats()).rtpReceived > before.c + 25, 10_000, 50, 'RTP between A and C').catch(async (err) => {
      const [a, c] = [await phoneA.media.stats(), await phoneC.media.stats()];
      const timeline = (await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`);
      throw new Error(`${(err as Error).message}; before ${JSON.stringify(before)}, A received ${a.rtpReceived} sent ${a.rtpSent}, C received ${c.rtpReceived} sent ${c.rtpSent}; timeline ${timeline.join(', ')}`);
    });
    const record = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    assert.equal(record.state, 'answered');
    assert.equal(record.callee.party, 'third');
    assert.equal((await api(stack.httpPort, 'DELETE', `/api/calls/${id}`)).status, 200);
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 3000, 25, 'pipeline released');
  });
});
