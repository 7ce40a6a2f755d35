import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Ringing a user's registrations at once (docs/gateway.md, "A call", step 2) gives every registration
 * beyond the first its own endpoint (ports) for as long as the call rings; FERRY_RING_MAX_FORKS_PER_SOURCE
 * bounds how many such registrations the calls of one caller source ring at once (docs/security.md,
 * "Ringing all registrations"). Here it is 2: the first call from a source to a user with three desk
 * phones rings all three; a second call from the same source while the first rings gets no more, so it
 * rings the newest registration only (one at a time); a call from another source rings all three of its
 * user's; once the first call is over its source rings all three again. A blind transfer to such a user
 * counts against the source of the party that leaves the call, the same way. Real ferry sip, gateway and
 * ferry media, scripted UDP phones; afterwards ferry media holds nothing.
 */
const PASSWORD = 'ring-limit-secret';
const USERS = ['amy', 'ben', 'cat'] as const;
type User = (typeof USERS)[number];
const PER_SOURCE = 2;

describe('FERRY_RING_MAX_FORKS_PER_SOURCE: one caller source cannot multiply the endpoints ring-all holds', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  /** two trunk phones on one source address (127.0.0.1), and one on another (127.0.0.3) */
  const callerA1 = new SipPhone(new RtpPhone(), { user: 'a1' });
  const callerA2 = new SipPhone(new RtpPhone(), { user: 'a2' });
  const callerB = new SipPhone(new RtpPhone(), { user: 'b', address: '127.0.0.3' });
  /** a trunk phone on 127.0.0.1 that answers at once (dialled as 8<number>): the party a transfer takes out */
  const partyA = new SipPhone(new RtpPhone(), { user: 'a' });
  /** three desk phones per user, [oldest .. newest]; they ring until cancelled */
  const desks = Object.fromEntries(USERS.map((u) => [u, [0, 1, 2].map(() => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, SipPhone[]>;

  before(async () => {
    const ports = [await callerA1.start(), await callerA2.start(), await callerB.start(), await partyA.start()];
    for (const trio of Object.values(desks)) for (const desk of trio) await desk.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ringlimit-'));
    const file = path.join(dir, 'ferry.json');
    const hosts = ['127.0.0.1', '127.0.0.1', '127.0.0.3', '127.0.0.1'];
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: USERS.map((user) => ({ user, password: PASSWORD })),
      trunks: ports.map((port, i) => ({ name: `t${i}`, address: `${hosts[i]}:${port}`, transport: 'udp', acceptFrom: [`${hosts[i]}:${port}`] })),
      routes: [{ match: '8(\\d+)', to: 'trunk:t3', rewrite: '$1' }, { match: '.*', to: 'user' }],
    }));
    stack = await startStack({
      partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '30000', FERRY_RING: 'all', FERRY_RING_MAX_FORKS_PER_SOURCE: String(PER_SOURCE) } },
    });
    for (const u of USERS) for (const desk of desks[u]) await desk.register({ host: '127.0.0.1', port: stack.sipPort }, PASSWORD);
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    for (const phone of [callerA1, callerA2, callerB, partyA, ...Object.values(desks).flat()]) await phone.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const invites = (phone: SipPhone, since: number): number => phone.received.filter((m) => m.method === 'INVITE' && m.at >= since).length;
  const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');

  /** `from` dials `user`; resolves once `ringing` of its desk phones ring, with the call's outcome and record id */
  async function dial(from: SipPhone, user: User, ringing: SipPhone[]): Promise<{ result: Promise<{ status?: number } | undefined>; id: string }> {
    const known = new Set((await calls()).map((c) => c.id));
    const result = from.call(`sip:${user}@ferry.local`, via()).then(() => undefined, (err: { status?: number }) => err);
    await waitFor(() => ringing.every((d) => d.ringing), 5000, 10, `${ringing.length} of ${user}'s desk phones ring`);
    const id = (await waitFor(async () => (await calls()).find((c) => !known.has(c.id)), 5000, 25, 'the new call')).id;
    return { result, id };
  }

  async function cancel(from: SipPhone, call: { result: Promise<{ status?: number } | undefined>; id: string }): Promise<void> {
    assert.equal(await from.cancel(), 200);
    assert.equal((await call.result)?.status, 487);
    await waitFor(async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).state === 'ended', 10_000, 25, 'the call ended');
  }

  test('S1: a second call from the source rings only the newest registration while its first rings three; another source rings all three; the source rings all three again once its first call is over', { timeout: 60_000 }, async () => {
    const since = Date.now();
    const first = await dial(callerA1, 'amy', desks.amy);
    for (const desk of desks.amy) assert.equal(invites(desk, since), 1, 'each of amy\'s phones gets one INVITE');

    // the same source, its budget (2 beyond the first registration) taken: ben's newest rings alone
    const second = await dial(callerA2, 'ben', [desks.ben[2]!]);
    // another source has its own budget: all three of cat's ring (and the positive control for "ben's others got nothing")
    const third = await dial(callerB, 'cat', desks.cat);
    assert.equal(invites(desks.ben[2]!, since), 1);
    assert.equal(invites(desks.ben[0]!, since), 0, 'ben\'s oldest phone was not rung at once');
    assert.equal(invites(desks.ben[1]!, since), 0, 'ben\'s middle phone was not rung at once');
    const secondRecord = await getJson<CallRecord>(stack.httpPort, `/api/calls/${second.id}`);
    assert.ok(secondRecord.timeline.some((e) => e.event === 'ring-all-limited' && /^1 of 3 registrations at once \(per-source limit\)$/.test(e.detail ?? '')), events(secondRecord));
    const thirdRecord = await getJson<CallRecord>(stack.httpPort, `/api/calls/${third.id}`);
    assert.ok(!thirdRecord.timeline.some((e) => e.event === 'ring-all-limited'), events(thirdRecord));

    await cancel(callerA2, second);
    await cancel(callerB, third);
    await cancel(callerA1, first);

    // the first call over, its source's budget is back: all three of ben's ring
    const again = Date.now();
    const fourth = await dial(callerA2, 'ben', desks.ben);
    for (const desk of desks.ben) assert.equal(invites(desk, again), 1, 'each of ben\'s phones gets one INVITE');
    await cancel(callerA2, fourth);
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
  });

  test('S2: a blind transfer to a user rings only the newest registration while the leaving party\'s source has its budget taken', { timeout: 60_000 }, async () => {
    const since = Date.now();
    // 127.0.0.1 (callerA1) takes its source's whole budget ringing amy's three phones
    const ringing = await dial(callerA1, 'amy', desks.amy);
    // callerB (127.0.0.3) calls the trunk phone on 127.0.0.1, which answers; the API transfers callerB to cat, the trunk phone leaves
    const known = new Set((await calls()).map((c) => c.id));
    await callerB.call('sip:8200@ferry.local', via());
    const id = (await waitFor(async () => (await calls()).find((c) => !known.has(c.id)), 5000, 25, 'the trunk call')).id;
    const transfer = fetch(`http://127.0.0.1:${stack.httpPort}/api/calls/${id}/transfer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: 'cat', keep: 'caller' }),
    });
    await waitFor(() => desks.cat[2]!.ringing, 10_000, 10, 'cat\'s newest desk phone rings');
    assert.equal(invites(desks.cat[0]!, since), 0, 'cat\'s oldest phone was not rung at once');
    assert.equal(invites(desks.cat[1]!, since), 0, 'cat\'s middle phone was not rung at once');
    await desks.cat[2]!.answerRinging();
    const res = await transfer;
    assert.equal(res.status, 200, await res.clone().text());
    // the timeline is stored once the transfer is over
    const r = await waitFor(async () => {
      const rec = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
      return rec.timeline.some((e) => e.event === 'transferred' || e.event === 'transfer-failed') ? rec : undefined;
    }, 5000, 25, 'the transfer\'s outcome in the record');
    assert.ok(r.timeline.some((e) => e.event === 'ring-all-limited' && e.detail === 'transfer: 1 of 3 registrations at once (per-source limit)'), events(r));
    const hungUp = Date.now();
    await callerB.hangup();
    await desks.cat[2]!.waitForRequest('BYE', 5000, hungUp);
    for (const p of [callerB, partyA, desks.cat[2]!]) await p.media.stopMedia();
    await cancel(callerA1, ringing);
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
  });
});
