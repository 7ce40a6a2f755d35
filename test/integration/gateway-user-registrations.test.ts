import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type WebSocket from 'ws';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { waitFor } from '../helpers/stack';
import { answerOver, requestsTo, tabContact, vanishedTabs } from '../helpers/raw-webphone-registration';
import { events, hears, tabRings, UserCallWorld } from '../helpers/user-call-world';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A call to a user reaches the user at any registration that can still be reached (docs/gateway.md, "A
 * call", step 2): with FERRY_RING=newest (set here) the user's registrations are tried one at a time, newest first
 * (FERRY_RING=all, ringing them at once, is test/integration/gateway-ring-all.test.ts); a webphone registration
 * whose WebSocket closed without unregistering (ferry sip's 410) is forgotten and the next one tried at
 * once, within the same call. Through the real three ferry processes: webphone registrations are raw SIP
 * WebSockets (closed without unregistering, or scripted), the desk phones and the trunk phones are
 * scripted SIP/RTP phones whose packets are counted.
 */
const PASSWORD = 'reg-search-secret';
const USERS = ['carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivy'] as const;
type User = (typeof USERS)[number];

describe('a call to a user tries its registrations one at a time, newest first, skipping dead ones', { timeout: 120_000 }, () => {
  /** trunk phones: the caller, party A of API calls (8xxx), the callee of calls to transfer (7xxx) */
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  const a = new SipPhone(new RtpPhone(), { user: 'a' });
  const b = new SipPhone(new RtpPhone(), { user: 'b' });
  /**
   * each user's desk phone (registered over UDP with digest), where a test needs a live registration; on
   * 127.0.0.2, another address than the webphones' connections (ferry sip binds a Contact naming the
   * address a REGISTER's connection comes from to that connection)
   */
  const desks = Object.fromEntries(USERS.map((u) => [u, new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2' })])) as Record<User, SipPhone>;
  /** numbers every tab's Contact (each tab is a registration of its own) */
  let tabs = 0;

  const world = new UserCallWorld({
    dirPrefix: 'ferry-regsearch-',
    users: USERS,
    password: PASSWORD,
    trunks: { caller, a, b },
    desks: Object.values(desks),
    routes: [{ match: '7(\\d+)', to: 'trunk:b', rewrite: '$1' }, { match: '8(\\d+)', to: 'trunk:a', rewrite: '$1' }, { match: '.*', to: 'user' }],
    partEnv: { gateway: { FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '8000', FERRY_RING: 'newest' } },
  });
  const { via, mediaStats, knownCalls, record, contacts, newCall, ended, hangUp } = world;

  before(() => world.start());
  after(() => world.close());

  /** the user's desk phone registers (the oldest registration) */
  async function deskRegisters(user: User): Promise<string> {
    await desks[user].register(via(), PASSWORD);
    return desks[user].contact;
  }

  /** a live webphone tab of `user` (the newest registration); returns its socket and Contact */
  async function liveTab(user: User): Promise<{ ws: WebSocket; contact: string }> {
    const tab = `${user}tab${++tabs}`;
    const ws = await world.webphoneTab(user, tab);
    return { ws, contact: tabContact(tab) };
  }

  /** `n` webphone tabs of `user` that register (newest last) and vanish without unregistering */
  const staleTabs = (user: User, n: number): Promise<string[]> =>
    vanishedTabs(world.stack.wsPort, user, PASSWORD, Array.from({ length: n }, () => `${user}tab${++tabs}`));

  async function hangUpAndZero(phone: SipPhone, other: SipPhone): Promise<void> {
    await hangUp(other, phone);
    await waitFor(async () => {
      const s = await mediaStats();
      return s.pipelines === 0 && s.elements === 0;
    }, 5000, 25, 'ferry media back to no pipeline and no element');
  }

  /** the Contacts forgotten as stale, in the order the call tried them */
  const forgotten = (r: CallRecord): string[] => r.timeline.filter((e) => e.event === 'stale-registration-removed').map((e) => e.detail ?? '');

  test('three webphone tabs gone without unregistering and an older desk phone: one call reaches the desk phone at once, the dead ones are forgotten, media flows, the hang-up releases everything', { timeout: 40_000 }, async () => {
    const desk = await deskRegisters('carol');
    const stale = await staleTabs('carol', 3);
    assert.deepEqual((await contacts('carol')).sort(), [desk, ...stale].sort(), 'four registrations before the call');
    const known = await knownCalls();
    const dialled = Date.now();
    await caller.call('sip:carol@ferry.local', via());
    const answeredIn = Date.now() - dialled;
    assert.ok(answeredIn < 3000, `answered after ${answeredIn} ms`);
    await hears(caller, dialled, 'RTP from the desk phone at the caller');
    await hears(desks.carol, dialled, 'RTP from the caller at the desk phone');
    const r = await newCall(known);
    assert.equal(r.state, 'answered', events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [desk, 'rtp', 'carol']);
    assert.deepEqual(forgotten(r), [...stale].reverse(), `newest first: ${events(r)}`);
    assert.equal(r.timeline.filter((e) => e.event === 'next-registration').length, 3, events(r));
    // the first try was built for a webphone: its endpoint was replaced by the desk phone's kind, once
    assert.equal(r.timeline.filter((e) => e.event === 'callee-endpoint-replaced').length, 1, events(r));
    assert.ok(!r.timeline.some((e) => e.event === 'failed'), events(r));
    assert.deepEqual(await contacts('carol'), [desk], 'only the desk phone is left');
    // one pipeline with the two phones' endpoints: the webphone endpoint of the first tries is gone
    assert.deepEqual(await mediaStats().then((s) => [s.pipelines, s.elements]), [1, 2]);
    await hangUpAndZero(caller, desks.carol);
    const done = await ended(r.id);
    assert.equal(done.reason, 'sip-bye');
  });

  test('control: only dead registrations: the caller gets 480 at once, every one is forgotten, no media is left; the next call is refused by the dial plan', { timeout: 30_000 }, async () => {
    const stale = await staleTabs('dave', 3);
    assert.equal((await contacts('dave')).length, 3);
    const known = await knownCalls();
    const dialled = Date.now();
    const failure = await world.dials(caller, 'sip:dave@ferry.local');
    assert.equal(failure?.status, 480);
    assert.ok(Date.now() - dialled < 3000, `480 after ${Date.now() - dialled} ms`);
    const r = await ended((await newCall(known)).id);
    assert.equal(r.reason, 'unavailable', events(r));
    assert.deepEqual(forgotten(r), [...stale].reverse(), events(r));
    assert.deepEqual(await contacts('dave'), []);
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'pipeline released');
    const next = await world.dials(caller, 'sip:dave@ferry.local');
    assert.equal(next?.status, 480);
  });

  test('a CANCEL during the search: no further registration is INVITEd; control: without it, a 503 from a live tab moves on to the older desk phone and the tab is kept', { timeout: 40_000 }, async () => {
    const desk = await deskRegisters('erin');
    // a live tab (the newest registration) that rings and answers 503 only when the test says so
    const { ws: tab, contact: tabAt } = await liveTab('erin');
    const invites = requestsTo(tab, 'INVITE');
    const cancels = requestsTo(tab, 'CANCEL');
    tabRings(tab);
    const deskInvites = (since: number): number => desks.erin.received.filter((m) => m.method === 'INVITE' && m.at >= since).length;

    // control: the tab rings, then fails 503 (not proof that it is dead): the desk phone is INVITEd and answers
    let since = Date.now();
    const known = await knownCalls();
    const answered = caller.call('sip:erin@ferry.local', via());
    const invite = await waitFor(() => invites[0], 5000, 10, 'the live tab is INVITEd');
    answerOver(tab, invite, '503 Service Unavailable');
    await answered;
    await hears(desks.erin, since, 'RTP from the caller at the desk phone');
    const r = await newCall(known);
    assert.equal(deskInvites(since), 1, events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind], [desk, 'rtp']);
    assert.ok(r.timeline.some((e) => e.event === 'registration-unavailable' && e.detail === `503 ${tabAt}`), events(r));
    assert.deepEqual((await contacts('erin')).sort(), [desk, tabAt].sort(), 'the tab that answered 503 is kept');
    await hangUpAndZero(caller, desks.erin);

    // the CANCEL comes while the tab is being tried; its late 503 must not move the call on
    since = Date.now();
    const known2 = await knownCalls();
    const cancelled = world.dials(caller, 'sip:erin@ferry.local');
    const second = await waitFor(() => invites[1], 5000, 10, 'the live tab is INVITEd again');
    assert.equal(await caller.cancel(), 200);
    assert.equal((await cancelled)?.status, 487);
    await waitFor(() => cancels[0], 5000, 10, 'the CANCEL reached the tab');
    answerOver(tab, second, '503 Service Unavailable');
    // the call ends only once the tab's 503 is in: the desk phone would have been tried before that
    const r2 = await ended((await newCall(known2)).id);
    assert.equal(r2.reason, 'sip-cancel', events(r2));
    assert.ok(!r2.timeline.some((e) => e.event === 'next-registration'), events(r2));
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'pipeline released');
    assert.equal(deskInvites(since), 0, `no INVITE after the CANCEL: ${events(r2)}`);
    assert.equal(invites.length, 2, 'one INVITE per call at the tab');
  });

  test('nobody answers: FERRY_NO_ANSWER_MS counts once for the search; the caller gets 480, the ringing tab is cancelled, no older registration is tried', { timeout: 30_000 }, async () => {
    const desk = await deskRegisters('hank');
    const { ws: tab, contact: tabAt } = await liveTab('hank');
    const invites = requestsTo(tab, 'INVITE');
    tabRings(tab, invites);
    const since = Date.now();
    const known = await knownCalls();
    const failure = await world.dials(caller, 'sip:hank@ferry.local');
    const took = Date.now() - since;
    assert.equal(failure?.status, 480);
    assert.ok(took >= 7500 && took < 11_000, `480 after ${took} ms (FERRY_NO_ANSWER_MS 8000)`);
    const r = await ended((await newCall(known)).id);
    assert.equal(r.reason, 'no-answer', events(r));
    assert.equal(invites.length, 1, 'the tab was INVITEd once');
    assert.equal(desks.hank.received.filter((m) => m.method === 'INVITE' && m.at >= since).length, 0, `the desk phone was not tried: ${events(r)}`);
    assert.ok(!r.timeline.some((e) => e.event === 'next-registration'), events(r));
    assert.deepEqual((await contacts('hank')).sort(), [desk, tabAt].sort(), 'an unanswered tab is kept');
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'pipeline released');
  });

  test('an API call to a user with dead tabs and a desk phone: A is rung, then B reaches the desk phone; both hear each other', { timeout: 40_000 }, async () => {
    const desk = await deskRegisters('frank');
    const stale = await staleTabs('frank', 3);
    const since = Date.now();
    const res = await world.post('/api/calls', { a: '8100', b: 'frank' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await hears(a, since, 'RTP from the desk phone at A');
    await hears(desks.frank, since, 'RTP from A at the desk phone');
    const r = await record(id);
    assert.equal(r.state, 'answered', events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind], [desk, 'rtp']);
    assert.deepEqual(forgotten(r), [...stale].reverse(), events(r));
    assert.deepEqual(await contacts('frank'), [desk]);
    assert.deepEqual(await mediaStats().then((s) => [s.pipelines, s.elements]), [1, 2]);
    await hangUpAndZero(a, desks.frank);
  });

  test('an older live tab and a newer tab gone: the call reaches the older tab over its own WebSocket (the newer tab\'s REGISTER answer listed it, but ferry sip bound it to the connection it registered over)', { timeout: 30_000 }, async () => {
    const { ws: older, contact: olderAt } = await liveTab('ivy');
    const invites = requestsTo(older, 'INVITE');
    const cancels = requestsTo(older, 'CANCEL');
    tabRings(older);
    const [newer] = await staleTabs('ivy', 1);
    assert.deepEqual((await contacts('ivy')).sort(), [olderAt, newer!].sort(), 'two registrations before the call');
    const known = await knownCalls();
    const rung = world.dials(caller, 'sip:ivy@ferry.local');
    await waitFor(() => invites[0], 5000, 10, 'the older tab is INVITEd over its own WebSocket');
    const r = await newCall(known);
    await waitFor(async () => (await record(r.id)).callee.uri === olderAt, 5000, 25, 'the call is at the older tab');
    assert.deepEqual(forgotten(await record(r.id)), [newer], 'only the newer, gone tab is forgotten');
    assert.deepEqual(await contacts('ivy'), [olderAt], 'the older, live tab is kept');
    await caller.cancel();
    await waitFor(() => cancels[0], 5000, 10, 'the caller\'s CANCEL reaches the older tab');
    answerOver(older, invites[0]!, '487 Request Terminated');
    assert.equal((await rung)?.status, 487);
    await ended(r.id);
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'pipeline released');
  });

  test('a blind transfer to a user with dead tabs and a desk phone reaches the desk phone; the staying party hears it', { timeout: 40_000 }, async () => {
    const desk = await deskRegisters('gina');
    const stale = await staleTabs('gina', 3);
    const id = await world.connects('sip:7100@ferry.local', b, 'RTP from the caller at B');
    const since = Date.now();
    const res = await world.post(`/api/calls/${id}/transfer`, { target: 'gina', keep: 'caller' });
    assert.equal(res.status, 200, await res.clone().text());
    await b.waitForRequest('BYE', 5000, since);
    await b.media.stopMedia();
    const switched = Date.now();
    await hears(desks.gina, switched, 'RTP from the caller at the desk phone');
    await hears(caller, switched, 'RTP from the desk phone at the caller');
    const r = await record(id);
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [desk, 'rtp', 'gina'], events(r));
    assert.deepEqual(forgotten(r), [...stale].reverse(), events(r));
    assert.deepEqual(await contacts('gina'), [desk]);
    assert.deepEqual(await mediaStats().then((s) => [s.pipelines, s.elements]), [1, 2]);
    await hangUpAndZero(caller, desks.gina);
  });
});
