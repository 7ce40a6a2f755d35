import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { warmChromium } from '../helpers/chromium';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * FERRY_RING=all with a real webphone (docs/gateway.md, "A call", step 2): carol has the gateway's
 * webphone page open in Chromium and a desk phone (a scripted UDP SIP/RTP phone that rings until the test
 * answers for it). A phone calls carol: the page and the desk phone ring at once. When the desk phone
 * answers, the page stops ringing (JsSIP got the CANCEL) and audio flows between the caller and the desk
 * phone; when the page answers, the desk phone gets the CANCEL with `Reason: SIP;cause=200;text="Call
 * completed elsewhere"` and audio flows between the caller and the page. A second page (a WebRTC caller)
 * calling carol reaches her desk phone the same way. Everything is released after.
 */
const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';

describe('a call to a user with a webphone tab and a desk phone rings both; the first to answer gets it', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let carol: GatewayWebphone;
  /** a webphone page that calls carol (a WebRTC caller) */
  let alice: GatewayWebphone;
  /** the calling phone (a trunk by its address) */
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  /** carol's desk phone, on another address than the webphone's connection */
  const desk = new SipPhone(new RtpPhone(), { user: 'carol', address: '127.0.0.2', ring: true });

  before(async () => {
    const callerPort = await caller.start();
    await desk.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-wpringall-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'carol', password: 'carol-ring' }, { user: 'alice', password: 'alice-ring' }],
      trunks: [{ name: 'caller', address: `127.0.0.1:${callerPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${callerPort}`] }],
      routes: [{ match: '.*', to: 'user' }],
    }));
    warmChromium();
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_RING: 'all' } } });
    await desk.register({ host: '127.0.0.1', port: stack.sipPort }, 'carol-ring');
    carol = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'carol', password: 'carol-ring' });
    alice = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: 'alice-ring' });
    const regs = await getJson<{ registrations: { contact: string }[] }>(stack.httpPort, '/api/registrations?user=carol');
    assert.equal(regs.registrations.length, 2, 'the page and the desk phone are registered');
  });

  after(async () => {
    await carol?.close().catch(() => undefined);
    await alice?.close().catch(() => undefined);
    await caller.close();
    await desk.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
  const mediaZero = (): Promise<unknown> => waitFor(async () => {
    const s = await getJson<{ pipelines: number; elements: number; boundPorts: number }>(stack.mediaPort, '/stats');
    return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
  }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
  const hears = (phone: SipPhone, since: number, what: string): Promise<unknown> =>
    waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 50, 15_000, 100, what);

  /** the caller dials carol; resolves once the page and the desk phone both ring */
  async function bothRing(): Promise<{ result: Promise<{ status?: number } | undefined>; known: Set<string> }> {
    const known = new Set((await calls()).map((c) => c.id));
    const result = caller.call('sip:carol@ferry.local', via()).then(() => undefined, (err: { status?: number }) => err);
    await carol.waitCallState('ringing-in', 15_000);
    await waitFor(() => desk.ringing, 5000, 10, 'the desk phone rings');
    return { result, known };
  }

  const theCall = async (known: Set<string>): Promise<CallRecord> => waitFor(async () => (await calls()).find((c) => !known.has(c.id)), 5000, 25, 'the call');

  test('the desk phone answers: the page stops ringing (CANCEL), audio flows between the caller and the desk phone; the hang-up releases everything', { timeout: 50_000 }, async () => {
    const since = Date.now();
    const { result, known } = await bothRing();
    await desk.answerRinging();
    assert.equal(await result, undefined, 'the caller is answered');
    await carol.waitCallState('failed', 5000);
    assert.equal(await carol.message(), 'Answered on another of your devices.', 'JsSIP saw the CANCEL and its Reason (answered elsewhere)');
    const answeredAt = Date.now();
    await hears(caller, answeredAt, 'RTP from the desk phone at the caller');
    await hears(desk, answeredAt, 'RTP from the caller at the desk phone');
    const r = await theCall(known);
    assert.deepEqual([r.state, r.callee.kind, r.callee.uri], ['answered', 'rtp', desk.contact], events(r));
    assert.equal(r.timeline.filter((e) => e.event === 'fork-cancelled').length, 1, events(r));
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 1 && s.elements === 2;
    }, 5000, 25, 'the page\'s WebRtcEndpoint is released: the caller\'s and the desk phone\'s endpoints are left');
    const hangupAt = Date.now();
    await caller.hangup();
    await caller.media.stopMedia();
    await desk.waitForRequest('BYE', 5000, hangupAt);
    await desk.media.stopMedia();
    await mediaZero();
    assert.ok(desk.received.filter((m) => m.method === 'CANCEL' && m.at >= since).length === 0, 'the desk phone that answered got no CANCEL');
  });

  test('the page answers: the desk phone gets CANCEL with Reason "Call completed elsewhere" and stops ringing; audio flows between the caller and the page', { timeout: 50_000 }, async () => {
    const since = Date.now();
    const { result, known } = await bothRing();
    await carol.answer();
    assert.equal(await result, undefined, 'the caller is answered');
    await carol.waitCallState('connected', 10_000);
    const cancel = await desk.waitForRequest('CANCEL', 5000, since);
    assert.equal(cancel.message.headers.get('reason')?.[0], COMPLETED_ELSEWHERE);
    await desk.waitForRequest('ACK', 5000, since); // its 487, ACKed
    assert.ok(!desk.ringing && !desk.inCall, 'the desk phone stopped ringing');
    const answeredAt = Date.now();
    const before = (await carol.rtpStats()).received;
    await waitFor(async () => (await carol.rtpStats()).received > before + 50, 15_000, 100, 'RTP from the caller at the page');
    await hears(caller, answeredAt, 'RTP from the page at the caller');
    const r = await theCall(known);
    assert.deepEqual([r.state, r.callee.kind], ['answered', 'webrtc'], events(r));
    assert.ok(r.timeline.some((e) => e.event === 'fork-cancelled' && e.detail?.startsWith(desk.contact)), events(r));
    await caller.hangup();
    await caller.media.stopMedia();
    await carol.waitCallState('ended', 5000);
    await mediaZero();
  });

  test('a webphone calls carol: her page and her desk phone ring; the desk phone answers, her page stops ringing, audio flows between the two', { timeout: 50_000 }, async () => {
    const since = Date.now();
    const known = new Set((await calls()).map((c) => c.id));
    await alice.dial('carol');
    await carol.waitCallState('ringing-in', 15_000);
    await waitFor(() => desk.ringing, 5000, 10, 'the desk phone rings');
    await desk.answerRinging();
    await alice.waitCallState('connected', 10_000);
    await carol.waitCallState('failed', 5000);
    assert.equal(await carol.message(), 'Answered on another of your devices.', 'JsSIP saw the CANCEL and its Reason (answered elsewhere)');
    const before = (await alice.rtpStats()).received;
    await waitFor(async () => (await alice.rtpStats()).received > before + 50, 15_000, 100, 'RTP from the desk phone at the calling page');
    await hears(desk, since, 'RTP from the calling page at the desk phone');
    const r = await theCall(known);
    assert.deepEqual([r.state, r.caller.kind, r.callee.kind, r.callee.uri], ['answered', 'webrtc', 'rtp', desk.contact], events(r));
    await waitFor(async () => {
      const s = await getJson<{ pipelines: number; elements: number }>(stack.mediaPort, '/stats');
      return s.pipelines === 1 && s.elements === 2;
    }, 5000, 25, 'the calling page\'s and the desk phone\'s endpoints are left');
    const hangupAt = Date.now();
    await alice.hangup();
    await desk.waitForRequest('BYE', 5000, hangupAt);
    await desk.media.stopMedia();
    await mediaZero();
  });
});
