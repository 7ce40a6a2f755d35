import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { waitFor } from '../helpers/stack';
import { requestsTo, tabContact } from '../helpers/raw-webphone-registration';
import { events, hears, reasonOf, requests, ringAllEnv, UserCallWorld } from '../helpers/user-call-world';

/**
 * FERRY_RING=all (docs/gateway.md, "A call", step 2) beyond the common cases: a registration the user
 * makes while its registrations ring joins the ring (a re-REGISTER of one that rings adds nothing); a user
 * with more registrations than ring at once (the 8 newest ring, the others never get an INVITE, nor does a
 * registration made while 8 ring); a registration that answers 183 with SDP and sends early media (the
 * caller gets 180 and no media until the 200, then the call works); an API call whose party A is a user
 * with several registrations (all ring, the first to answer is A, the others are cancelled "Call completed
 * elsewhere"). Real ferry sip, gateway and ferry media; scripted UDP phones; afterwards ferry media holds
 * nothing, ferry sip no dialog and the gateway no call.
 */
const PASSWORD = 'ring-joins-secret';
const NO_ANSWER_MS = 15_000;
const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';
const USERS = ['joe', 'kim', 'lou', 'mia', 'ned', 'oli', 'pam'] as const;
type User = (typeof USERS)[number];
/** desk phones per user, [oldest .. newest]: kim has ten (nine registered before the call, one during it) */
const DESKS: Record<User, number> = { joe: 4, kim: 10, lou: 2, mia: 3, ned: 3, oli: 3, pam: 3 };

