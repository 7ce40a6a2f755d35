import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BaresipEvent, BaresipPhone } from '../helpers/baresip-phone';
import type { GatewayWebphone } from '../helpers/gateway-webphone';
import { BaresipWebphoneWorld, waitRtpBothWays } from '../helpers/baresip-webphone-world';
import { getJson, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * baresip as the desk phone a real user has, against the three ferry processes and the gateway's own
 * webphone page in real Chromium. baresip registers as user 1001 with digest authentication, sends a
 * tone, sends RTCP SR every 5 s and an RTCP BYE right after its SIP BYE; the calls are held past one
 * RTCP interval so its reports are seen (and do not disturb the call). ferry media runs with
 * FERRY_MEDIA_DEAD_MS at 7 s (above baresip's 5 s RTCP interval, below the production 15 s so the hold
 * need not last as long), and baresip's hold stops RTP both ways for longer than that: only RTCP
 * (baresip's every 5 s, the browser's) and the hold rules keep the call up, as with a real desk phone.
 * (While the phone holds, ferry media also puts the browser's leg on the hold rule, because the
 * endpoint it is connected to is held: test/lifecycle/s11-hold-both-legs-chromium.test.ts holds at 3 s.)
 */
const DEAD_MS = 7_000;
const DESK = { user: '1001', password: 'desk-baresip-secret' };
const ALICE = { user: 'alice', password: 'alice-baresip-secret' };

describe('baresip desk phone <-> Chromium webphone through the gateway', { timeout: 180_000 }, () => {
  const world = new BaresipWebphoneWorld({
    dirPrefix: 'ferry-baresip-e2e-',
    desk: { ...DESK, displayName: 'Desk phone (baresip)' },
    alice: ALICE,
    partEnv: { media: { FERRY_MEDIA_DEAD_MS: String(DEAD_MS) } },
    phone: (stack) => ({ registrar: `127.0.0.1:${stack.sipPort}` }),
  });
  let stack: Stack;
  let phone: BaresipPhone;
  let alice: GatewayWebphone;

  const media = () => world.media();
  const phoneLeg = () => world.phoneLeg();
  const liveCalls = () => world.liveCalls();
  const rtcpReports = (since: number): BaresipEvent[] => phone.events.filter((e) => e.type === 'CALL_RTCP' && e.at >= since);
  const diagnose = (err: unknown): Error => world.diagnose(err);

  /** media both ways, counted at the browser (getStats) and at the phone's RtpEndpoint in ferry media, and baresip's RTCP */
  async function assertAudioBothWays(callStart: number): Promise<void> {
    const leg = await waitRtpBothWays(alice, phoneLeg);
    assert.ok(leg.packetsFromPeer > 100 && leg.packetsToPeer > 100, JSON.stringify(leg));
    // baresip reports every 5 s; it emits CALL_RTCP for each report it receives with its own counts
    // baresip sends an SR every 5 s and emits CALL_RTCP with its own count (tx.sent) and the count in
    // the report it got from ferry media (rx.sent) when one arrives
    const sentBoth = (e: BaresipEvent): boolean => {
      const s = e.rtcp_stats as { tx?: { sent?: number }; rx?: { sent?: number } } | undefined;
      return (s?.tx?.sent ?? 0) > 0 && (s?.rx?.sent ?? 0) > 0;
    };
    const report = await phone.waitEvent((e) => e.type === 'CALL_RTCP' && e.at >= callStart && sentBoth(e), 12_000, 'an RTCP report with packets both ways');
    console.log(`# baresip RTCP at +${report.at - callStart} ms: ${JSON.stringify(report.rtcp_stats)}; phone leg in ferry media: ${leg.packetsFromPeer} from / ${leg.packetsToPeer} to the phone`);
  }

  /** alice dials the desk phone, baresip answers on its own, both see the call up: when it started and its record */
  async function webphoneCallsDesk(): Promise<{ callStart: number; call: CallRecord }> {
    const callStart = Date.now();
    await alice.dial(DESK.user);
    await phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 15_000, 'CALL_ESTABLISHED (auto-answer)');
    await alice.waitCallState('connected', 10_000);
    return { callStart, call: (await liveCalls())[0]! };
  }

  async function assertReleased(): Promise<void> {
    await waitFor(async () => {
      const m = await media();
      return m.pipelines === 0 && m.elements === 0 && m.boundPorts === 0;
    }, 3000, 25, 'pipeline, elements and ports released in ferry media');
    await waitFor(async () => (await liveCalls()).length === 0, 3000, 25, 'no live call at the gateway');
  }

  before(async () => {
    await world.start();
    ({ stack, phone, alice } = world);
  });

  afterEach(async () => {
    // a failed test must not leave a call up for the next one
    await world.hangUpLeftover();
  });

  after(async () => {
    await world.stop();
  });

  test('baresip calls the webphone, audio both ways, baresip hangs up: webphone sees the end < 1 s, all released', async () => {
    try {
      const callStart = Date.now();
      const dialed = await phone.command('dial', `sip:${ALICE.user}@127.0.0.1:${stack.sipPort}`);
      assert.ok(dialed.ok, `dial: ${dialed.data}`);
      await alice.waitCallState('ringing-in', 15_000);
      await alice.answer();
      await alice.waitCallState('connected', 10_000);
      await phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 10_000, 'CALL_ESTABLISHED');
      const call = (await liveCalls())[0]!;
      assert.equal(call.caller.kind, 'rtp', 'the caller leg is the phone (plain RTP)');
      assert.equal(call.callee.kind, 'webrtc');
      await assertAudioBothWays(callStart);
      assert.equal(await alice.callState(), 'connected', 'RTCP reports did not disturb the call');

      const hangupAt = Date.now();
      const r = await phone.command('hangup');
      assert.ok(r.ok, `hangup: ${r.data}`);
      await alice.waitCallState('ended', 3000);
      const shownAt = (await alice.endedAt())!;
      const latency = shownAt - hangupAt;
      console.log(`# baresip hang-up -> webphone shows the end: ${latency} ms`);
      assert.ok(latency < 1000, `the webphone saw the end ${latency} ms after baresip hung up`);
      assert.match(await alice.message(), /other side hung up/);
      await assertReleased();
      const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      assert.equal(ended.state, 'ended');
      // baresip's hang-up is three signals at once (SIP BYE, RTCP BYE, its RTP socket closed, so ICMP
      // port-unreachable answers the next packet): whichever reaches ferry first names the end
      assert.ok(['sip-bye', 'rtcp-bye', 'icmp-unreachable'].includes(ended.reason!), `ended by ${ended.reason}`);
      await phone.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= hangupAt, 2000, 'CALL_CLOSED at the phone');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('the webphone calls baresip (auto-answer), audio both ways, webphone hangs up: baresip gets the BYE, all released', async () => {
    try {
      const { callStart, call } = await webphoneCallsDesk();
      assert.equal(call.caller.kind, 'webrtc');
      assert.equal(call.callee.kind, 'rtp');
      assert.match(call.callee.uri, new RegExp(`^sip:1001[^@]*@127\\.0\\.0\\.1:${phone.sipPort}\\b`), 'routed to the Contact baresip registered');
      await assertAudioBothWays(callStart);
      assert.ok(rtcpReports(callStart).length >= 1);

      const hangupAt = await alice.hangup();
      const closed = await phone.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= callStart, 3000, 'CALL_CLOSED at the phone');
      const latency = closed.at - hangupAt;
      console.log(`# webphone hang-up -> baresip closes the call on the BYE: ${latency} ms`);
      assert.ok(latency < 1000, `baresip saw the end ${latency} ms after the webphone hung up`);
      assert.match(closed.param ?? '', /reset by peer/i, 'baresip closed the call because the other side sent BYE');
      assert.ok(phone.log.some((l) => /session closed: Connection reset by peer/.test(l)), 'baresip logged the BYE');
      await assertReleased();
      const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      assert.equal(ended.state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });
  test('baresip mutes, then holds longer than FERRY_MEDIA_DEAD_MS, resumes: the call survives; then it is switched off (SIGTERM): webphone sees the end < 1 s', async () => {
    try {
      const { callStart, call } = await webphoneCallsDesk();
      await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) > 50, 10_000, 100, 'RTP from the phone');

      // mute: baresip keeps sending RTP (µ-law silence); the call goes on and packets keep coming
      assert.ok((await phone.command('mute')).ok);
      const mutedFrom = (await phoneLeg())!.packetsFromPeer;
      // > 100 packets is over 2 s of muted RTP at 50 packets/s: wait for them instead of a fixed 4 s
      const afterMute = await waitFor(async () => {
        const n = (await phoneLeg())?.packetsFromPeer ?? 0;
        return n - mutedFrom > 100 ? n : undefined;
      }, 10_000, 100, 'RTP from the phone while muted');
      assert.ok(afterMute - mutedFrom > 100, `RTP kept flowing while muted: ${afterMute - mutedFrom} packets`);
      assert.equal(await alice.callState(), 'connected', 'mute did not end the call');
      assert.ok((await phone.command('mute')).ok);

      // hold: sendonly re-INVITE, RTP stops both ways for longer than FERRY_MEDIA_DEAD_MS
      assert.ok((await phone.command('hold')).ok);
      await alice.waitCallState('held by the other side', 5000);
      // the phone's RTP stops (packets already in flight drain): two readings 300 ms apart agree
      let last = -1;
      const heldFrom = await waitFor(async () => {
        const now = (await phoneLeg())!.packetsFromPeer;
        const settled = now === last;
        last = now;
        return settled ? now + 1 : 0; // +1: a truthy count
      }, 5000, 300, 'RTP from the phone stopping on hold') - 1;
      await new Promise((r) => setTimeout(r, DEAD_MS + 2000));
      const leg = await phoneLeg();
      assert.ok(leg, 'the phone leg still exists after the hold outlasted FERRY_MEDIA_DEAD_MS');
      assert.ok(leg.packetsFromPeer - heldFrom < 10, `no RTP from the phone while held (positive control for the silence): ${leg.packetsFromPeer - heldFrom}`);
      assert.equal((await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).state, 'answered', 'the held call is still up');
      assert.equal(await alice.callState(), 'held by the other side');

      assert.ok((await phone.command('resume')).ok);
      await alice.waitCallState('connected', 5000);
      const resumedFrom = (await phoneLeg())!.packetsFromPeer;
      await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) - resumedFrom > 50, 5000, 100, 'RTP from the phone again after resume');
      const s0 = await alice.rtpStats();
      await waitFor(async () => (await alice.rtpStats()).received - s0.received > 50, 5000, 100, 'the browser receives again after resume');

      // the phone is switched off cleanly: baresip sends BYE (and RTCP BYE) before it exits
      const offAt = Date.now();
      await phone.stop();
      await alice.waitCallState('ended', 3000);
      const latency = (await alice.endedAt())! - offAt;
      console.log(`# baresip SIGTERM -> webphone shows the end: ${latency} ms`);
      assert.ok(latency < 1000, `the webphone saw the end ${latency} ms after baresip was switched off`);
      await assertReleased();
      const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      // baresip's hang-up is three signals at once (SIP BYE, RTCP BYE, its RTP socket closed, so ICMP
      // port-unreachable answers the next packet): whichever reaches ferry first names the end
      assert.ok(['sip-bye', 'rtcp-bye', 'icmp-unreachable'].includes(ended.reason!), `ended by ${ended.reason}`);
    } catch (err) {
      throw diagnose(err);
    }
  });
});
