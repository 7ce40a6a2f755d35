import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { RedisServerProcess } from '../helpers/redis-server-process';
import { TcpCutter } from '../helpers/media-tcp-cutter';
import { freePort } from '../helpers/free-port';
import { answerOver, requestsTo, tabContact, vanish, webphoneRegisters } from '../helpers/raw-webphone-registration';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * FERRY_RING=all under faults (docs/gateway.md, "A call", step 2, and docs/lifecycle.md F1, F2,
 * F3, S14): a user's two desk phones ring at once when a part of ferry dies. Real processes: ferry sip,
 * ferry media and one or two gateways (test/helpers/stack.ts) on a private redis-server; the desk
 * phones and the caller are scripted UDP SIP phones with real RTP (test/helpers/sip-phone.ts, "ring"
 * mode: they ring until the test answers for them). After each scenario ferry media has no pipeline,
 * element or bound port left, ferry sip no dialog, pending request, orphaned dialog or held request,
 * and no gateway an active call.
 */
const PASSWORD = 'ring-all-faults-secret';
const LEASE_MS = 1500;
const NO_ANSWER_MS = 20_000;
/** ferry media's backstop for a pipeline whose owner session is gone and that never had media (FERRY_MEDIA_ORPHAN_TTL_MS) */
const ORPHAN_TTL_MS = 4000;
/** the app-gone Reason ferry sip puts on the CANCEL of a gone gateway's INVITE (src/sip/engine/engine-reasons.ts) */
const APP_GONE_REASON = 'SIP;cause=480;text="the app that placed this call is gone"';
const USERS = ['amy', 'ben', 'cat', 'dan', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jon'] as const;
type User = (typeof USERS)[number];

interface World {
  stack: Stack;
  redis: RedisServerProcess;
  dir: string;
  caller: SipPhone;
  desks: Record<User, [SipPhone, SipPhone]>;
  /** one gateway: it reaches ferry media through this relay (a control-connection blip is a cut) */
  cutter?: TcpCutter;
}

async function startWorld(label: string, secondGateway: boolean): Promise<World> {
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  const callerPort = await caller.start();
  const desks = Object.fromEntries(USERS.map((u) => [u, [0, 1].map(() => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, [SipPhone, SipPhone]>;
  for (const pair of Object.values(desks)) for (const desk of pair) await desk.start();
  const dir = await mkdtemp(path.join(os.tmpdir(), `ferry-ringall-${label}-`));
  const file = path.join(dir, 'ferry.json');
  await writeFile(file, JSON.stringify({
    domain: 'ferry.local',
    users: USERS.map((user) => ({ user, password: PASSWORD })),
    trunks: [{ name: 'caller', address: `127.0.0.1:${callerPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${callerPort}`] }],
    routes: [{ match: '.*', to: 'user' }],
  }));
  const redis = await RedisServerProcess.start();
  const mediaPort = await freePort({ protocols: ['tcp'] });
  const cutter = secondGateway ? undefined : await TcpCutter.start(mediaPort);
  const stack = await startStack({
    redisUrl: redis.url,
    secondGateway,
    partEnv: {
      gateway: {
        FERRY_SIP_CONFIG: file, FERRY_RING: 'all', FERRY_NO_ANSWER_MS: String(NO_ANSWER_MS), FERRY_CALL_RECORD_TTL_MS: '60000',
        FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_GATEWAY_ADOPT_INTERVAL_MS: '250',
        ...(cutter ? { FERRY_MEDIA_URL: `ws://127.0.0.1:${cutter.port}/kurento` } : {}),
      },
      media: { FERRY_MEDIA_PORT: String(mediaPort), FERRY_MEDIA_ORPHAN_TTL_MS: String(ORPHAN_TTL_MS) },
      sip: { FERRY_SIP_STATS_INTERVAL_MS: '200' },
    },
  });
  return { stack, redis, dir, caller, desks, ...(cutter ? { cutter } : {}) };
}

async function stopWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  if (process.env.FERRY_TEST_DUMP) console.log(w.stack.output.join('\n'));
  for (const phone of [w.caller, ...Object.values(w.desks).flat()]) await phone.close();
  await w.stack.stop();
  await w.cutter?.close();
  await w.redis.stop();
  await rm(w.dir, { recursive: true, force: true });
}

const via = (w: World): { host: string; port: number } => ({ host: '127.0.0.1', port: w.stack.sipPort });
const httpPorts = (w: World): number[] => [w.stack.httpPort, ...(w.stack.httpPort2 ? [w.stack.httpPort2] : [])];
/** a gateway alive now (calls and registrations are in the shared store: any one answers for all) */
const livePort = (w: World): number => (w.stack.pid('gateway') !== undefined ? w.stack.httpPort : w.stack.httpPort2!);
const calls = async (w: World): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(livePort(w), '/api/calls?state=all')).calls;
const record = (w: World, id: string): Promise<CallRecord> => getJson<CallRecord>(livePort(w), `/api/calls/${id}`);
/** the call's record once it has ended (within `ms`) */
const endedRecord = (w: World, id: string, ms: number): Promise<CallRecord> => waitFor(async () => {
  const r = await record(w, id);
  return r.state === 'ended' ? r : undefined;
}, ms, 25, 'the call ended');
const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
const requests = (phone: SipPhone, method: string, since: number) => phone.received.filter((m) => m.method === method && m.at >= since);
const reasonOf = (m: { message: { headers: Map<string, string[]> } }): string | undefined => m.message.headers.get('reason')?.[0];
const hears = (phone: SipPhone, since: number, what: string, n = 20): Promise<unknown> =>
  waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > n, 10_000, 25, what);
const contactsAt = async (port: number, user: User): Promise<string[]> =>
  (await getJson<{ registrations: { contact: string }[] }>(port, `/api/registrations?user=${user}`)).registrations.map((r) => r.contact).sort();

/** ferry sip's newest live counts (FERRY_SIP_STATS_INTERVAL_MS) */
function sipCounts(w: World): Record<string, number> | undefined {
  const line = [...w.stack.output].reverse().find((l) => l.startsWith('[sip] ferry sip stats '));
  return line ? (JSON.parse(line.slice('[sip] ferry sip stats '.length)) as Record<string, number>) : undefined;
}

/** nothing of any call left: ferry media (pipelines, elements, bound ports), ferry sip (dialogs, pending, orphaned, held), every live gateway (active calls) */
async function backToZero(w: World, what: string): Promise<void> {
  await waitFor(async () => {
    const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(w.stack.mediaPort, '/stats');
    return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
  }, 8000, 25, `${what}: ferry media back to no pipeline, element or bound port`);
  const linesBefore = w.stack.output.length;
  await waitFor(() => {
    // a stats line printed after this check started
    if (!w.stack.output.slice(linesBefore).some((l) => l.startsWith('[sip] ferry sip stats '))) return false;
    const c = sipCounts(w);
    return !!c && c.dialogs === 0 && c.pending === 0 && c.orphanedDialogs === 0 && c.heldRequests === 0;
  }, 8000, 50, `${what}: ferry sip back to no dialog, pending request, orphaned dialog or held request (last: ${JSON.stringify(sipCounts(w))})`);
  for (const port of [w.stack.httpPort, w.stack.httpPort2]) {
    if (port === undefined || (port === w.stack.httpPort ? w.stack.pid('gateway') : w.stack.pid('gateway2')) === undefined) continue;
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    assert.equal(Number(/^ferry_active_calls (\d+)$/m.exec(await res.text())?.[1] ?? NaN), 0, `${what}: no active call at the gateway on ${port}`);
  }
}

/** both desk phones of `user` register (the older first); resolves with their Contacts [older, newer] */
async function bothRegister(w: World, user: User): Promise<string[]> {
  for (const desk of w.desks[user]) await desk.register(via(w), PASSWORD);
  const all = w.desks[user].map((d) => d.contact);
  for (const port of httpPorts(w)) assert.deepEqual(await contactsAt(port, user), [...all].sort(), `two registrations at the gateway on ${port}`);
  return all;
}

/** the caller dials `user`; resolves once both desk phones ring and the caller has heard 180 */
async function dialBoth(w: World, user: User, since: number): Promise<{ result: Promise<{ status?: number } | undefined>; rec: CallRecord }> {
  const known = new Set((await calls(w)).map((c) => c.id));
  const result = w.caller.call(`sip:${user}@ferry.local`, via(w)).then(() => undefined, (err: { status?: number }) => err);
  await waitFor(() => w.desks[user].every((d) => d.ringing), 8000, 10, `both of ${user}'s desk phones ring`);
  for (const desk of w.desks[user]) assert.equal(requests(desk, 'INVITE', since).length, 1, 'one INVITE each');
  const rec = await waitFor(async () => (await calls(w)).find((c) => !known.has(c.id) && c.state === 'ringing'), 5000, 25, 'the new call ringing');
  assert.equal(rec.timeline.filter((e) => e.event === 'fork').length, 2, events(rec));
  return { result, rec };
}

/** the gateway part that owns `rec` */
const ownerPart = (w: World, rec: CallRecord): 'gateway' | 'gateway2' => (rec.owner === `gw-a-${w.stack.redisPrefix}` ? 'gateway' : 'gateway2');

/** both ringing desks get ferry sip's CANCEL (app gone) and stop ringing; the caller gets 503 from ferry sip */
async function allToldAfterGatewayDeath(w: World, user: User, since: number, result: Promise<{ status?: number } | undefined>): Promise<void> {
  for (const desk of w.desks[user]) {
    const cancel = await desk.waitForRequest('CANCEL', 5000, since);
    assert.equal(reasonOf(cancel), APP_GONE_REASON, 'the CANCEL says the app is gone');
    await waitFor(() => !desk.ringing, 2000, 10, 'the desk phone stopped ringing');
    await desk.waitForRequest('ACK', 5000, since); // its 487, ACKed by ferry sip
  }
  const failed = await result;
  assert.equal(failed?.status, 503, 'the caller gets 503 from ferry sip for its INVITE pending at the gone gateway');
}

/** the caller hangs up (`from` the caller) or the answering desk does; the other is told; nothing left */
async function hangUpAndZero(w: World, answering: SipPhone, byCaller: boolean, id: string, what: string): Promise<CallRecord> {
  const [from, other] = byCaller ? [w.caller, answering] : [answering, w.caller];
  const since = await from.hangup();
  assert.equal(from.lastHangupStatus, 200, 'the hang-up is answered 200');
  await from.media.stopMedia();
  const bye = await other.waitForRequest('BYE', 5000, since);
  await other.media.stopMedia();
  console.log(`# ${what}: the ${byCaller ? 'caller' : 'callee'}'s hang-up reached the other party ${bye.at - since} ms later`);
  await backToZero(w, what);
  const done = await endedRecord(w, id, 10_000);
  assert.equal(done.reason, 'sip-bye', events(done));
  assert.equal(done.endedBy, byCaller ? 'caller' : 'callee', events(done));
  return done;
}

/** the older desk of `user` answers while both ring: the call is its (the newer is cancelled), RTP both ways */
async function olderAnswers(w: World, user: User, since: number): Promise<{ rec: CallRecord; older: SipPhone; newer: SipPhone }> {
  const { result, rec } = await dialBoth(w, user, since);
  const [older, newer] = w.desks[user];
  await older.answerRinging();
  assert.equal(await result, undefined, 'the caller is answered');
  await newer.waitForRequest('CANCEL', 5000, since);
  const answeredAt = Date.now();
  await hears(w.caller, answeredAt, 'RTP from the older desk phone at the caller');
  await hears(older, answeredAt, 'RTP from the caller at the older desk phone');
  const r = await waitFor(async () => {
    const x = await record(w, rec.id);
    return x.state === 'answered' && x.callee.dialog ? x : undefined;
  }, 5000, 25, 'the answered record with both dialogs');
  assert.equal(r.callee.uri, older.contact, 'the older registration is the callee leg');
  assert.ok(r.timeline.some((e) => e.event === 'callee-endpoint-replaced'), events(r));
  await waitFor(async () => (await getJson<{ elements: number }>(w.stack.mediaPort, '/stats')).elements === 2, 5000, 25, 'the losing fork\'s endpoint released');
  return { rec: r, older, newer };
}

/** the call is adopted (its record names `by` as owner and says adopted); RTP keeps flowing both ways across it */
async function adoptedWithMedia(w: World, id: string, killedAt: number, by: string): Promise<CallRecord> {
  const adopted = await waitFor(async () => {
    const r = await record(w, id).catch(() => undefined);
    return r && r.owner === by && r.timeline.some((e) => e.event === 'adopted') ? r : undefined;
  }, LEASE_MS + 8000, 50, 'the call adopted');
  assert.equal(adopted.state, 'answered', events(adopted));
  assert.ok(adopted.timeline.some((e) => e.event === 'media-reattached'), events(adopted));
  console.log(`# adopted ${adopted.timeline.find((e) => e.event === 'adopted')!.t - killedAt} ms after the SIGKILL`);
  return adopted;
}

async function mediaFlowsBothWays(w: World, answering: SipPhone, killedAt: number): Promise<void> {
  const at = Date.now();
  await hears(w.caller, at, 'RTP from the desk phone at the caller after the kill', 40);
  await hears(answering, at, 'RTP from the caller at the desk phone after the kill', 40);
  const gaps = [await w.caller.media.maxRtpGap(killedAt, Date.now()), await answering.media.maxRtpGap(killedAt, Date.now())];
  const ownGaps = [await answering.media.maxSendGap(killedAt, Date.now()), await w.caller.media.maxSendGap(killedAt, Date.now())];
  console.log(`# largest RTP gap across the kill: at the caller ${gaps[0]} ms, at the desk ${gaps[1]} ms (own send gaps ${ownGaps.join(', ')} ms)`);
  for (let i = 0; i < 2; i++) assert.ok(gaps[i]! < Math.max(200, ownGaps[i]! + 150), `RTP kept flowing across the kill: gap ${gaps[i]} ms`);
}

/** ferry media started again (same port); resolves once the gateway is connected to it again */
async function restartMedia(w: World): Promise<void> {
  const mark = w.stack.output.length;
  await w.stack.restart('media');
  await waitFor(() => w.stack.output.slice(mark).some((l) => l.startsWith('[gateway] ') && /media server (reconnected|answered)/.test(l)), 10_000, 25, 'the gateway connected to ferry media again');
}

// the two worlds are independent (own Redis, own ferry parts, own phones): they run side by side, the scenarios within each in order
describe('FERRY_RING=all under faults', { timeout: 600_000, concurrency: 2 }, () => {
  describe('two gateways on one (private) Redis', { concurrency: 1 }, () => {
    let w: World | undefined;
    before(async () => {
      w = await startWorld('two', true);
    });
    after(() => stopWorld(w));

    test('S14 (ring-all): a registration made at one gateway and one made at the other are seen by both; a call arriving at either gateway rings both registrations', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'amy';
      const [older, newer] = world.desks[user];
      const registeredAt = (phone: SipPhone, from: number): string | undefined => {
        const line = world.stack.output.slice(from).find((l) => /^\[gateway2?\] /.test(l) && l.includes('"registered"') && l.includes(phone.contact));
        return line?.slice(1, line.indexOf(']'));
      };
      // each registration is made while the other gateway is stopped (SIGTERM): the older at gateway A, the newer at gateway B
      const places: string[] = [];
      for (const [phone, other] of [[older, 'gateway2'], [newer, 'gateway']] as const) {
        await world.stack.kill(other, 'SIGTERM');
        const mark = world.stack.output.length;
        await phone.register(via(world), PASSWORD);
        places.push(await waitFor(() => registeredAt(phone, mark), 3000, 10, 'the gateway that took the registration'));
        await world.stack.restart(other);
      }
      assert.deepEqual(places, ['gateway', 'gateway2'], 'the older registration made at gateway A, the newer at gateway B');
      for (const port of httpPorts(world)) assert.deepEqual(await contactsAt(port, user), [older.contact, newer.contact].sort(), `both registrations at the gateway on ${port}`);
      const owners = new Set<string>();
      for (let i = 0; i < 6 && owners.size < 2; i++) {
        const since = Date.now();
        const { result, rec } = await dialBoth(world, user, since);
        owners.add(ownerPart(world, rec));
        // the older answers on even calls, the newer on odd ones: forks work both ways from either gateway
        const [winner, loser] = i % 2 === 0 ? [older, newer] : [newer, older];
        await winner.answerRinging();
        assert.equal(await result, undefined, 'the caller is answered');
        await loser.waitForRequest('CANCEL', 5000, since);
        const at = Date.now();
        await hears(world.caller, at, 'RTP from the answering desk at the caller');
        await hears(winner, at, 'RTP from the caller at the answering desk');
        console.log(`# S14 (ring-all): call ${i + 1} at ${ownerPart(world, rec)}: both registrations rang, the ${winner === older ? 'older' : 'newer'} answered`);
        await hangUpAndZero(world, winner, true, rec.id, `S14 (ring-all) call ${i + 1}`);
      }
      assert.deepEqual([...owners].sort(), ['gateway', 'gateway2'], 'calls arrived at both gateways');
    });

    test('F2 (ring-all): the owning gateway SIGKILLed while two registrations ring: both stop ringing (CANCEL), the caller gets 503, the other gateway adopts the record and releases the pipeline with every fork\'s endpoint; nothing left', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'ben';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const media = await getJson<{ pipelines: number; elements: number }>(world.stack.mediaPort, '/stats');
      // caller, the newest registration's endpoint (the call's callee) and the older registration's own
      assert.deepEqual([media.pipelines, media.elements], [1, 3], 'one pipeline, an endpoint for the caller and one per registration');
      const owner = ownerPart(world, rec);
      const survivor = owner === 'gateway' ? 'gateway2' : 'gateway';
      const killedAt = Date.now();
      await world.stack.kill(owner, 'SIGKILL');
      await allToldAfterGatewayDeath(world, user, killedAt, result);
      const ended = await waitFor(async () => {
        const r = await record(world, rec.id).catch(() => undefined);
        return r?.state === 'ended' ? r : undefined;
      }, LEASE_MS + 8000, 50, 'the ringing record finished by the survivor');
      assert.equal(ended.owner, `gw-${survivor === 'gateway' ? 'a' : 'b'}-${world.stack.redisPrefix}`, events(ended));
      assert.ok(ended.timeline.some((e) => e.event === 'adopted'), events(ended));
      assert.ok(ended.timeline.some((e) => e.event === 'media-released'), events(ended));
      await backToZero(world, 'F2 (ring-all) killed while ringing');
      console.log(`# F2 (ring-all): killed while ringing; record ended by the survivor ${ended.endedAt! - killedAt} ms after the SIGKILL (lease ${LEASE_MS} ms)`);
      await world.stack.restart(owner);
    });

    test('F2 (ring-all): the owning gateway SIGKILLed after the older registration answered: the other gateway adopts the call, RTP flows both ways, the desk\'s hang-up reaches the caller, then a second call the same way hung up by the caller', { timeout: 90_000 }, async () => {
      const world = w!;
      for (const [user, byCaller] of [['cat', false], ['dan', true]] as const) {
        await bothRegister(world, user);
        const since = Date.now();
        const { rec, older } = await olderAnswers(world, user, since);
        const owner = ownerPart(world, rec);
        const survivorId = `gw-${owner === 'gateway' ? 'b' : 'a'}-${world.stack.redisPrefix}`;
        const killedAt = Date.now();
        await world.stack.kill(owner, 'SIGKILL');
        await adoptedWithMedia(world, rec.id, killedAt, survivorId);
        await mediaFlowsBothWays(world, older, killedAt);
        const done = await hangUpAndZero(world, older, byCaller, rec.id, `F2 (ring-all) ${user}`);
        assert.equal(done.owner, survivorId);
        assert.equal(done.callee.uri, older.contact);
        await world.stack.restart(owner);
      }
    });
  });

  describe('one gateway on a (private) Redis, restarted with the same id', { concurrency: 1 }, () => {
    let w: World | undefined;
    before(async () => {
      w = await startWorld('one', false);
    });
    after(() => stopWorld(w));

    test('F1 (ring-all): the gateway SIGKILLed while two registrations ring: both stop ringing (CANCEL), the caller gets 503; restarted with the same id it finishes the record and releases the pipeline; nothing left', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'eve';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const killedAt = Date.now();
      await world.stack.kill('gateway', 'SIGKILL');
      await allToldAfterGatewayDeath(world, user, killedAt, result);
      // ferry media still has the pipeline: its owner session is gone, it never had media
      const orphaned = await getJson<{ pipelines: number; elements: number }>(world.stack.mediaPort, '/stats');
      assert.deepEqual([orphaned.pipelines, orphaned.elements], [1, 3], 'the dead gateway\'s pipeline and its three endpoints until a gateway comes back');
      await world.stack.restart('gateway');
      const ended = await waitFor(async () => {
        const r = await record(world, rec.id).catch(() => undefined);
        return r?.state === 'ended' ? r : undefined;
      }, 10_000, 50, 'the ringing record finished by the restarted gateway');
      assert.ok(ended.timeline.some((e) => e.event === 'adopted' && e.detail?.includes('restarted')), events(ended));
      await backToZero(world, 'F1 (ring-all) killed while ringing');
    });

    test('F1 (ring-all): the gateway SIGKILLed while a desk phone and a webphone tab ring: the tab gets its CANCEL over its WebSocket, the desk phone too, the caller 503; restarted, the gateway finishes the record and releases the pipeline (the caller\'s side already negotiated for the tab); nothing left', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'cat';
      const [desk] = world.desks[user];
      await desk.register(via(world), PASSWORD);
      const tab = await webphoneRegisters(world.stack.wsPort, user, PASSWORD, 'ferry.local', 'cattab1');
      try {
        const invites = requestsTo(tab, 'INVITE');
        const cancels = requestsTo(tab, 'CANCEL');
        tab.on('message', (d) => {
          const text = d.toString();
          if (text.startsWith('INVITE ')) answerOver(tab, text, '180 Ringing');
          if (text.startsWith('CANCEL ')) {
            answerOver(tab, text, '200 OK');
            answerOver(tab, invites.at(-1)!, '487 Request Terminated');
          }
        });
        assert.deepEqual(await contactsAt(world.stack.httpPort, user), [desk.contact, tabContact('cattab1')].sort());
        const known = new Set((await calls(world)).map((c) => c.id));
        const result = world.caller.call(`sip:${user}@ferry.local`, via(world)).then(() => undefined, (err: { status?: number }) => err);
        await waitFor(() => desk.ringing && invites.length === 1, 8000, 10, 'the desk phone and the tab ring');
        const rec = await waitFor(async () => (await calls(world)).find((c) => !known.has(c.id) && c.state === 'ringing'), 5000, 25, 'the new call ringing');
        assert.equal((await getJson<{ elements: number }>(world.stack.mediaPort, '/stats')).elements, 3, 'the caller\'s endpoint and one per registration');
        const killedAt = Date.now();
        await world.stack.kill('gateway', 'SIGKILL');
        const cancel = await waitFor(() => cancels[0], 5000, 10, 'the tab gets CANCEL');
        assert.match(cancel, /^Reason: SIP;cause=480;text="the app that placed this call is gone"\r$/m);
        const deskCancel = await desk.waitForRequest('CANCEL', 5000, killedAt);
        assert.equal(reasonOf(deskCancel), APP_GONE_REASON);
        await waitFor(() => !desk.ringing, 2000, 10, 'the desk phone stopped ringing');
        assert.equal((await result)?.status, 503, 'the caller gets 503');
        await world.stack.restart('gateway');
        const ended = await waitFor(async () => {
          const r = await record(world, rec.id).catch(() => undefined);
          return r?.state === 'ended' ? r : undefined;
        }, 10_000, 50, 'the record finished by the restarted gateway');
        assert.ok(ended.timeline.some((e) => e.event === 'media-released'), events(ended));
        await backToZero(world, 'F1 (ring-all) desk phone and tab');
      } finally {
        await vanish(tab);
      }
    });

    test('F1 (ring-all): the gateway SIGKILLed while two registrations ring and not started again: both stop ringing, the caller gets 503, ferry media releases the orphaned pipeline with every fork\'s endpoint after its orphan time; the gateway started later finishes the record', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'jon';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const killedAt = Date.now();
      await world.stack.kill('gateway', 'SIGKILL');
      await allToldAfterGatewayDeath(world, user, killedAt, result);
      assert.equal((await getJson<{ pipelines: number }>(world.stack.mediaPort, '/stats')).pipelines, 1, 'the pipeline is still there before the orphan time');
      await waitFor(async () => {
        const st = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(world.stack.mediaPort, '/stats');
        return st.pipelines === 0 && st.elements === 0 && st.boundPorts === 0;
      }, ORPHAN_TTL_MS + 4000, 50, 'ferry media released the orphaned pipeline and every endpoint');
      const releasedMs = Date.now() - killedAt;
      assert.ok(releasedMs >= ORPHAN_TTL_MS - 500, `released ${releasedMs} ms after the kill: by the orphan rule (${ORPHAN_TTL_MS} ms), not before`);
      console.log(`# F1 (ring-all), no gateway back: ferry media released the pipeline ${releasedMs} ms after the SIGKILL (orphan time ${ORPHAN_TTL_MS} ms)`);
      await world.stack.restart('gateway');
      const ended = await waitFor(async () => {
        const r = await record(world, rec.id).catch(() => undefined);
        return r?.state === 'ended' ? r : undefined;
      }, 10_000, 50, 'the record finished by the gateway started later');
      assert.ok(ended.timeline.some((e) => e.event === 'media-gone'), events(ended));
      await backToZero(world, 'F1 (ring-all) no gateway back');
    });

    test('F1 (ring-all): the gateway SIGKILLed after the older registration answered, restarted with the same id: the call is adopted, RTP flows both ways, each side\'s hang-up reaches the other (two calls)', { timeout: 90_000 }, async () => {
      const world = w!;
      const id = `gw-a-${world.stack.redisPrefix}`;
      for (const [user, byCaller] of [['fay', true], ['gus', false]] as const) {
        await bothRegister(world, user);
        const since = Date.now();
        const { rec, older } = await olderAnswers(world, user, since);
        const killedAt = Date.now();
        await world.stack.kill('gateway', 'SIGKILL');
        await world.stack.restart('gateway');
        await adoptedWithMedia(world, rec.id, killedAt, id);
        await mediaFlowsBothWays(world, older, killedAt);
        await hangUpAndZero(world, older, byCaller, rec.id, `F1 (ring-all) ${user}`);
      }
    });

    test('F3 (ring-all): ferry media SIGKILLed while two registrations ring: when one answers, the caller gets 503 and the answering phone a BYE, the other is cancelled; after media is back nothing is left', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'hal';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const [older, newer] = world.desks[user];
      await world.stack.kill('media', 'SIGKILL');
      await waitFor(() => world.stack.output.some((l) => l.startsWith('[gateway] ') && l.includes('media server lost')), 5000, 25, 'the gateway saw the media server go');
      const answeredAt = Date.now();
      await older.answerRinging();
      const failed = await result;
      assert.equal(failed?.status, 503, 'the caller gets 503');
      await older.waitForRequest('BYE', 5000, answeredAt);
      const cancel = await newer.waitForRequest('CANCEL', 5000, since);
      assert.ok(cancel.at >= answeredAt, 'the newer is cancelled once the answer came');
      // the call was not completed anywhere: the phone is not told so (it would show no missed call)
      assert.equal(reasonOf(cancel), 'SIP;cause=503;text="media server lost"', 'the CANCEL names the media server\'s loss');
      await waitFor(() => !newer.ringing, 2000, 10, 'the newer stopped ringing');
      const ended = await endedRecord(world, rec.id, 10_000);
      assert.equal(ended.reason, 'media-lost', events(ended));
      await restartMedia(world);
      await backToZero(world, 'F3 (ring-all)');
    });

    test('F3 (ring-all): ferry media SIGKILLed while two registrations ring and nobody answers: once the media-loss grace has passed the caller gets 503 + Retry-After and both phones are cancelled, reason media-lost; nothing left', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'ivy';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const killedAt = Date.now();
      await world.stack.kill('media', 'SIGKILL');
      const failed = (await result) as { status?: number; headers?: Map<string, string[]> } | undefined;
      const toldMs = Date.now() - killedAt;
      assert.equal(failed?.status, 503, 'the caller gets 503');
      assert.equal(failed?.headers?.get('retry-after')?.[0], '5', 'with Retry-After');
      // the grace (FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS, 1500 ms by default) + a margin for a loaded machine; FERRY_NO_ANSWER_MS is 20 s
      assert.ok(toldMs >= 1400 && toldMs < 4000, `the caller told ${toldMs} ms after the kill (grace 1500 ms)`);
      for (const desk of world.desks[user]) {
        const cancel = await desk.waitForRequest('CANCEL', 3000, killedAt);
        assert.match(reasonOf(cancel) ?? '', /media/, 'the CANCEL names the media server\'s loss');
        await waitFor(() => !desk.ringing, 2000, 10, 'the desk phone stopped ringing');
      }
      const ended = await endedRecord(world, rec.id, 5000);
      assert.equal(ended.reason, 'media-lost', events(ended));
      console.log(`# F3 (ring-all): media down while ringing: the caller got 503 ${toldMs} ms after the SIGKILL; the call ended ${ended.endedAt! - killedAt} ms after it`);
      await restartMedia(world);
      await backToZero(world, 'F3 (ring-all) nobody answers');
    });

    test('F3 (ring-all): ferry media SIGKILLed while two registrations ring and started again at once: the call\'s objects are gone, so the caller gets 503 and both phones are cancelled as soon as the gateway is back on it (or at the grace)', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'amy';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const killedAt = Date.now();
      await world.stack.kill('media', 'SIGKILL');
      const mark = world.stack.output.length;
      await world.stack.restart('media');
      const failed = await result;
      assert.equal(failed?.status, 503, 'the caller gets 503');
      const toldMs = Date.now() - killedAt;
      assert.ok(toldMs < 4000, `told ${toldMs} ms after the kill`);
      const back = world.stack.output.slice(mark).some((l) => l.startsWith('[gateway] ') && /media server (reconnected|answered)/.test(l));
      for (const desk of world.desks[user]) {
        const cancel = await desk.waitForRequest('CANCEL', 3000, killedAt);
        assert.match(reasonOf(cancel) ?? '', /media/);
        await waitFor(() => !desk.ringing, 2000, 10, 'the desk phone stopped ringing');
      }
      const ended = await endedRecord(world, rec.id, 5000);
      assert.equal(ended.reason, 'media-lost', events(ended));
      const lost = ended.timeline.find((e) => e.event === 'media-lost')?.detail ?? '';
      // the restarted server is a new session: the gateway gives up as soon as it is back on it (before the grace ran out), or at the grace if the restart took longer
      if (back && toldMs < 1500) assert.match(lost, /new session/, events(ended));
      console.log(`# F3 (ring-all): media restarted at once while ringing: the caller got 503 ${toldMs} ms after the SIGKILL (${lost})`);
      await backToZero(world, 'F3 (ring-all) restarted at once');
    });

    test('F3 (ring-all) control: the gateway\'s connection to ferry media cut while two registrations ring (ferry media alive): both keep ringing past the grace, the older answers, RTP both ways, the hang-up leaves nothing', { timeout: 60_000 }, async () => {
      const world = w!;
      const user: User = 'ben';
      await bothRegister(world, user);
      const since = Date.now();
      const { result, rec } = await dialBoth(world, user, since);
      const mark = world.stack.output.length;
      const cutAt = Date.now();
      world.cutter!.cut();
      await waitFor(() => world.stack.output.slice(mark).some((l) => l.startsWith('[gateway] ') && l.includes('media server reconnected') && l.includes('"sameSession":true')), 5000, 25, 'the gateway back on the same media session');
      // past the grace (1500 ms) and a margin: the nobody-answers scenario above was told by then
      await waitFor(() => Date.now() >= cutAt + 3000, 5000, 50, 'the grace and a margin passed');
      for (const desk of world.desks[user]) {
        assert.ok(desk.ringing, 'still ringing');
        assert.equal(requests(desk, 'CANCEL', since).length, 0, 'no CANCEL');
      }
      const [older, newer] = world.desks[user];
      await older.answerRinging();
      assert.equal(await result, undefined, 'the caller is answered');
      await newer.waitForRequest('CANCEL', 5000, since);
      const at = Date.now();
      await hears(world.caller, at, 'RTP from the older desk at the caller');
      await hears(older, at, 'RTP from the caller at the older desk');
      await hangUpAndZero(world, older, true, rec.id, 'F3 (ring-all) control');
    });
  });
});
