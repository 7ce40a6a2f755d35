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
 * `POST /api/calls` counts against the ring-all fork budget as INVITEs do (docs/api.md, "Place a call";
 * docs/gateway.md, "A call", step 2): every call the API starts is one source ("api") for
 * FERRY_RING_MAX_FORKS_PER_SOURCE (here 2) and counts with every call for FERRY_RING_MAX_FORKS (here 3).
 * A call that would ring more registrations of its parties beyond their first than is left is refused,
 * nothing created: 429 with `limit: "per-source"` when the API's own share is used up, 503 with
 * `limit: "total"` when the gateway's is, both with Retry-After. A registration made while a call rings
 * does not join the ring when the budget has no room. Once the calls are over the budget is back whole.
 * Real ferry sip, gateway and ferry media; scripted UDP phones; afterwards ferry media holds nothing.
 */
const PASSWORD = 'api-budget-secret';
const USERS = ['amy', 'ben', 'cat'] as const;
type User = (typeof USERS)[number];

describe('POST /api/calls and the ring-all fork budget', { timeout: 180_000 }, () => {
  let stack: Stack;
  let dir: string;
  /** a trunk phone on another source (127.0.0.3) whose INVITEs have their own per-source budget */
  const sipCaller = new SipPhone(new RtpPhone(), { user: 'sipcaller', address: '127.0.0.3' });
  /** party B of the API calls (never reached here: no party A answers) */
  const partyB = new SipPhone(new RtpPhone(), { user: 'b' });
  /** three desk phones per user [oldest .. newest]; ben's newest registers only while ben's ring */
  const desks = Object.fromEntries(USERS.map((u) => [u, [0, 1, 2].map(() => new SipPhone(new RtpPhone(), { user: u, address: '127.0.0.2', ring: true }))])) as Record<User, SipPhone[]>;

  before(async () => {
    const callerPort = await sipCaller.start();
    const bPort = await partyB.start();
    for (const list of Object.values(desks)) for (const desk of list) await desk.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-apibudget-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: USERS.map((user) => ({ user, password: PASSWORD })),
      trunks: [
        { name: 'sipcaller', address: `127.0.0.3:${callerPort}`, transport: 'udp', acceptFrom: [`127.0.0.3:${callerPort}`] },
        { name: 'b', address: `127.0.0.1:${bPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${bPort}`] },
      ],
      routes: [{ match: '8(\\d+)', to: 'trunk:b', rewrite: '$1' }, { match: '.*', to: 'user' }],
    }));
    stack = await startStack({
      partEnv: {
        gateway: {
          FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: '30000', FERRY_RING: 'all',
          FERRY_RING_MAX_FORKS_PER_SOURCE: '2', FERRY_RING_MAX_FORKS: '3',
        },
      },
    });
    // amy and cat: three desk phones each; ben: two (its third registers during a ring)
    for (const u of ['amy', 'cat'] as const) for (const desk of desks[u].slice(0, 3)) await desk.register(via(), PASSWORD);
    for (const desk of desks.ben.slice(0, 2)) await desk.register(via(), PASSWORD);
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    for (const phone of [sipCaller, partyB, ...Object.values(desks).flat()]) await phone.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function via(): { host: string; port: number } {
    return { host: '127.0.0.1', port: stack.sipPort };
  }
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const record = (id: string): Promise<CallRecord> => getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
  const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
  const invites = (phone: SipPhone, since: number): number => phone.received.filter((m) => m.method === 'INVITE' && m.at >= since).length;
  const mediaStats = (): Promise<{ pipelines: number; elements: number; boundPorts: number }> => getJson(stack.mediaPort, '/stats');
  const api = (method: string, url: string, body?: unknown): Promise<Response> => fetch(`http://127.0.0.1:${stack.httpPort}${url}`, {
    method,
    headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });

  /** an API call with party A `a`; resolves once `ringing` ring, with its id */
  async function originate(a: User, ringing: SipPhone[]): Promise<string> {
    const res = await api('POST', '/api/calls', { a, b: '8100' });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => ringing.every((d) => d.ringing), 10_000, 10, `${ringing.length} of ${a}'s desk phones ring`);
    return id;
  }

  /** an API call with party A `a` that is refused: the status and its JSON body */
  async function refused(a: User, status: number): Promise<{ error: string; limit: string; registrations: number }> {
    const before = (await calls()).length;
    const res = await api('POST', '/api/calls', { a, b: '8100' });
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.equal((await calls()).length, before, 'no call record was made');
    return JSON.parse(text) as { error: string; limit: string; registrations: number };
  }

  async function hangUpApi(id: string, ringing: SipPhone[], since: number): Promise<void> {
    const res = await api('DELETE', `/api/calls/${id}`);
    assert.equal(res.status, 200, await res.clone().text());
    for (const desk of ringing) await desk.waitForRequest('CANCEL', 5000, since);
    await waitFor(async () => (await record(id)).state === 'ended', 10_000, 25, 'the API call ended');
  }

  test('S1: the API is one source: a second API call past FERRY_RING_MAX_FORKS_PER_SOURCE is refused 429 and nothing rings; past FERRY_RING_MAX_FORKS 503; within them it rings all; a registration made while the budget is used up does not join; afterwards the budget is whole again and nothing is left', { timeout: 90_000 }, async () => {
    const since = Date.now();
    // amy's three ring: the API holds 2 (its whole per-source share)
    const first = await originate('amy', desks.amy.slice(0, 3));
    const pipelines = (await mediaStats()).pipelines;
    assert.equal(pipelines, 1);
    // ben's two would need 1 more: refused, per-source
    const perSource = await refused('ben', 429);
    assert.equal(perSource.limit, 'per-source');
    assert.equal(perSource.registrations, 1);
    assert.match(perSource.error, /FERRY_RING_MAX_FORKS_PER_SOURCE/);
    assert.equal((await mediaStats()).pipelines, pipelines, 'no pipeline was made for the refused call');
    for (const desk of desks.ben) assert.equal(invites(desk, since), 0, 'none of ben\'s phones was rung');
    await hangUpApi(first, desks.amy.slice(0, 3), since);
    await waitFor(async () => (await mediaStats()).pipelines === 0, 5000, 25, 'the first call\'s pipeline released');

    // a SIP caller on another source takes 2 of the gateway's 3 with cat's three phones
    const sipCall = sipCaller.call('sip:cat@ferry.local', via()).then(() => undefined, (err: { status?: number }) => err);
    await waitFor(() => desks.cat.slice(0, 3).every((d) => d.ringing), 5000, 10, 'cat\'s three phones ring');
    // amy's three would need 2: the API has its 2, the gateway 1 left: refused, total
    const amySince = Date.now();
    const total = await refused('amy', 503);
    assert.equal(total.limit, 'total');
    assert.equal(total.registrations, 2);
    assert.match(total.error, /FERRY_RING_MAX_FORKS\b/);
    for (const desk of desks.amy) assert.equal(invites(desk, amySince), 0, 'none of amy\'s phones was rung');
    // ben's two need 1: it fits (the positive control of both refusals)
    const benSince = Date.now();
    const second = await originate('ben', desks.ben.slice(0, 2));
    // the gateway's 3 are taken now: ben's new device registered during the ring is not rung
    const fresh = desks.ben[2]!;
    await fresh.register(via(), PASSWORD);
    const limited = await waitFor(async () => {
      const r = await record(second);
      return r.timeline.some((e) => e.event === 'ring-all-limited') ? r : undefined;
    }, 5000, 25, 'the new registration turned away');
    assert.ok(limited.timeline.some((e) => e.event === 'ring-all-limited' && e.detail === `caller: ${fresh.contact} registered while ringing: not rung (total limit)`), events(limited));
    assert.equal(invites(fresh, benSince), 0, 'the device registered while the budget was used up was not rung');

    // everything over: the budget is whole again (amy's three ring from the API), nothing is left behind
    assert.equal(await sipCaller.cancel(), 200);
    assert.equal((await sipCall)?.status, 487);
    await hangUpApi(second, desks.ben.slice(0, 2), benSince);
    await waitFor(async () => {
      const s = await mediaStats();
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
    // the API's whole share (2) is needed: a single one still held would have it refused
    const lastSince = Date.now();
    const last = await originate('amy', desks.amy.slice(0, 3));
    for (const desk of desks.amy.slice(0, 3)) assert.equal(invites(desk, lastSince), 1, 'one INVITE each');
    await hangUpApi(last, desks.amy.slice(0, 3), lastSince);
    await waitFor(async () => {
      const s = await mediaStats();
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
    assert.equal(invites(fresh, benSince), 0, 'the device registered while the budget was used up was never rung');
  });
});
