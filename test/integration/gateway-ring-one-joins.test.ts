import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { waitFor } from '../helpers/stack';
import { events, hears, reasonOf, requests, ringAllEnv, UserCallWorld } from '../helpers/user-call-world';

/**
 * FERRY_RING=all (docs/gateway.md, "A call", step 2, "A registration made while ringing") for a call to a
 * user that had ONE registration when the call came: it rings as a set of one, so a device the user
 * registers while it rings rings too, and the outcomes are those of ringing all: the first answer wins, the
 * others are CANCELled "Call completed elsewhere", a device answering after that is ACKed and BYEd, a
 * registration made after the answer rings nothing; and the limits are those of ringing all (the caller
 * source's budget, FERRY_RING_MAX_FORKS_PER_SOURCE=2 here: `ring-all-limited`). Real ferry sip, gateway and
 * ferry media; scripted UDP phones; the same for a blind transfer's target (J4) and an API call's party A (J5)
 * with one registration; afterwards ferry media holds nothing, ferry sip no dialog and the
 * gateway no call.
 */
const PASSWORD = 'ring-one-joins-secret';
const NO_ANSWER_MS = 15_000;
const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';
const USERS = ['ada', 'bea', 'cid', 'dot', 'eve'] as const;
type User = (typeof USERS)[number];
const DESKS: Record<User, number> = { ada: 2, bea: 3, cid: 4, dot: 2, eve: 2 };

