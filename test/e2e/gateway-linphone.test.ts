import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dominantFrequency, rms } from '../helpers/audio-tone';
import { warmChromium } from '../helpers/chromium';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { LINPHONE_SIP_PORT, LinphonePhone } from '../helpers/linphone-phone';
import type { NetNamespace } from '../helpers/netns';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { carriesPair, closeAudioProbe, dominates, installAudioProbe, probeFrames } from '../helpers/webphone-audio-probe';
import { waitRtpBothWays, type MediaStats, type PhoneLegStats } from '../helpers/baresip-webphone-world';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * linphone (linphonec 5.1) as a second real desk phone, against the three ferry processes and the
 * gateway's webphone page in real Chromium. linphone runs in its own network namespace whose only route
 * goes out of a veth to the root namespace: it writes that interface's address in its Contact and SDP
 * `c=`, never 127.0.0.1. So ferry sip listens on 0.0.0.0 and advertises the veth's root-side address,
 * and ferry media binds its RTP there (the browser's ICE stays on loopback).
 *
 * What linphone does that baresip does not: it offers nine payload types (dynamic codecs, G.711, three
 * telephone-event rates) with rtcp-xr and rtcp-fb lines in a plain RTP/AVP offer; it sends a STUN
 * Binding Request on its RTP and RTCP ports at the start of the media (and on the RTCP port every
 * 0.5 s until RTCP flows); its `pause` is a sendonly re-INVITE
 * with its RTP going on, and its mute sends silence; its hang-up is a SIP BYE and its RTP socket closed,
 * with no RTCP BYE; its DTMF is RFC 4733.
 *
 * Audio both ways is counted at the browser (getStats), at the phone leg in ferry media (/stats), heard
 * in the page (a Web Audio probe finds linphone's 440 Hz tone, and a DTMF key's two tones), and heard by
 * linphone (its recording holds Chromium's fake microphone tone, near 400 Hz).
 */
const DESK = { user: '1001', password: 'desk-linphone-secret' };
const ALICE = { user: 'alice', password: 'alice-linphone-secret' };
/** Chromium's fake microphone (--use-fake-device-for-media-stream) sends a steady tone near this */
const CHROMIUM_FAKE_TONE_HZ = 400;

describe('linphone desk phone <-> Chromium webphone through the gateway', { timeout: 240_000 }, () => {
  let dir: string;
  let ns: NetNamespace;
  let stack: Stack;
  let phone: LinphonePhone;
  let alice: GatewayWebphone;

  const sipUri = (user: string): string => `sip:${user}@${ns.hostAddress}:${stack.sipPort}`;
  const media = (): Promise<MediaStats> => getJson<MediaStats>(stack.mediaPort, '/stats');
  const phoneLeg = async (): Promise<PhoneLegStats | undefined> => (await media()).pipelinesDetail.flatMap((p) => p.elements).find((e) => e.type === 'RtpEndpoint');
  const liveCalls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls;
  const diagnose = (err: unknown): Error =>
    new Error(`${(err as Error).message}\n--- linphone:\n${(phone as LinphonePhone | undefined)?.tail(30)}\n--- ferry:\n${(stack as Stack | undefined)?.output.slice(-30).join('\n')}`);

  /** media both ways at the browser, at the phone leg in ferry media, linphone's tone heard in the page and the browser's tone in linphone's recording */
  async function assertAudioBothWays(connectedAt: number): Promise<void> {
    const leg = await waitRtpBothWays(alice, phoneLeg);
    // the page hears linphone's 440 Hz tone: 50 frames (1 s) where it dominates every other probed frequency
    const probeFrom = Date.now();
    assert.equal(await installAudioProbe(alice.page), 'running', 'the page\'s AudioContext runs');
    const heard = await waitFor(async () => {
      const frames = await probeFrames(alice.page, probeFrom);
      return frames.filter((f) => dominates(f, 440)).length >= 50 ? frames : undefined;
    }, 10_000, 200, 'linphone\'s 440 Hz tone heard in the webphone page');
    // linphone hears the browser: its recording, from the connection on, is Chromium's tone in most 0.5 s blocks
    const rec = await waitFor(async () => {
      const r = await phone.recording();
      return r.samples.length >= r.rate * 2 ? r : undefined;
    }, 10_000, 200, 'two seconds in linphone\'s recording');
    const block = rec.rate / 2;
    const blocks: { level: number; hz: number }[] = [];
    for (let i = 0; i + block <= rec.samples.length; i += block) {
      const b = rec.samples.subarray(i, i + block);
      blocks.push({ level: rms(b), hz: dominantFrequency(b, rec.rate, 10).hz });
    }
    const toneBlocks = blocks.filter((b) => b.level > 500 && Math.abs(b.hz - CHROMIUM_FAKE_TONE_HZ) <= 20);
    assert.ok(toneBlocks.length >= 3, `linphone's recording has the browser's tone (${CHROMIUM_FAKE_TONE_HZ} Hz): ${JSON.stringify(blocks)}`);
    console.log(`# phone leg ${leg.packetsFromPeer} from / ${leg.packetsToPeer} to linphone; page heard 440 Hz in ${heard.filter((f) => dominates(f, 440)).length} of ${heard.length} frames; linphone's recording: ${toneBlocks.length} of ${blocks.length} half-seconds at ${CHROMIUM_FAKE_TONE_HZ} Hz (+${Date.now() - connectedAt} ms)`);
    await closeAudioProbe(alice.page);
  }

  async function assertReleased(): Promise<void> {
    await waitFor(async () => {
      const m = await media();
      return m.pipelines === 0 && m.elements === 0 && m.boundPorts === 0;
    }, 3000, 25, 'pipeline, elements and ports released in ferry media');
    await waitFor(async () => (await liveCalls()).length === 0, 3000, 25, 'no live call at the gateway');
  }

  /** linphone hangs up: the webphone shows the end < 1 s later; when linphone hung up */
  async function linphoneHangsUp(): Promise<number> {
    const hangupAt = Date.now();
    phone.terminate();
    await alice.waitCallState('ended', 3000);
    const latency = (await alice.endedAt())! - hangupAt;
    console.log(`# linphone hang-up -> webphone shows the end: ${latency} ms`);
    assert.ok(latency < 1000, `the webphone saw the end ${latency} ms after linphone hung up`);
    return hangupAt;
  }

  /** RTP both ways again at the phone leg in ferry media: more than 50 packets each way from now on */
  async function legFlowsAgain(what: string): Promise<void> {
    const leg0 = (await phoneLeg())!;
    await waitFor(async () => {
      const l = (await phoneLeg())!;
      return l.packetsFromPeer - leg0.packetsFromPeer > 50 && l.packetsToPeer - leg0.packetsToPeer > 50;
    }, 5000, 100, what);
  }

  /** the webphone dials 1001, linphone rings and answers, both see the call up */
  async function webphoneCallsLinphone(): Promise<{ connectedAt: number; call: CallRecord }> {
    phone.newRecording();
    const since = Date.now();
    await alice.dial(DESK.user);
    await phone.waitLine(/Receiving new incoming call from .*alice/i, 15_000, since, 'the incoming call at linphone');
    phone.answer();
    await phone.waitLine(/Call \d+ with .* connected\./, 10_000, since, 'the call connected at linphone');
    await alice.waitCallState('connected', 10_000);
    const call = await waitFor(async () => (await liveCalls())[0], 5000, 50, 'the live call');
    return { connectedAt: Date.now(), call };
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-linphone-e2e-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ ...ALICE, displayName: 'Alice (webphone)' }, { ...DESK, displayName: 'Desk phone (linphone)' }],
    }));
    warmChromium();
    ns = await LinphonePhone.namespace();
    stack = await startStack({
      partEnv: {
        sip: { FERRY_SIP_HOST: '0.0.0.0', FERRY_SIP_ADVERTISED_HOST: ns.hostAddress },
        gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') },
        media: { FERRY_MEDIA_RTP_HOST: ns.hostAddress, FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.1' },
      },
    });
    const [p, w] = await Promise.allSettled([
      LinphonePhone.start({ ns, ...DESK, registrar: `${ns.hostAddress}:${stack.sipPort}` }).then((lp) => (phone = lp)),
      GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, ...ALICE }).then((wp) => (alice = wp)),
    ]);
    if (p.status === 'rejected') throw p.reason;
    if (w.status === 'rejected') throw w.reason;
    try {
      await phone.register();
    } catch (err) {
      throw diagnose(err);
    }
  });

  afterEach(async () => {
    // a failed test must not leave a call up for the next one
    if (phone?.running) phone.send('terminate all');
    if (stack) await waitFor(async () => (await liveCalls()).length === 0, 5000, 50, 'no call left').catch(() => undefined);
  });

  after(async () => {
    await (alice as GatewayWebphone | undefined)?.close();
    await (phone as LinphonePhone | undefined)?.stop();
    await (ns as NetNamespace | undefined)?.destroy();
    await (stack as Stack | undefined)?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('linphone registers with digest from its namespace: ferry challenges, binds its Contact at the namespace address', { timeout: 60_000 }, async () => {
    try {
      assert.ok(phone.logSince(/^SIP\/2\.0 401 /).length >= 1, 'ferry challenged the REGISTER (401) before accepting it');
      const regs = await waitFor(async () => {
        const all = (await getJson<{ registrations: { user: string; contact: string; source: string; transport: string }[] }>(stack.httpPort, '/api/registrations')).registrations;
        const mine = all.filter((r) => r.user === DESK.user);
        return mine.length ? mine : undefined;
      }, 5000, 50, 'the registration of 1001');
      assert.equal(regs.length, 1);
      assert.match(regs[0]!.contact, new RegExp(`^sip:${DESK.user}@${ns.phoneAddress.replace(/\./g, '\\.')}:${LINPHONE_SIP_PORT}\\b`), `Contact at the namespace address: ${regs[0]!.contact}`);
      assert.equal(regs[0]!.source, `${ns.phoneAddress}:${LINPHONE_SIP_PORT}`);
      assert.equal(regs[0]!.transport, 'udp');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('S2 with linphone: it calls the webphone, audio both ways; it hangs up (SIP BYE, RTP socket closed, no RTCP BYE): the webphone is told < 1 s, all released', { timeout: 60_000 }, async () => {
    try {
      phone.newRecording();
      const since = Date.now();
      await phone.call(sipUri(ALICE.user));
      await alice.waitCallState('ringing-in', 15_000);
      await alice.answer();
      await alice.waitCallState('connected', 10_000);
      await phone.waitLine(/Call \d+ with .* connected\./, 10_000, since, 'the call connected at linphone');
      const live = await waitFor(async () => (await liveCalls())[0], 5000, 50, 'the live call');
      const call = await getJson<CallRecord>(stack.httpPort, `/api/calls/${live.id}`);
      assert.equal(call.caller.kind, 'rtp', 'the caller leg is linphone (plain RTP)');
      assert.equal(call.callee.kind, 'webrtc');
      assert.match(call.caller.remoteSdp ?? '', new RegExp(`^c=IN IP4 ${ns.phoneAddress.replace(/\./g, '\\.')}\\s*$`, 'm'), `linphone's SDP names its namespace address: ${call.caller.remoteSdp}`);
      assert.match(call.caller.localSdp ?? '', /^m=audio \d+ RTP\/AVP 0 101\s*$/m, `ferry answered PCMU and telephone-event out of linphone's nine payload types: ${call.caller.localSdp}`);
      await assertAudioBothWays(Date.now());

      const hangupAt = await linphoneHangsUp();
      assert.match(await alice.message(), /other side hung up/);
      await assertReleased();
      const ended = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      assert.equal(ended.state, 'ended');
      // linphone's hang-up is its SIP BYE and its RTP socket closed (ICMP port-unreachable answers ferry
      // media's next packet), with no RTCP BYE (neither liblinphone nor mediastreamer calls ortp's
      // rtp_session_bye): whichever of the two reaches ferry first names the end, never rtcp-bye
      assert.ok(['sip-bye', 'icmp-unreachable'].includes(ended.reason!), `ended by ${ended.reason}`);
      await phone.waitLog(/^BYE sip:/, 2000, hangupAt, 'the BYE in linphone\'s log');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('S1 with linphone: the webphone calls it, it answers, audio both ways; DTMF 5 from linphone (RFC 4733) is heard in the webphone; the webphone hangs up: linphone gets the BYE < 1 s and answers it, all released', { timeout: 60_000 }, async () => {
    try {
      const { call } = await webphoneCallsLinphone();
      assert.equal(call.caller.kind, 'webrtc');
      assert.equal(call.callee.kind, 'rtp');
      assert.match(call.callee.uri, new RegExp(`^sip:${DESK.user}@${ns.phoneAddress.replace(/\./g, '\\.')}:${LINPHONE_SIP_PORT}\\b`), 'routed to the Contact linphone registered');
      await assertAudioBothWays(Date.now());

      // DTMF: '5' is 770 Hz + 1336 Hz; before the key, no frame carries the pair (the control), after it some do
      const probeFrom = Date.now();
      await installAudioProbe(alice.page);
      await waitFor(async () => (await probeFrames(alice.page, probeFrom)).length >= 10, 5000, 50, 'the probe running');
      const before = await probeFrames(alice.page, probeFrom);
      assert.equal(before.filter((f) => carriesPair(f, 770, 1336)).length, 0, 'no DTMF 5 in the page before the key (control)');
      assert.ok(before.some((f) => dominates(f, 440)), 'the probe hears linphone\'s tone (positive control)');
      const keyAt = Date.now();
      const dtmfSent = phone.dtmf('5');
      const frames = await waitFor(async () => {
        const f = (await probeFrames(alice.page, keyAt)).filter((x) => carriesPair(x, 770, 1336));
        return f.length ? f : undefined;
      }, 3000, 50, 'DTMF 5 (770 + 1336 Hz) heard in the webphone page');
      console.log(`# DTMF 5 from linphone heard in the page ${frames[0]!.at - keyAt} ms after the key (${frames.length} frames)`);
      await dtmfSent; // linphonec's command loop (its SIP loop too) is awake again
      await closeAudioProbe(alice.page);
      assert.equal(await alice.callState(), 'connected', 'DTMF did not disturb the call');

      const since = Date.now();
      const hangupAt = await alice.hangup();
      const ended = await phone.waitLine(/Call \d+ with .* ended/, 3000, since, 'the call ended at linphone');
      // the time stamp linphone's log gives the BYE: when its SIP loop read it
      const bye = await phone.waitLog(/^BYE sip:/, 2000, since, 'the BYE in linphone\'s log');
      const record = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
      const byeSent = record.timeline.find((e) => e.event === 'bye-sent' && e.t >= hangupAt);
      const steps = record.timeline.filter((e) => e.t >= hangupAt - 50).map((e) => `${e.event} +${e.t - hangupAt}`).join(', ');
      console.log(`# webphone hang-up -> BYE sent to linphone +${byeSent ? byeSent.t - hangupAt : '?'} ms, read by linphone +${bye.loggedAt! - hangupAt} ms, its console says the call ended +${ended.at - hangupAt} ms (gateway: ${steps})`);
      assert.ok(byeSent && byeSent.t - hangupAt < 1000, `the gateway sent linphone the BYE < 1 s after the webphone hung up: ${steps}`);
      assert.ok(bye.loggedAt! - hangupAt < 1000, `linphone read the BYE ${bye.loggedAt! - hangupAt} ms after the webphone hung up: ${steps}`);
      assert.ok(!record.timeline.some((e) => e.event === 'bye-unanswered'), `linphone answered the BYE: ${steps}`);
      assert.ok(ended.at - hangupAt < 3000, `linphone ended the call ${ended.at - hangupAt} ms after the webphone hung up`);
      await assertReleased();
      assert.equal((await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('S11 with linphone: it mutes (RTP goes on), pauses (sendonly re-INVITE, its RTP goes on) and resumes: nothing released, the webphone shows the hold, RTP both ways again', { timeout: 60_000 }, async () => {
    try {
      const { call } = await webphoneCallsLinphone();
      await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) > 50, 10_000, 100, 'RTP from linphone');

      // mute: linphone keeps sending RTP (silence); the call goes on
      phone.mute();
      const mutedFrom = (await phoneLeg())!.packetsFromPeer;
      await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) - mutedFrom > 100, 5000, 100, 'RTP from linphone while muted');
      assert.equal(await alice.callState(), 'connected', 'mute did not change the call');
      phone.unmute();

      const pausedSince = Date.now();
      phone.pause();
      await phone.waitLine(/Call \d+ with .* is now paused\./, 5000, pausedSince, 'linphone paused');
      await alice.waitCallState('held by the other side', 5000);
      const held = await waitFor(async () => {
        const c = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
        return c.timeline.some((e) => e.event === 'hold' && /sendonly/.test(e.detail ?? '')) ? c : undefined;
      }, 5000, 50, 'the hold (sendonly) in the call\'s timeline');
      assert.equal(held.state, 'answered');
      // linphone keeps sending RTP while it holds (its hold music: here the same tone): the leg sees it
      const from0 = (await phoneLeg())!.packetsFromPeer;
      await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) - from0 > 100, 5000, 100, 'RTP from linphone while it holds');
      assert.equal(await alice.callState(), 'held by the other side');
      assert.equal((await liveCalls()).length, 1, 'the held call is still up');

      const resumedSince = Date.now();
      phone.resume();
      await alice.waitCallState('connected', 5000);
      await waitFor(async () => {
        const c = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
        return c.timeline.some((e) => e.event === 'resume' && /sendrecv/.test(e.detail ?? ''));
      }, 5000, 50, 'the resume (sendrecv) in the call\'s timeline');
      const s0 = await alice.rtpStats();
      await legFlowsAgain('RTP both ways at the phone leg after resume');
      await waitFor(async () => (await alice.rtpStats()).received - s0.received > 50, 5000, 100, 'the browser receives again after resume');
      await phone.waitLog(/^INVITE sip:/, 2000, resumedSince, 'the resume\'s re-INVITE in linphone\'s log');

      await linphoneHangsUp();
      await assertReleased();
    } catch (err) {
      throw diagnose(err);
    }
  });
  test('S11 from the webphone: it holds and resumes; linphone gets a sendonly re-INVITE ("paused by"), answers recvonly, and RTP flows both ways after the resume', { timeout: 60_000 }, async () => {
    try {
      const { call } = await webphoneCallsLinphone();
      await waitFor(async () => ((await phoneLeg())?.packetsToPeer ?? 0) > 50, 10_000, 100, 'RTP to linphone');

      const holdAt = Date.now();
      await alice.toggleHold();
      await phone.waitLine(/Call \d+ has been paused by /, 5000, holdAt, 'linphone told it is held');
      await phone.waitLog(/^a=sendonly/, 2000, holdAt, 'the sendonly re-INVITE in linphone\'s log');
      await phone.waitLog(/^a=recvonly/, 2000, holdAt, 'its recvonly answer in linphone\'s log');
      assert.equal((await liveCalls()).length, 1, 'the held call is still up');

      const resumeAt = Date.now();
      await alice.toggleHold();
      await phone.waitLine(/Media streams established .* for call \d+/, 5000, resumeAt, 'media again at linphone after the resume');
      await waitFor(async () => {
        const c = await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`);
        return c.timeline.some((e) => e.t >= resumeAt && e.event === 'resume');
      }, 5000, 50, 'the resume in the call\'s timeline');
      await legFlowsAgain('RTP both ways at the phone leg after the resume');
      assert.equal(await alice.callState(), 'connected');

      await linphoneHangsUp();
      await assertReleased();
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('linphone with ICE on offers host candidates in a plain RTP/AVP offer; ferry answers without ICE, linphone goes on without it: audio both ways, hang-up', { timeout: 90_000 }, async () => {
    try {
      await phone.stop({ keepNamespace: true });
      // its STUN server is an address where nothing answers: it offers its host candidates after trying
      phone = await LinphonePhone.start({ ns, ...DESK, registrar: `${ns.hostAddress}:${stack.sipPort}`, ice: { stunServer: `${ns.hostAddress}:3478` } });
      await phone.register();
      phone.newRecording();
      const since = Date.now();
      await phone.call(sipUri(ALICE.user));
      await alice.waitCallState('ringing-in', 20_000);
      await alice.answer();
      await alice.waitCallState('connected', 10_000);
      await phone.waitLine(/Call \d+ with .* connected\./, 10_000, since, 'the call connected at linphone');
      const live = await waitFor(async () => (await liveCalls())[0], 5000, 50, 'the live call');
      const call = await getJson<CallRecord>(stack.httpPort, `/api/calls/${live.id}`);
      assert.match(call.caller.remoteSdp ?? '', /^m=audio \d+ RTP\/AVP /m, `a plain RTP/AVP offer: ${call.caller.remoteSdp}`);
      assert.match(call.caller.remoteSdp ?? '', /^a=ice-ufrag:/m, 'linphone\'s offer carries ICE credentials');
      assert.match(call.caller.remoteSdp ?? '', /^a=candidate:\S+ 1 UDP \d+ \S+ \d+ typ host/m, 'and host candidates');
      assert.doesNotMatch(call.caller.localSdp ?? '', /^a=(ice-|candidate)/m, `ferry's answer has no ICE: ${call.caller.localSdp}`);
      await assertAudioBothWays(Date.now());
      await linphoneHangsUp();
      await assertReleased();
      assert.ok(['sip-bye', 'icmp-unreachable'].includes((await getJson<CallRecord>(stack.httpPort, `/api/calls/${call.id}`)).reason!));
    } catch (err) {
      throw diagnose(err);
    }
  });
});
