import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipRawClient } from '../helpers/sip-raw-client';
import { getJson, TEST_API_TOKEN, waitFor } from '../helpers/stack';
import { removeTestKeys } from '../helpers/redis-test-keys';
import { events, hears, reasonOf, requests, ringAllEnv, UserCallWorld } from '../helpers/user-call-world';

/**
 * Two gateways on one ferry sip, one ferry media and one Redis store (docs/gateway.md, "A call", step 2,
 * "A registration made while ringing"): a device that registers through the OTHER gateway while a call to
 * its user rings on this one rings too (the registering gateway tells the others of the new binding over
 * Redis pub/sub), for a user with one registration and for one with two; a registration made at the other
 * gateway after the answer rings nothing (control: the one made during the ring did). ferry sip deals new
 * REGISTERs to the gateways in turn, so a registration (a challenge and its answer) is steered to a
 * gateway: a probe user registers, and a lone unanswered REGISTER moves the turn by one when the probe's
 * answer landed at the wrong one. Scripted UDP phones with real RTP; afterwards ferry media holds
 * nothing, ferry sip no dialog and neither gateway a call.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';
const PASSWORD = 'ring-elsewhere-secret';
const NO_ANSWER_MS = 15_000;
const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';
const USERS = ['eli', 'fay', 'probe'] as const;
type Gw = 'gateway' | 'gateway2';

describe('FERRY_RING=all with two gateways sharing Redis: a device registered at the other gateway while a call rings joins it', { timeout: 180_000 }, () => {
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  const eli = [0, 1].map(() => new SipPhone(new RtpPhone(), { user: 'eli', address: '127.0.0.2', ring: true })) as [SipPhone, SipPhone];
  const fay = [0, 1, 2, 3].map(() => new SipPhone(new RtpPhone(), { user: 'fay', address: '127.0.0.2', ring: true })) as [SipPhone, SipPhone, SipPhone, SipPhone];
  const probe = new SipPhone(new RtpPhone(), { user: 'probe', address: '127.0.0.2' });
  const world = new UserCallWorld({
    dirPrefix: 'ferry-ringelsewhere-',
    users: USERS,
    password: PASSWORD,
    trunks: { caller },
    desks: [...eli, ...fay, probe],
    routes: [{ match: '.*', to: 'user' }],
    partEnv: ringAllEnv(NO_ANSWER_MS),
    redisUrl: REDIS_URL,
    secondGateway: true,
  });
  const { via, knownCalls, record, newCall, ended, mediaHolds, hangUp } = world;
  let nudge: SipRawClient | undefined;

  before(async () => {
    await world.start();
    nudge = await SipRawClient.open('udp', world.stack.sipPort);
  });
  after(async () => {
    nudge?.close();
    if (world.stack) await removeTestKeys(new Redis(REDIS_URL), world.stack.redisPrefix);
    await world.close();
  });

  /** the gateway that logged `phone`'s registration since output line `from` */
  const registeredAt = (phone: SipPhone, from: number): Gw | undefined => {
    const line = world.stack.output.slice(from).find((l) => /^\[gateway2?\] /.test(l) && l.includes('"registered"') && l.includes(phone.contact));
    return line ? (line.slice(1, line.indexOf(']')) as Gw) : undefined;
  };

  /** `phone` registers through gateway `gw` (the answer to its challenge is dealt to it) */
  async function registerAt(phone: SipPhone, gw: Gw): Promise<void> {
    let mark = world.stack.output.length;
    await probe.register(via(), PASSWORD);
    const probeAt = await waitFor(() => registeredAt(probe, mark), 3000, 10, 'the gateway that took the probe');
    // a registration is two REGISTERs: the next one's answer goes where the probe's went, unless the turn moves by one
    if (probeAt !== gw) assert.equal((await nudge!.request({ method: 'REGISTER', uri: 'sip:ferry.local', fromUser: 'probe', expires: 600 })).status, 401);
    mark = world.stack.output.length;
    await phone.register(via(), PASSWORD);
    assert.equal(await waitFor(() => registeredAt(phone, mark), 3000, 10, `the gateway that took ${phone.contact}`), gw, `${phone.contact} registered at ${gw}`);
  }

  /** the gateway (output label) that owns the call */
  const ownerOf = (owner: string): Gw => (owner.startsWith('gw-a-') ? 'gateway' : 'gateway2');
  const other = (gw: Gw): Gw => (gw === 'gateway' ? 'gateway2' : 'gateway');

  /** the caller dials `user`; resolves once `ringing` ring, with the call's id and the gateway that owns it */
  async function dial(user: string, ringing: SipPhone[]): Promise<{ result: Promise<{ status?: number } | undefined>; id: string; owner: Gw }> {
    const known = await knownCalls();
    const result = world.dials(caller, `sip:${user}@ferry.local`);
    await waitFor(() => ringing.every((d) => d.ringing), 5000, 10, `${ringing.length} of ${user}'s desk phones ring`);
    const r = await newCall(known);
    return { result, id: r.id, owner: ownerOf(r.owner) };
  }

  async function joinsFromElsewhere(id: string, desk: SipPhone, gw: Gw): Promise<void> {
    await registerAt(desk, gw);
    await waitFor(() => desk.ringing, 5000, 10, `the device registered at ${gw} during the ring rings`);
    const r = await record(id);
    assert.ok(r.timeline.some((e) => e.event === 'fork-joined' && e.detail === `${desk.contact} (rtp): registered while ringing (at another gateway)`), events(r));
  }

  /** nothing left: no pipeline, element or port in ferry media, no dialog in ferry sip, no call at either gateway */
  async function backToZero(): Promise<void> {
    await world.backToZero();
    const active = async (port: number): Promise<number> => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
      return Number(/^ferry_active_calls (\d+)$/m.exec(await res.text())?.[1] ?? NaN);
    };
    await waitFor(async () => (await active(world.stack.httpPort2!)) === 0, 5000, 25, 'the second gateway has no active call');
  }

  test('E1: a user with one registration: a second device registered through the other gateway while the call rings rings too, answers; the first is CANCELled "Call completed elsewhere"', { timeout: 60_000 }, async () => {
    const [first, second] = eli;
    await first.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id, owner } = await dial('eli', [first]);
    await joinsFromElsewhere(id, second, other(owner));
    for (const desk of eli) assert.equal(requests(desk, 'INVITE', since).length, 1, `one INVITE each (${desk.contact})`);
    await second.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    assert.equal(reasonOf(await first.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    const at = Date.now();
    await hears(caller, at, 'RTP from the device registered elsewhere at the caller');
    await hears(second, at, 'RTP from the caller at the device registered elsewhere');
    const r = await record(id);
    assert.deepEqual([r.state, r.callee.uri, ownerOf(r.owner)], ['answered', second.contact, owner], events(r));
    await mediaHolds(1, 2, 'the two parties\' endpoints are left');
    await hangUp(second);
    await backToZero();
    assert.equal((await ended(id)).reason, 'sip-bye');
  });

  test('E2: a user with two registrations ringing: a third registered through the other gateway joins; after the first answers, a fourth registered there gets no INVITE (control: the third did)', { timeout: 60_000 }, async () => {
    const [a, b, c, d] = fay;
    await a.register(via(), PASSWORD);
    await b.register(via(), PASSWORD);
    const since = Date.now();
    const { result, id, owner } = await dial('fay', [a, b]);
    await joinsFromElsewhere(id, c, other(owner));
    await a.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    for (const desk of [b, c]) assert.equal(reasonOf(await desk.waitForRequest('CANCEL', 5000, since)), COMPLETED_ELSEWHERE);
    await registerAt(d, other(owner));
    const at = Date.now();
    await hears(caller, at, 'RTP from the first desk phone at the caller, after the registration made after the answer');
    await hears(a, at, 'RTP from the caller at the first desk phone, after the registration made after the answer');
    await hangUp(a);
    await backToZero();
    const done = await ended(id);
    assert.equal(done.reason, 'sip-bye', events(done));
    assert.equal(requests(d, 'INVITE', since).length, 0, 'the device registered elsewhere after the answer never got an INVITE');
    assert.deepEqual(done.timeline.filter((e) => e.event === 'fork-joined').map((e) => e.detail), [`${c.contact} (rtp): registered while ringing (at another gateway)`], events(done));
    assert.ok((await getJson<{ registrations: { contact: string }[] }>(world.stack.httpPort, '/api/registrations?user=fay')).registrations.some((x) => x.contact === d.contact), 'the fourth registration is stored');
  });
});