describe('FERRY_RING=all: a user\'s only registration rings, and a device registered while it rings joins it', { timeout: 180_000 }, () => {
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  /** the callee of the call a transfer takes out: a trunk phone that answers at once */
  const partyB = new SipPhone(new RtpPhone(), { user: 'b' });
  const desks = Object.fromEntries(USERS.map((u) => [u, Array.from({ length: DESKS[u] }, () => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, SipPhone[]>;
  const base = ringAllEnv(NO_ANSWER_MS)!;
  const world = new UserCallWorld({
    dirPrefix: 'ferry-ringone-',
    users: USERS,
    password: PASSWORD,
    trunks: { caller, b: partyB },
    desks: Object.values(desks).flat(),
    routes: [{ match: '8(\\d+)', to: 'trunk:b', rewrite: '$1' }, { match: '.*', to: 'user' }],
    partEnv: { ...base, gateway: { ...base.gateway, FERRY_RING_MAX_FORKS_PER_SOURCE: '2' } },
  });
  const { via, knownCalls, record, contacts, newCall, inState, ended, mediaHolds, backToZero, hangUp } = world;

  before(() => world.start());
  after(() => world.close());

  /** the caller dials `user`; resolves once `ringing` rings */
  async function dial(user: User, ringing: SipPhone): Promise<{ result: Promise<{ status?: number } | undefined>; id: string }> {
    const known = await knownCalls();
    const result = world.dials(caller, `sip:${user}@ferry.local`);
    await waitFor(() => ringing.ringing, 5000, 10, `${user}'s only desk phone rings`);
    return { result, id: (await newCall(known)).id };
  }

  /** `desk` registers during the ring: resolves with the record once it rings and the record says it joined */
  async function joins(id: string, desk: SipPhone): Promise<void> {
    await desk.register(via(), PASSWORD);
    await waitFor(() => desk.ringing, 5000, 10, `the device registered during the ring rings (${desk.contact})`);
    const r = await record(id);
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `${desk.contact} (rtp): registered while ringing`), events(r));
  }

  test('J1: a user with one registration: a second device registered while the first rings rings too, answers and is the callee; the first is CANCELled "Call completed elsewhere"', { timeout: 60_000 }, async () => {
    const [first, second] = desks.ada as [SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    assert.deepEqual(await contacts('ada'), [first.contact], 'one registration when the call comes');
    const since = Date.now();
    const { result, id } = await dial('ada', first);
    const r0 = await record(id);
    assert.ok(r0.timeline.some((e) => e.event === 'ring-all' && e.detail?.startsWith('1 registration')), events(r0));
    assert.equal(requests(second, 'INVITE', since).length, 0, 'the second device is not registered yet');
    await joins(id, second);
    for (const desk of [first, second]) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE each (${desk.contact})`);
    await second.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    const cancel = await first.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    assert.ok(!first.ringing);
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the device that joined at the caller');
    await hears(second, answeredAt, 'RTP from the caller at the device that joined');
    const r = await record(id);
    assert.equal(r.state, 'answered', events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [second.contact, 'rtp', 'ada'], events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 1, events(r));
    await mediaHolds(1, 2, 'the two parties\' endpoints are left: the first device\'s is released');
    await hangUp(second);
    await backToZero();
    assert.equal((await ended(id)).reason, 'sip-bye');
  });

  test('J2: the first device answers first: the one that joined is CANCELled, its late 200 ACKed and BYEd, the call stays with the first; a device registered after the answer gets no INVITE (control: the one registered during the ring did)', { timeout: 60_000 }, async () => {
    const [first, joined, afterwards] = desks.bea as [SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id } = await dial('bea', first);
    joined.ignoreCancel = true;
    try {
      await joins(id, joined);
      await first.answerRinging();
      assert.equal(await result, undefined, 'the caller is answered');
      const cancel = await joined.waitForRequest('CANCEL', 5000, since);
      assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
      assert.ok(joined.ringing, 'the device that joined ignored the CANCEL');
      const lateAt = Date.now();
      await joined.answerRinging();
      await joined.waitForRequest('ACK', 5000, lateAt);
      const bye = await joined.waitForRequest('BYE', 5000, lateAt);
      assert.equal(reasonOf(bye), COMPLETED_ELSEWHERE);
      await joined.media.stopMedia();
    } finally {
      joined.ignoreCancel = false;
    }
    const r = await waitFor(async () => {
      const x = await record(id);
      return x.timeline.some((e) => e.event === 'fork-late-answer') ? x : undefined;
    }, 5000, 25, 'the late answer noted');
    assert.deepEqual([r.state, r.callee.uri], ['answered', first.contact], events(r));
    // a registration after the answer: the call is an ordinary call now
    await afterwards.register(via(), PASSWORD);
    const at = Date.now();
    await hears(caller, at, 'RTP from the first device at the caller, after the late answer and the new registration');
    await hears(first, at, 'RTP from the caller at the first device, after the late answer and the new registration');
    await hangUp(first);
    await backToZero();
    const done = await ended(id);
    assert.equal(done.reason, 'sip-bye', events(done));
    assert.equal(requests(afterwards, 'INVITE', since).length, 0, 'the device registered after the answer never got an INVITE');
    assert.ok(!done.timeline.some((e) => e.detail?.includes(afterwards.contact)), events(done));
    assert.equal(done.timeline.filter((e) => e.event === 'fork-joined').length, 1, events(done));
  });

  test('J3: the caller source\'s budget (2 beyond the first): two devices registered while the only one rings join, a third is not rung (ring-all-limited, per-source); the caller\'s CANCEL reaches the three that rang', { timeout: 60_000 }, async () => {
    const [first, a, b, c] = desks.cid as [SipPhone, SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id } = await dial('cid', first);
    // control: within the budget they join
    await joins(id, a);
    await joins(id, b);
    await c.register(via(), PASSWORD);
    const limited = await waitFor(async () => {
      const r = await record(id);
      return r.timeline.some((e) => e.event === 'ring-all-limited') ? r : undefined;
    }, 5000, 25, 'the third registration turned away');
    assert.ok(limited.timeline.some((e) => e.event === 'ring-all-limited' && e.detail === `${c.contact} registered while ringing: not rung (per-source limit)`), events(limited));
    assert.equal(await caller.cancel(), 200);
    assert.equal((await result)?.status, 487);
    for (const desk of [first, a, b]) await desk.waitForRequest('CANCEL', 5000, since);
    const r = await ended(id);
    assert.equal(r.reason, 'sip-cancel', events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 3, events(r));
    assert.equal(requests(c, 'INVITE', since).length, 0, 'the registration past the budget never got an INVITE');
    await backToZero();
  });

  test('J4: a blind transfer to a user with one registration: a device registered while it rings joins, answers and is the transfer\'s new leg; the first is CANCELled "Call completed elsewhere"', { timeout: 60_000 }, async () => {
    const [first, second] = desks.dot as [SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    const id = await world.connects('sip:8200@ferry.local', partyB, 'RTP from the caller at the trunk phone');
    const since = Date.now();
    const transfer = world.post(`/api/calls/${id}/transfer`, { target: 'dot', keep: 'caller' });
    await waitFor(() => first.ringing, 10_000, 10, 'dot\'s only device rings');
    await second.register(via(), PASSWORD);
    await waitFor(() => second.ringing, 5000, 10, 'the device registered during the transfer\'s ring rings');
    await second.answerRinging();
    const res = await transfer;
    assert.equal(res.status, 200, await res.clone().text());
    await partyB.waitForRequest('BYE', 5000, since);
    await partyB.media.stopMedia();
    assert.equal(reasonOf(await first.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    const switched = Date.now();
    await hears(second, switched, 'RTP from the caller at the device that joined');
    await hears(caller, switched, 'RTP from the device that joined at the caller');
    const r = await record(id);
    assert.deepEqual([r.callee.uri, r.callee.party], [second.contact, 'dot'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `transfer: ${second.contact} (rtp): registered while ringing`), events(r));
    for (const desk of desks.dot) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE at ${desk.contact}`);
    await hangUp(second);
    await backToZero();
  });

  test('J5: an API call whose party A has one registration: a device registered while it rings joins and answers as A (the first CANCELled); then B rings and the two hear each other', { timeout: 60_000 }, async () => {
    const [first, second] = desks.eve as [SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    const since = Date.now();
    const res = await world.post('/api/calls', { a: 'eve', b: '8100' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => first.ringing, 10_000, 10, 'A\'s only device rings');
    await second.register(via(), PASSWORD);
    await waitFor(() => second.ringing, 5000, 10, 'the device registered during A\'s ring rings');
    await second.answerRinging();
    assert.equal(reasonOf(await first.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    await partyB.waitForRequest('INVITE', 10_000, since);
    const answeredAt = Date.now();
    await hears(second, answeredAt, 'RTP from B at the device that joined');
    await hears(partyB, answeredAt, 'RTP from the device that joined at B');
    const r = await inState(id, 'answered', 'the API call answered');
    assert.deepEqual([r.caller.uri, r.caller.party], [second.contact, 'eve'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `caller: ${second.contact} (rtp): registered while ringing`), events(r));
    await hangUp(partyB, second);
    await backToZero();
  });
});
