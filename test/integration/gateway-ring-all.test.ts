import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { waitFor } from '../helpers/stack';
import { requestsTo, tabContact, vanishedTabs } from '../helpers/raw-webphone-registration';
import { count, events, hears, reasonOf, requests, tabRings, ringAllEnv, UserCallWorld } from '../helpers/user-call-world';

/**
 * FERRY_RING=all (docs/gateway.md, "A call", step 2): a call to a user with several registrations
 * rings them all at once; the first to answer gets the call, every other one is CANCELled with
 * `Reason: SIP;cause=200;text="Call completed elsewhere"`; a late 200 from one of them is ACKed and BYEd;
 * when every one fails the caller gets the best response (486 over 480); a 6xx ends the search; the
 * caller's CANCEL and the no-answer time cancel every registration. Through the real three ferry
 * processes: the user's desk phones are scripted UDP SIP/RTP phones that ring until the test answers (or
 * refuses) for them, webphone tabs are raw SIP WebSockets; afterwards ferry media has no pipeline, element
 * or bound port left and ferry sip no dialog.
 */
const PASSWORD = 'ring-all-secret';
const NO_ANSWER_MS = 5000;
const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';
const USERS = ['amy', 'ben', 'cat', 'dan', 'eve', 'fay', 'gus', 'hal', 'ivy'] as const;
type User = (typeof USERS)[number];

