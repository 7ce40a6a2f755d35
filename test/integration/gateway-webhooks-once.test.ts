import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { freePort } from '../helpers/free-port';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { killAllSipp, SIPP_SCENARIO_DIR, startSipp, type SippOptions, type SippResult } from '../helpers/sipp';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { WebhookReceiverServer } from '../helpers/webhook-receiver';

/**
 * docs/webhooks.md, "Once per change": a call's events come once per change of the call, whatever the
 * SIP underneath repeats. The called party here is SIPp (a UAS on a trunk) sending two provisional
 * responses before its 200 — a 180 repeated byte for byte (a UDP retransmission), a 180 then a 183, a
 * 180 on a second early dialog (a fork downstream), a 183 with SDP then a 180 — and, with
 * FERRY_RING=all, a user's two desk phones that both answer 180. The webhook receiver gets exactly one
 * `call.ringing`, one `call.answered`, one `call.ended` (the positive control: it does get each).
 * Deliveries are at least once: a receiver that took an event but answered after the timeout (a
 * loaded one) gets it again, with the same id and body, and never a second event for the same change.
 */
const SECRET = 'webhook-once-secret-0123456789';
const PASSWORD = 'dora-once-secret';
const FLOW = ['call.ringing', 'call.answered', 'call.ended'];