describe('FERRY_RING=all: registrations made while ringing, more than 8 registrations, 183 with SDP, an API call\'s party A with several registrations', { timeout: 240_000 }, () => {
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  /** party B of the API calls, and the callee of the call a transfer takes out: a trunk phone that answers at once */
  const partyB = new SipPhone(new RtpPhone(), { user: 'b' });
  const desks = Object.fromEntries(USERS.map((u) => [u, Array.from({ length: DESKS[u] }, () => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, SipPhone[]>;
  /** the provisional responses the caller got (status lines and bodies), in order */
  const provisionals: { status: number; body: string; at: number }[] = [];

  const world = new UserCallWorld({
    dirPrefix: 'ferry-ringjoins-',
    users: USERS,
    password: PASSWORD,
    trunks: { caller, b: partyB },
    desks: Object.values(desks).flat(),
    routes: [{ match: '8(\\d+)', to: 'trunk:b', rewrite: '$1' }, { match: '.*', to: 'user' }],
    partEnv: ringAllEnv(NO_ANSWER_MS),
  });
  const { via, knownCalls, record, contacts, newCall, inState, ended, mediaHolds, backToZero, hangUp } = world;

  before(async () => {
    // the caller's responses as they come (SipPhone keeps only requests): is a 183 relayed?
    const phone = caller as unknown as { onMessage(m: { startLine: string; body: string }): Promise<void> };
    const onMessage = phone.onMessage.bind(caller);
    phone.onMessage = (m) => {
      const status = /^SIP\/2\.0 (\d{3})/.exec(m.startLine)?.[1];
      if (status && Number(status) < 200) provisionals.push({ status: Number(status), body: m.body, at: Date.now() });
      return onMessage(m);
    };
    await world.start();
  });
  after(() => world.close());

  /** the caller dials `user`; resolves once `ringing` ring */
  async function dial(user: User, ringing: SipPhone[]): Promise<{ result: Promise<{ status?: number } | undefined>; id: string }> {
    const known = await knownCalls();
    const result = world.dials(caller, `sip:${user}@ferry.local`);
    await waitFor(() => ringing.every((d) => d.ringing), 5000, 10, `${ringing.length} of ${user}'s desk phones ring`);
    return { result, id: (await newCall(known)).id };
  }

  test('S1: a device registered while two ring joins them and answers: the caller hears it, the others are cancelled "Call completed elsewhere"; re-REGISTERs of ringing devices ring nothing twice', { timeout: 60_000 }, async () => {
    const [first, second, third, fourth] = desks.joe as [SipPhone, SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    await second.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id } = await dial('joe', [first, second]);
    assert.equal(requests(third, 'INVITE', since).length, 0, 'the third device is not registered yet');
    // a second device (or the same one after a network change: a new Contact) registers during the ring
    await third.register(via(), PASSWORD);
    await waitFor(() => third.ringing, 5000, 10, 'the device registered during the ring rings');
    const joined = await record(id);
    assert.ok(joined.timeline.some((e) => e.event === 'fork-joined' && e.detail === `${third.contact} (rtp): registered while ringing`), events(joined));
    // re-REGISTERs of devices that ring already (a refresh of the same Contact): no second INVITE. Registrations
    // join in the order they are made: once a fourth device made after them rings, they were seen
    await first.register(via(), PASSWORD);
    await third.register(via(), PASSWORD);
    await fourth.register(via(), PASSWORD);
    await waitFor(() => fourth.ringing, 5000, 10, 'a fourth device registered after the re-REGISTERs rings');
    for (const desk of [first, second, third, fourth]) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE each (${desk.contact})`);
    assert.equal((await record(id)).timeline.filter((e) => e.event === 'fork-joined').length, 2, 'two registrations joined');
    await third.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    for (const desk of [first, second, fourth]) {
      const cancel = await desk.waitForRequest('CANCEL', 5000, since);
      assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
      assert.ok(!desk.ringing);
    }
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the device that joined at the caller');
    await hears(third, answeredAt, 'RTP from the caller at the device that joined');
    const r = await record(id);
    assert.equal(r.state, 'answered', events(r));
    assert.deepEqual([r.callee.uri, r.callee.kind, r.callee.party], [third.contact, 'rtp', 'joe'], events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 3, events(r));
    await mediaHolds(1, 2, 'the two parties\' endpoints are left: the others\' are released');
    await hangUp(third);
    await backToZero();
    assert.equal((await ended(id)).reason, 'sip-bye');
  });

  test('S2: nine registrations: the 8 newest ring, the oldest never gets an INVITE; a tenth made while 8 ring is not rung (ring-all-limited); the caller\'s CANCEL reaches the 8', { timeout: 60_000 }, async () => {
    const all = desks.kim;
    for (const desk of all.slice(0, 9)) await desk.register(via(), PASSWORD);
    assert.equal((await contacts('kim')).length, 9);
    const since = Date.now();
    const newest8 = all.slice(1, 9);
    const { result, id } = await dial('kim', newest8);
    for (const desk of newest8) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE at ${desk.contact}`);
    const tenth = all[9]!;
    await tenth.register(via(), PASSWORD);
    const limited = await waitFor(async () => {
      const r = await record(id);
      return r.timeline.some((e) => e.event === 'ring-all-limited') ? r : undefined;
    }, 5000, 25, 'the tenth registration turned away');
    assert.ok(limited.timeline.some((e) => e.event === 'ring-all-limited' && e.detail === `${tenth.contact} registered while ringing: not rung, 8 registrations ring already`), events(limited));
    assert.equal(await caller.cancel(), 200);
    assert.equal((await result)?.status, 487);
    for (const desk of newest8) await desk.waitForRequest('CANCEL', 5000, since);
    const r = await ended(id);
    assert.equal(r.reason, 'sip-cancel', events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork').length, 8, events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 8, events(r));
    assert.equal(requests(all[0]!, 'INVITE', since).length, 0, 'the oldest registration never got an INVITE');
    assert.equal(requests(tenth, 'INVITE', since).length, 0, 'the registration made while 8 rang never got an INVITE');
    await backToZero();
  });

  test('S3: a registration answers 183 with SDP and sends early media: the caller gets 180 only and no media; its 200 then gets the call, RTP both ways', { timeout: 60_000 }, async () => {
    const [older, newer] = desks.lou as [SipPhone, SipPhone];
    await older.register(via(), PASSWORD);
    await newer.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id } = await dial('lou', [older, newer]);
    // the newer phone: 183 with its SDP, and RTP to the gateway's offer at once
    const invite = requests(newer, 'INVITE', since)[0]!;
    const phone = newer as unknown as { ringingInvite: unknown; respond(req: unknown, status: number, reason: string, extra: string[], body: string): void };
    phone.respond(phone.ringingInvite, 183, 'Session Progress', [`Contact: <${newer.contact}>`, 'Content-Type: application/sdp'], await newer.media.sdp());
    await newer.media.applyRemoteSdp(invite.message.body);
    const earlyAt = Date.now();
    await newer.media.startMedia();
    await waitFor(async () => (await newer.media.rtpSentBetween(earlyAt, Date.now())) >= 50, 5000, 25, 'the newer phone sent 50 packets of early media');
    const r0 = await record(id);
    assert.equal(r0.state, 'ringing', events(r0));
    assert.equal(await caller.media.rtpReceivedBetween(since, Date.now()), 0, 'no early media reached the caller');
    const statuses = provisionals.filter((p) => p.at >= since).map((p) => p.status);
    assert.equal(statuses.filter((x) => x === 180).length, 1, `the caller heard ringing once (${statuses.join(', ')})`);
    assert.ok(!statuses.includes(183), `no 183 was relayed to the caller (${statuses.join(', ')})`);
    assert.ok(provisionals.filter((p) => p.at >= since).every((p) => p.body === ''), 'no SDP in a provisional to the caller');
    await newer.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    const cancel = await older.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the phone that sent 183 at the caller');
    await hears(newer, answeredAt, 'RTP from the caller at the phone that sent 183');
    const r = await record(id);
    assert.deepEqual([r.state, r.callee.uri], ['answered', newer.contact], events(r));
    await hangUp(newer);
    await backToZero();
  });

  test('S4: an API call whose party A has three registrations: all ring; the middle one answers and is A, the others are cancelled "Call completed elsewhere"; then B rings and the two hear each other', { timeout: 60_000 }, async () => {
    const [oldest, middle, newest] = desks.mia as [SipPhone, SipPhone, SipPhone];
    for (const desk of desks.mia) await desk.register(via(), PASSWORD);
    const since = Date.now();
    const res = await world.post('/api/calls', { a: 'mia', b: '8100' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => desks.mia.every((d) => d.ringing), 10_000, 10, 'all three of A\'s desk phones ring');
    for (const desk of desks.mia) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE at ${desk.contact}`);
    assert.equal(requests(partyB, 'INVITE', since).length, 0, 'B is not rung before A answers');
    await middle.answerRinging();
    for (const desk of [oldest, newest]) {
      const cancel = await desk.waitForRequest('CANCEL', 5000, since);
      assert.equal(reasonOf(cancel), COMPLETED_ELSEWHERE);
      assert.ok(!desk.ringing);
    }
    await partyB.waitForRequest('INVITE', 10_000, since);
    const answeredAt = Date.now();
    await hears(middle, answeredAt, 'RTP from B at A\'s middle desk phone');
    await hears(partyB, answeredAt, 'RTP from A\'s middle desk phone at B');
    const r = await inState(id, 'answered', 'the API call answered');
    assert.deepEqual([r.caller.uri, r.caller.kind, r.caller.party], [middle.contact, 'rtp', 'mia'], events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 2, events(r));
    await mediaHolds(1, 2, 'A\'s and B\'s endpoints are left');
    await hangUp(partyB, middle);
    await backToZero();
  });

  test('S5: a blind transfer to a user whose two devices ring: a third registered meanwhile joins, answers and is the transfer\'s new leg; the two others are cancelled "Call completed elsewhere"', { timeout: 60_000 }, async () => {
    const [first, second, third] = desks.ned as [SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    await second.register(via(), PASSWORD);
    const id = await world.connects('sip:8200@ferry.local', partyB, 'RTP from the caller at the trunk phone');
    const since = Date.now();
    const transfer = world.post(`/api/calls/${id}/transfer`, { target: 'ned', keep: 'caller' });
    await waitFor(() => first.ringing && second.ringing, 10_000, 10, 'both of ned\'s devices ring');
    await third.register(via(), PASSWORD);
    await waitFor(() => third.ringing, 5000, 10, 'the device registered during the transfer\'s ring rings');
    await third.answerRinging();
    const res = await transfer;
    assert.equal(res.status, 200, await res.clone().text());
    await partyB.waitForRequest('BYE', 5000, since);
    await partyB.media.stopMedia();
    for (const desk of [first, second]) assert.equal(reasonOf(await desk.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    const switched = Date.now();
    await hears(third, switched, 'RTP from the caller at the device that joined');
    await hears(caller, switched, 'RTP from the device that joined at the caller');
    const r = await record(id);
    assert.deepEqual([r.callee.uri, r.callee.party], [third.contact, 'ned'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `transfer: ${third.contact} (rtp): registered while ringing`), events(r));
    for (const desk of desks.ned) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE at ${desk.contact}`);
    await hangUp(third);
    await backToZero();
  });

  test('S6: an API call whose party A\'s two devices ring: a third registered meanwhile joins and answers as A; then B rings and the two hear each other', { timeout: 60_000 }, async () => {
    const [first, second, third] = desks.oli as [SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    await second.register(via(), PASSWORD);
    const since = Date.now();
    const res = await world.post('/api/calls', { a: 'oli', b: '8100' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => first.ringing && second.ringing, 10_000, 10, 'both of A\'s devices ring');
    await third.register(via(), PASSWORD);
    await waitFor(() => third.ringing, 5000, 10, 'the device registered during A\'s ring rings');
    await third.answerRinging();
    for (const desk of [first, second]) assert.equal(reasonOf(await desk.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    await partyB.waitForRequest('INVITE', 10_000, since);
    const answeredAt = Date.now();
    await hears(third, answeredAt, 'RTP from B at the device that joined');
    await hears(partyB, answeredAt, 'RTP from the device that joined at B');
    const r = await inState(id, 'answered', 'the API call answered');
    assert.deepEqual([r.caller.uri, r.caller.party], [third.contact, 'oli'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `caller: ${third.contact} (rtp): registered while ringing`), events(r));
    await hangUp(partyB, third);
    await backToZero();
  });

  test('S7: a phone calls a user whose desk phones ring: a webphone tab registered meanwhile does not join (fork-not-joined), a desk phone registered after it does', { timeout: 60_000 }, async () => {
    const [first, second, third] = desks.pam as [SipPhone, SipPhone, SipPhone];
    await first.register(via(), PASSWORD);
    await second.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id } = await dial('pam', [first, second]);
    const tab = await world.webphoneTab('pam', 'pamtab1');
    const tabInvites = requestsTo(tab, 'INVITE');
    // registrations join in the order they are made: once the desk phone registered after the tab rings, the tab was seen
    await third.register(via(), PASSWORD);
    await waitFor(() => third.ringing, 5000, 10, 'the desk phone registered after the tab rings');
    assert.equal(tabInvites.length, 0, 'the tab got no INVITE');
    const r = await record(id);
    assert.ok(r.timeline.some((e) => e.event === 'fork-not-joined' && e.detail?.startsWith(`${tabContact('pamtab1')} registered while ringing: `)), events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-joined').length, 1, events(r));
    assert.equal(await caller.cancel(), 200);
    assert.equal((await result)?.status, 487);
    for (const desk of [first, second, third]) await desk.waitForRequest('CANCEL', 5000, since);
    assert.equal((await ended(id)).reason, 'sip-cancel');
    await backToZero();
  });
});