describe('FERRY_RING=all: a call rings every registration of the user at once; the first to answer gets it', { timeout: 180_000 }, () => {
  /** the trunk phone that calls the users */
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  /** party A of an API call, and the callee of a call to transfer (a trunk phone that answers at once) */
  const partyA = new SipPhone(new RtpPhone(), { user: 'a' });
  /** each user's two desk phones (UDP, digest): [older, newer]; they ring until the test decides */
  const desks = Object.fromEntries(USERS.map((u) => [u, [0, 1].map(() => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, SipPhone[]>;
  const world = new UserCallWorld({
    dirPrefix: 'ferry-ringall-',
    users: USERS,
    password: PASSWORD,
    trunks: { caller, a: partyA },
    desks: Object.values(desks).flat(),
    routes: [{ match: '8(\\d+)', to: 'trunk:a', rewrite: '$1' }, { match: '.*', to: 'user' }],
    partEnv: ringAllEnv(NO_ANSWER_MS),
  });
  const { via, mediaStats, knownCalls, record, contacts, newCall, inState, ended, mediaHolds, backToZero, hangUp } = world;

  before(() => world.start());
  after(() => world.close());

  /** both desk phones of `user` register, the older first; resolves with their Contacts [older, newer] */
  async function bothRegister(user: User): Promise<string[]> {
    for (const desk of desks[user]) await desk.register(via(), PASSWORD);
    const all = desks[user].map((d) => d.contact);
    assert.deepEqual((await contacts(user)).sort(), [...all].sort(), 'two registrations before the call');
    return all;
  }

  /** the caller dials `user`; resolves once both desk phones ring */
  async function dialBoth(user: User, since: number): Promise<{ result: Promise<{ status?: number } | undefined>; id: Promise<string> }> {
    const known = await knownCalls();
    const result = world.dials(caller, `sip:${user}@ferry.local`);
    await waitFor(() => desks[user].every((d) => d.ringing), 5000, 10, `both of ${user}'s desk phones ring`);
    for (const desk of desks[user]) assert.equal(requests(desk, 'INVITE', since).length, 1, 'one INVITE each');
    return { result, id: newCall(known).then((r) => r.id) };
  }

  test('two desk phones ring at once; the older answers: the call is its, RTP flows both ways; the newer gets CANCEL with Reason "Call completed elsewhere" and stops ringing; its hold reaches the caller; the hang-up leaves nothing', { timeout: 30_000 }, async () => {
    const [older, newer] = await bothRegister('amy');
    const since = Date.now();
    const { result, id } = await dialBoth('amy', since);
    const [olderDesk, newerDesk] = desks.amy as [SipPhone, SipPhone];
    const ringing = await inState(await id, 'ringing', 'the call rings');
    assert.equal(count(ringing, 'fork'), 2, events(ringing));
    await olderDesk.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    const cancel = await newerDesk.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    await newerDesk.waitForRequest('ACK', 5000, since); // its 487, ACKed
    assert.ok(!newerDesk.ringing && !newerDesk.inCall, 'the newer desk phone stopped ringing');
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the older desk phone at the caller');
    await hears(olderDesk, answeredAt, 'RTP from the caller at the older desk phone');
    assert.equal(await newerDesk.media.rtpReceivedBetween(since, Date.now()), 0, 'nothing reached the newer desk phone');
    const r = await record(await id);
    assert.equal(r.state, 'answered', events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [older, 'rtp', 'amy']);
    assert.ok(r.timeline.some((e) => e.event === 'fork-cancelled' && e.detail?.startsWith(newer!)), events(r));
    assert.equal(count(r, 'fork-ringing'), 2, events(r));
    // the endpoint the call was built with (the newest registration's) made way for the older phone's
    assert.equal(count(r, 'callee-endpoint-replaced'), 1, events(r));
    await mediaHolds(1, 2, 'one pipeline with the two parties\' endpoints: the losing fork\'s is released');
    // the answering registration's dialog is the callee leg as for any call: its hold reaches the caller
    const heldAt = Date.now();
    await olderDesk.reinvite('sendonly');
    const hold = await caller.waitForRequest('INVITE', 5000, heldAt);
    assert.match(hold.message.body, /a=sendonly/);
    await olderDesk.reinvite('sendrecv');
    await hangUp(olderDesk);
    await backToZero();
    const done = await ended(r.id);
    assert.equal(done.reason, 'sip-bye');
    assert.ok(done.timeline.some((e) => e.event === 'hold'), events(done));
  });

  test('a late 200 from the registration that lost is ACKed and BYEd; the call stays with the one that answered first', { timeout: 30_000 }, async () => {
    const [older, newer] = await bothRegister('ben');
    const [olderDesk, newerDesk] = desks.ben as [SipPhone, SipPhone];
    newerDesk.ignoreCancel = true;
    const since = Date.now();
    const { result, id } = await dialBoth('ben', since);
    await olderDesk.answerRinging();
    assert.equal(await result, undefined);
    const cancel = await newerDesk.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    assert.ok(newerDesk.ringing, 'the newer phone ignored the CANCEL');
    const lateAt = Date.now();
    await newerDesk.answerRinging();
    await newerDesk.waitForRequest('ACK', 5000, lateAt);
    const bye = await newerDesk.waitForRequest('BYE', 5000, lateAt);
    assert.equal(reasonOf(bye), COMPLETED_ELSEWHERE);
    await newerDesk.media.stopMedia();
    const r = await waitFor(async () => {
      const x = await record(await id);
      return x.timeline.some((e) => e.event === 'fork-late-answer') ? x : undefined;
    }, 5000, 25, 'the late answer noted');
    assert.equal(r.state, 'answered', events(r));
    assert.equal(r.callee.uri, older, events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-late-answer' && e.detail?.startsWith(newer!)), events(r));
    const after = Date.now();
    await hears(caller, after, 'RTP from the older desk phone at the caller, after the late answer');
    await hears(olderDesk, after, 'RTP from the caller at the older desk phone, after the late answer');
    assert.deepEqual(await mediaStats().then((s) => [s.pipelines, s.elements]), [1, 2]);
    await hangUp(olderDesk);
    await backToZero();
    newerDesk.ignoreCancel = false;
  });

  test('every registration fails: the caller gets the best response (486 from one over 503 from the other, which is kept), reason busy', { timeout: 30_000 }, async () => {
    const [older, newer] = await bothRegister('cat');
    const [olderDesk, newerDesk] = desks.cat as [SipPhone, SipPhone];
    const since = Date.now();
    const { result, id } = await dialBoth('cat', since);
    newerDesk.rejectRinging(503, 'Service Unavailable');
    // control: one failure alone does not answer the caller; the other still rings
    const r0 = await waitFor(async () => {
      const x = await record(await id);
      return x.timeline.some((e) => e.event === 'fork-failed') ? x : undefined;
    }, 5000, 25, 'the first failure noted');
    assert.notEqual(r0.state, 'ended', events(r0));
    assert.ok(olderDesk.ringing);
    olderDesk.rejectRinging(486, 'Busy Here');
    assert.equal((await result)?.status, 486);
    const r = await ended(await id);
    assert.equal(r.reason, 'busy', events(r));
    assert.equal(count(r, 'fork-failed'), 2, events(r));
    assert.ok(r.timeline.some((e) => e.event === 'registration-unavailable' && e.detail === `503 ${newer}`), events(r));
    assert.deepEqual((await contacts('cat')).sort(), [older, newer].sort(), 'both registrations are kept');
    assert.equal(requests(olderDesk, 'CANCEL', since).length + requests(newerDesk, 'CANCEL', since).length, 0, 'nothing to cancel');
    await backToZero();
  });

  test('a 603 from one registration ends the search: the other is cancelled (not "completed elsewhere"), the caller gets 603 at once, reason declined', { timeout: 30_000 }, async () => {
    await bothRegister('dan');
    const [olderDesk, newerDesk] = desks.dan as [SipPhone, SipPhone];
    olderDesk.ignoreCancel = true; // it answers the CANCEL but not the INVITE: the caller must not wait for it
    const since = Date.now();
    const { result, id } = await dialBoth('dan', since);
    newerDesk.rejectRinging(603, 'Decline');
    const cancel = await olderDesk.waitForRequest('CANCEL', 5000, since);
    assert.notEqual(reasonOf(cancel), COMPLETED_ELSEWHERE);
    assert.equal((await result)?.status, 603, 'the caller has its 603 while the other phone still holds its INVITE');
    assert.ok(olderDesk.ringing);
    olderDesk.rejectRinging(487, 'Request Terminated');
    olderDesk.ignoreCancel = false;
    const r = await ended(await id);
    assert.equal(r.reason, 'declined', events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-global-failure'), events(r));
    await backToZero();
  });

  test('the caller\'s CANCEL cancels every ringing registration: 487 to the caller, CANCEL at both, reason sip-cancel', { timeout: 30_000 }, async () => {
    await bothRegister('eve');
    const since = Date.now();
    const { result, id } = await dialBoth('eve', since);
    assert.equal(await caller.cancel(), 200);
    assert.equal((await result)?.status, 487);
    for (const desk of desks.eve) {
      await desk.waitForRequest('CANCEL', 5000, since);
      assert.ok(!desk.ringing);
    }
    const r = await ended(await id);
    assert.equal(r.reason, 'sip-cancel', events(r));
    assert.equal(count(r, 'fork-cancelled'), 2, events(r));
    await backToZero();
  });

  test('nobody answers: after FERRY_NO_ANSWER_MS every registration is cancelled and the caller gets 480, reason no-answer', { timeout: 30_000 }, async () => {
    await bothRegister('fay');
    const since = Date.now();
    const { result, id } = await dialBoth('fay', since);
    assert.equal((await result)?.status, 480);
    const took = Date.now() - since;
    assert.ok(took >= NO_ANSWER_MS - 500 && took < NO_ANSWER_MS + 3000, `480 after ${took} ms (FERRY_NO_ANSWER_MS ${NO_ANSWER_MS})`);
    // the caller is told first, then every registration is cancelled
    for (const desk of desks.fay) await desk.waitForRequest('CANCEL', 5000, since);
    for (const desk of desks.fay) assert.equal(requests(desk, 'CANCEL', since).length, 1);
    const r = await ended(await id);
    assert.equal(r.reason, 'no-answer', events(r));
    await backToZero();
  });

  test('a dead webphone tab, a live ringing tab and a desk phone: the dead one is forgotten, the tab is cancelled when the desk phone answers, each webphone endpoint is released', { timeout: 30_000 }, async () => {
    const [olderDesk, newerDesk] = desks.gus as [SipPhone, SipPhone];
    await olderDesk.register(via(), PASSWORD);
    const tab = await world.webphoneTab('gus', 'gustab1');
    const invites = requestsTo(tab, 'INVITE');
    const cancels = requestsTo(tab, 'CANCEL');
    tabRings(tab, invites);
    const [dead] = await vanishedTabs(world.stack.wsPort, 'gus', PASSWORD, ['gustab2']);
    assert.equal((await contacts('gus')).length, 3);
    const since = Date.now();
    const known = await knownCalls();
    const result = world.dials(caller, 'sip:gus@ferry.local');
    await waitFor(() => olderDesk.ringing && invites.length === 1, 5000, 10, 'the desk phone and the live tab ring');
    const id = (await newCall(known)).id;
    await waitFor(async () => (await contacts('gus')).length === 2, 5000, 25, 'the dead tab is forgotten while the others ring');
    // three forks: the webphones' two WebRtcEndpoints and the desk phone's RtpEndpoint, with the caller's
    assert.equal((await mediaStats()).elements, 4);
    await olderDesk.answerRinging();
    assert.equal(await result, undefined);
    const cancel = await waitFor(() => cancels[0], 5000, 10, 'the live tab gets CANCEL');
    assert.match(cancel, /^Reason: SIP;cause=200;text="Call completed elsewhere"\r$/m);
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the desk phone at the caller');
    await hears(olderDesk, answeredAt, 'RTP from the caller at the desk phone');
    const r = await record(id);
    assert.deepEqual([r.callee.uri, r.callee.kind], [olderDesk.contact, 'rtp'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'stale-registration-removed' && e.detail === dead), events(r));
    assert.deepEqual((await contacts('gus')).sort(), [olderDesk.contact, tabContact('gustab1')].sort());
    await mediaHolds(1, 2, 'only the two parties\' endpoints are left');
    await hangUp(olderDesk);
    await backToZero();
    assert.equal(requests(newerDesk, 'INVITE', since).length, 0, 'control: the unregistered phone was not rung');
  });

  test('an API call whose party B is a user with two desk phones: A answers, then both of B\'s phones ring; the older answers and hears A, the newer is cancelled "completed elsewhere"', { timeout: 30_000 }, async () => {
    const [older, newer] = await bothRegister('hal');
    const [olderDesk, newerDesk] = desks.hal as [SipPhone, SipPhone];
    const since = Date.now();
    const res = await world.post('/api/calls', { a: '8100', b: 'hal' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => olderDesk.ringing && newerDesk.ringing, 10_000, 10, 'both of B\'s desk phones ring');
    await olderDesk.answerRinging();
    const cancel = await newerDesk.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    const answeredAt = Date.now();
    await hears(partyA, answeredAt, 'RTP from B\'s older desk phone at A');
    await hears(olderDesk, answeredAt, 'RTP from A at B\'s older desk phone');
    const r = await inState(id, 'answered', 'the API call answered');
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [older, 'rtp', 'hal'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-cancelled' && e.detail?.startsWith(newer!)), events(r));
    await mediaHolds(1, 2, 'one pipeline with A\'s and the older desk phone\'s endpoints');
    await hangUp(olderDesk, partyA);
    await backToZero();
  });

  test('a blind transfer to a user with two desk phones rings both; the older answers and the staying caller hears it, the newer is cancelled "completed elsewhere"', { timeout: 30_000 }, async () => {
    const [older, newer] = await bothRegister('ivy');
    const [olderDesk, newerDesk] = desks.ivy as [SipPhone, SipPhone];
    const id = await world.connects('sip:8200@ferry.local', partyA, 'RTP from the caller at the trunk phone');
    const since = Date.now();
    const transfer = world.post(`/api/calls/${id}/transfer`, { target: 'ivy', keep: 'caller' });
    await waitFor(() => olderDesk.ringing && newerDesk.ringing, 10_000, 10, 'both of ivy\'s desk phones ring');
    await olderDesk.answerRinging();
    const res = await transfer;
    assert.equal(res.status, 200, await res.clone().text());
    await partyA.waitForRequest('BYE', 5000, since);
    await partyA.media.stopMedia();
    const cancel = await newerDesk.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    const switched = Date.now();
    await hears(olderDesk, switched, 'RTP from the caller at ivy\'s older desk phone');
    await hears(caller, switched, 'RTP from ivy\'s older desk phone at the caller');
    const r = await record(id);
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [older, 'rtp', 'ivy'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-cancelled' && e.detail?.startsWith(newer!)), events(r));
    await mediaHolds(1, 2, 'the caller\'s and the older desk phone\'s endpoints are left');
    await hangUp(olderDesk);
    await backToZero();
  });
});