describe('call events once per change: repeated and second provisionals, ring-all, redelivery', { timeout: 120_000 }, () => {
  const receiver = new WebhookReceiverServer(SECRET);
  const a = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'a' });
  /** dora's two desk phones (FERRY_RING=all rings both); they ring until the test answers for them */
  const desks = [0, 1].map(() => new SipPhone(new RtpPhone(), { user: 'dora', address: '127.0.0.2', ring: true }));
  let stack: Stack;
  let dir: string;
  let uasPort: number;

  before(async () => {
    await receiver.start();
    const pa = await a.start();
    for (const d of desks) await d.start();
    uasPort = await freePort({ protocols: ['udp'] });
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-webhooks-once-'));
    const file = path.join(dir, 'ferry.json');
    const trunk = (name: string, port: number) => ({ name, address: `127.0.0.1:${port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${port}`] });
    await writeFile(
      file,
      JSON.stringify({
        domain: 'ferry.local',
        users: [{ user: 'dora', password: PASSWORD }],
        trunks: [trunk('a', pa), trunk('uas', uasPort)],
        routes: [{ match: '9(\\d+)', to: 'trunk:uas', rewrite: '$1' }, { match: '.*', to: 'user' }],
        webhooks: [{ name: 'once', url: receiver.url, secret: SECRET, timeoutMs: 500, retryInitialMs: 100, retryMaxMs: 500 }],
      }),
    );
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: file },
      partEnv: { gateway: { FERRY_RING: 'all', FERRY_CALL_RECORD_TTL_MS: '60000' } },
    });
    const via = { host: '127.0.0.1', port: stack.sipPort };
    for (const d of desks) await d.register(via, PASSWORD);
    // the same phone with a 183 as its second provisional (SIPp reads status codes when it loads a scenario)
    const twice = await readFile(path.join(SIPP_SCENARIO_DIR, 'gateway-uas-provisionals.xml'), 'utf8');
    const second = twice.lastIndexOf('SIP/2.0 180 Ringing');
    await writeFile(path.join(dir, 'ring-then-progress.xml'), `${twice.slice(0, second)}SIP/2.0 183 Session Progress${twice.slice(second + 'SIP/2.0 180 Ringing'.length)}`);
  });

  after(async () => {
    killAllSipp();
    await stack?.stop();
    await a.close();
    for (const d of desks) await d.close();
    await receiver.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });

  /** the calls of the tests before */
  const earlier = new Set<string>();
  async function record(since: number): Promise<CallRecord> {
    const rec = await waitFor(
      async () => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.find((c) => c.createdAt >= since - 50 && !earlier.has(c.id)),
      5000,
      20,
      'the call record',
    );
    earlier.add(rec.id);
    return rec;
  }

  /** `a` calls through SIPp running `scenario`; hangs up once answered; resolves with the call id and SIPp's result */
  async function callSipp(scenario: string, keys: SippOptions['keys'] = {}): Promise<{ id: string; sipp: SippResult; rec: CallRecord }> {
    const uas = await startSipp({ scenario, localPort: uasPort, keys, timeoutS: 20 });
    await uas.ready();
    const since = Date.now();
    await a.call('sip:9100@127.0.0.1', via());
    const { id } = await record(since);
    await a.hangup();
    const sipp = await uas.done;
    assert.equal(sipp.exitCode, 0, `SIPp: ${sipp.errors}`);
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 10_000, 20, 'call.ended at the receiver');
    const rec = await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);
    return { id, sipp, rec };
  }

  /** exactly one event per change (repeats of one id allowed, as at-least-once delivery may send them) */
  function assertOnce(id: string): void {
    const got = receiver.uniqueEventsOf(id);
    assert.deepEqual(got.map((r) => r.event.type), FLOW, 'one call.ringing, one call.answered, one call.ended');
    for (const type of FLOW) {
      const ids = new Set(receiver.eventsOf(id).filter((r) => r.event.type === type).map((r) => r.event.id));
      assert.equal(ids.size, 1, `${type}: every delivery carries the one event id`);
    }
    assert.ok(receiver.eventsOf(id).every((r) => r.verified));
  }

  /** the responses SIPp sent (its message trace), e.g. ['180', '180', '200'] */
  function sent(sipp: SippResult): string[] {
    return [...sipp.messages.matchAll(/message sent[^\n]*\n+SIP\/2\.0 (\d{3})/g)].map((m) => m[1]!);
  }

  const cases: { name: string; scenario: () => string; keys?: Record<string, string>; responses: string[] }[] = [
    { name: 'a 180 repeated byte for byte (UDP retransmission)', scenario: () => 'gateway-uas-provisionals.xml', keys: { second_tag: '01' }, responses: ['180', '180', '200'] },
    { name: 'a 180 then a 183', scenario: () => path.join(dir, 'ring-then-progress.xml'), keys: { second_tag: '01' }, responses: ['180', '183', '200'] },
    { name: 'a 180 on a second early dialog (a fork downstream)', scenario: () => 'gateway-uas-provisionals.xml', keys: { second_tag: '02' }, responses: ['180', '180', '200'] },
    { name: 'a 183 with SDP then a 180', scenario: () => 'gateway-uas-early-media-then-ring.xml', responses: ['183', '180', '200'] },
  ];
  for (const c of cases) {
    test(`${c.name}: one call.ringing`, { timeout: 30_000 }, async () => {
      const { id, sipp } = await callSipp(c.scenario(), c.keys);
      assert.deepEqual(sent(sipp).filter((s) => s !== '100').slice(0, 3), c.responses, `SIPp sent ${c.responses.join(', ')}`);
      assertOnce(id);
    });
  }

  test('FERRY_RING=all: both desk phones answer 180, one answers the call: one call.ringing', { timeout: 30_000 }, async () => {
    const since = Date.now();
    const answered = a.call('sip:dora@ferry.local', via());
    await waitFor(() => desks.every((d) => d.ringing), 5000, 10, 'both desk phones ring (180 sent by each)');
    const { id } = await record(since);
    await waitFor(
      async () => (await getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`)).timeline.filter((e) => e.event === 'fork-ringing').length === 2,
      5000,
      20,
      'the gateway saw both 180s',
    );
    await desks[0]!.answerRinging();
    await answered;
    await desks[1]!.waitForRequest('CANCEL', 5000, since);
    await a.hangup();
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 10_000, 20, 'call.ended at the receiver');
    assertOnce(id);
  });

  test('a receiver that took call.ringing but answered too late gets it again: same id, same body, no second event', { timeout: 30_000 }, async () => {
    receiver.mode = 'take-and-hang';
    const uas = await startSipp({ scenario: 'gateway-uas-provisionals.xml', localPort: uasPort, keys: { second_tag: '01' }, timeoutS: 20 });
    await uas.ready();
    const since = Date.now();
    await a.call('sip:9100@127.0.0.1', via());
    const { id } = await record(since);
    // (waits for this call's event: a late repeat of an earlier call's event may be taken first)
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ringing'), 10_000, 10, 'call.ringing taken (and left unanswered)');
    receiver.mode = 'ok';
    await a.hangup();
    assert.equal((await uas.done).exitCode, 0);
    await waitFor(() => receiver.eventsOf(id).some((r) => r.event.type === 'call.ended'), 10_000, 20, 'call.ended at the receiver');
    const ringing = receiver.eventsOf(id).filter((r) => r.event.type === 'call.ringing');
    assert.ok(ringing.length >= 2, `call.ringing sent again after the timeout (${ringing.length} POSTs)`);
    assert.equal(ringing[0]!.attempt, 1);
    assert.ok(ringing[1]!.attempt >= 2, 'the repeat is a retry of the same delivery');
    assert.ok(ringing.every((r) => r.body === ringing[0]!.body && r.eventId === ringing[0]!.event.id), 'same id and body');
    assertOnce(id);
  });
});
