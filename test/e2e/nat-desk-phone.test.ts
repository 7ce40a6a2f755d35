import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser } from 'playwright-core';
import { BaresipPhone, type BaresipEvent } from '../helpers/baresip-phone';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { NatCallEnds, natWebphoneArgs } from '../helpers/nat-calls';
import { NatRouter, type NatMapping } from '../helpers/nat-router';
import { NatWorld } from '../helpers/nat-world';
import { TEST_API_TOKEN, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A desk phone behind a home router, as most real sites have it: baresip in a network namespace on a
 * private address (192.168.x.2), its router a real NAPT (iptables MASQUERADE --random-fully, conntrack)
 * with a stateful firewall, and ferry on a public address configured as docs/deploy.md says; the webphone
 * is the gateway's HTTPS page in Chromium on ferry's side. baresip registers over UDP with its private
 * address in Contact and SDP and refreshes every 6 s (a NAT'd phone's short interval, which bounds the
 * waits for its next re-REGISTER after the router forgot); nothing from outside reaches it except through the router's mappings.
 */
const DESK = { user: '1001', password: 'desk-nat-secret', displayName: 'Desk phone behind NAT' };
const ALICE = { user: 'alice', password: 'alice-nat-secret', displayName: 'Alice (webphone)' };
const REGINT_S = 6;

describe('NAT: a UDP desk phone behind a masquerading router and a webphone on ferry\'s side', { timeout: 300_000 }, () => {
  // the registrar's minimum expiry lowered to the phone's interval (NatWorld's default is 10 s)
  const world = new NatWorld([DESK, ALICE], { minExpires: REGINT_S });
  let browser: Browser | undefined;
  let alice: GatewayWebphone;
  let phone: BaresipPhone | undefined;
  let ends: NatCallEnds;

  const diagnose = (err: unknown): Error =>
    new Error(`${(err as Error).message}\n--- baresip events: ${phone?.events.map((e) => `${e.type}(${e.param ?? ''})`).join(' ')}\n--- baresip log:\n${phone?.log.slice(-25).join('\n')}\n--- ferry:\n${world.tail(30)}`);

  /** the router's mapping of the phone's SIP port towards ferry's SIP port */
  async function sipMapping(): Promise<NatMapping | undefined> {
    return (await world.nat.mappings('udp')).find((m) => m.privatePort === phone!.sipPort && m.peer === world.nat.ferryAddress && m.peerPort === world.ready.sip);
  }

  /** the RTP ports of the live call's phone leg: ferry media's (its SDP to the phone) and the phone's own (the phone's SDP: its private port) */
  async function rtpPorts(): Promise<{ ferry: number; phone: number }> {
    // the record is written as the call proceeds: wait for both SDPs of the phone leg in it
    return waitFor(async () => {
      const live = (await world.liveCalls())[0];
      if (!live) return undefined;
      const record = await world.call(live.id);
      const leg = record.caller.kind === 'rtp' ? record.caller : record.callee;
      const ferry = /^m=audio (\d+) /m.exec(leg.localSdp ?? '')?.[1];
      const phonePort = /^m=audio (\d+) /m.exec(leg.remoteSdp ?? '')?.[1];
      return ferry && phonePort ? { ferry: Number(ferry), phone: Number(phonePort) } : undefined;
    }, 5000, 50, 'both SDPs of the phone leg in the live call\'s record');
  }

  /** the router's mapping of the phone's RTP port towards the phone leg's port at ferry media (older calls' mappings linger in conntrack) */
  async function rtpMappingOf(ports: { ferry: number; phone: number }): Promise<NatMapping | undefined> {
    return (await world.nat.mappings('udp')).find((m) => m.privatePort === ports.phone && m.peer === world.nat.ferryAddress && m.peerPort === ports.ferry);
  }

  /** media both ways, counted at the browser (getStats), at the phone leg in ferry media and at the router's mapping of the phone's RTP (packets delivered to the phone and sent by it) */
  async function assertAudioBothWays(what: string): Promise<void> {
    const ports = await rtpPorts();
    const rtpMapping = (): Promise<NatMapping | undefined> => rtpMappingOf(ports);
    const s0 = await alice.rtpStats();
    const leg0 = (await world.phoneLeg()) ?? { packetsFromPeer: 0, packetsToPeer: 0 };
    const map0 = (await rtpMapping()) ?? { packetsIn: 0, packetsOut: 0, publicPort: -1 };
    await waitFor(async () => {
      const s = await alice.rtpStats();
      return s.sent - s0.sent > 100 && s.received - s0.received > 100;
    }, 15_000, 100, `${what}: RTP both ways at the Chromium webphone (getStats)`);
    const leg = await waitFor(async () => {
      const l = await world.phoneLeg();
      return l && l.packetsFromPeer - leg0.packetsFromPeer > 100 && l.packetsToPeer - leg0.packetsToPeer > 100 ? l : undefined;
    }, 10_000, 100, `${what}: RTP both ways at the phone leg in ferry media`);
    const map = await waitFor(async () => {
      const m = await rtpMapping();
      if (!m) return undefined;
      const sameMapping = m.publicPort === map0.publicPort;
      const inNow = m.packetsIn - (sameMapping ? map0.packetsIn : 0);
      const outNow = m.packetsOut - (sameMapping ? map0.packetsOut : 0);
      return inNow > 100 && outNow > 100 ? m : undefined;
    }, 10_000, 100, `${what}: RTP both ways through the router's mapping of the phone's RTP port`).catch(async (err: Error) => {
      throw new Error(`${err.message}; ports ${JSON.stringify(ports)}, at first ${JSON.stringify(map0)}; the router's mappings now: ${JSON.stringify(await world.nat.mappings('udp'))}`);
    });
    console.log(`# ${what}: phone leg ${leg.packetsFromPeer} from / ${leg.packetsToPeer} to the phone; router mapping ${map.privatePort} -> ${map.publicPort}: ${map.packetsOut} out, ${map.packetsIn} in`);
  }

  /**
   * Until the phone re-registers after the router forgot its mappings, ferry knows only the dead mapping and
   * an INVITE is lost (as with any phone behind NAT): a call to the phone waits for the registration to name
   * the router's current mapping of its SIP port (bounded by its re-REGISTER interval).
   */
  async function registrationCurrent(): Promise<void> {
    await waitFor(async () => {
      const m = await sipMapping();
      const reg = (await world.registrations(DESK.user))[0];
      return m !== undefined && reg?.source === `${world.nat.routerOutside}:${m.publicPort}`;
    }, (REGINT_S + 5) * 1000, 100, 'the registration naming the router\'s current mapping of the phone');
  }

  /** after the router forgot `before`, the phone's next re-REGISTER names its new mapping: that registration */
  async function registrationMovedFrom(before: NatMapping): Promise<{ contact: string; source: string; transport: string }> {
    return waitFor(async () => {
      const m = await sipMapping();
      if (!m || m.publicPort === before.publicPort) return undefined;
      const reg = (await world.registrations(DESK.user))[0];
      return reg && reg.source === `${world.nat.routerOutside}:${m.publicPort}` ? reg : undefined;
    }, (REGINT_S + 5) * 1000, 100, 'the registration\'s source on the new mapping (the next re-REGISTER)');
  }

  async function webphoneCallsDesk(): Promise<{ callStart: number; call: CallRecord }> {
    await registrationCurrent();
    return ends.webphoneCalls(DESK.user);
  }

  async function webphoneHangsUp(callStart: number): Promise<void> {
    const closed = await ends.webphoneHangsUp(callStart, 'webphone hang-up -> the phone behind NAT closes the call');
    assert.match(closed.param ?? '', /reset by peer/i, 'the phone closed the call because ferry\'s BYE reached it through the router');
  }

  async function deskHangsUp(callStart: number): Promise<void> {
    await ends.phoneHangsUp('phone behind NAT hangs up -> webphone shows the end');
    await phone!.waitEvent((e: BaresipEvent) => e.type === 'CALL_CLOSED' && e.at >= callStart, 2000, 'CALL_CLOSED at the phone');
  }

  before(async () => {
    await world.start();
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: natWebphoneArgs() });
    const [p, a] = await Promise.allSettled([
      (async () => {
        phone = await BaresipPhone.start({
          user: DESK.user, password: DESK.password, registrar: world.registrar, answer: 'auto', regint: REGINT_S,
          netns: { name: world.nat.home, address: world.nat.homeAddress },
        });
        await phone.waitRegistered(15_000);
      })(),
      GatewayWebphone.openAt(browser, world.pageUrl, ALICE),
    ]);
    if (p.status === 'rejected') throw diagnose(p.reason);
    if (a.status === 'rejected') throw a.reason;
    alice = a.value;
    ends = new NatCallEnds(world, alice, phone!);
  });

  afterEach(async () => {
    await phone?.command('hangup').catch(() => undefined);
  });

  after(async () => {
    await alice?.close();
    await browser?.close().catch(() => undefined);
    await phone?.stop();
    await world.stop();
    assert.equal(await NatRouter.exists(world.nat.home), false, 'the home namespace is gone');
    assert.equal(await NatRouter.exists(world.nat.router), false, 'the router namespace is gone');
  });

  test('NAT: the phone registers over UDP with its private Contact; ferry keeps the router\'s public address and port it came from', async () => {
    try {
      const regs = await world.registrations(DESK.user);
      assert.equal(regs.length, 1, JSON.stringify(regs));
      assert.match(regs[0]!.contact, new RegExp(`^sip:${DESK.user}[^@]*@${world.nat.homeAddress.replace(/\./g, '\\.')}:${phone!.sipPort}\\b`), 'the Contact names the private address');
      const mapping = await waitFor(sipMapping, 5000, 50, 'the router\'s mapping of the phone\'s SIP port');
      assert.equal(regs[0]!.source, `${world.nat.routerOutside}:${mapping.publicPort}`, 'the source is the router\'s public address and the mapped port');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the webphone calls the phone behind NAT: the INVITE reaches it through the router\'s mapping, audio both ways, the webphone\'s hang-up reaches the phone < 1 s, all released', async () => {
    try {
      const dropped0 = await world.nat.inboundDropped();
      await registrationCurrent();
      const sip0 = (await sipMapping())!;
      const { call } = await webphoneCallsDesk();
      assert.equal(call.callee.kind, 'rtp');
      const sip1 = (await sipMapping())!;
      assert.equal(sip1.publicPort, sip0.publicPort, 'the same mapping of the phone\'s SIP port');
      assert.ok(sip1.packetsIn - sip0.packetsIn >= 2, `the INVITE and the ACK came in through the router's mapping: ${sip0.packetsIn} -> ${sip1.packetsIn} packets`);
      assert.ok(phone!.log.some((l) => l.includes(world.nat.ferryAddress)), 'the phone heard from ferry\'s public address');
      await assertAudioBothWays('webphone -> phone');
      await webphoneHangsUp(call.createdAt);
      await world.waitReleased();
      assert.equal((await world.call(call.id)).state, 'ended');
      console.log(`# packets the router's firewall dropped during the call (sent to the private address): ${(await world.nat.inboundDropped()) - dropped0}`);
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the webphone calls the phone behind NAT and the phone hangs up: the webphone sees the end < 1 s, all released', async () => {
    try {
      const { callStart, call } = await webphoneCallsDesk();
      await waitFor(async () => ((await world.phoneLeg())?.packetsFromPeer ?? 0) > 50, 10_000, 100, 'RTP from the phone at ferry media');
      await deskHangsUp(callStart);
      await world.waitReleased();
      assert.equal((await world.call(call.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the phone behind NAT calls the webphone: audio both ways, the phone hangs up: the webphone sees the end < 1 s, all released', async () => {
    try {
      const { callStart, call } = await ends.phoneCalls(ALICE.user);
      assert.equal(call.caller.kind, 'rtp');
      await assertAudioBothWays('phone -> webphone');
      await deskHangsUp(callStart);
      await world.waitReleased();
      assert.equal((await world.call(call.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the phone behind NAT calls the webphone and the webphone hangs up: ferry\'s BYE reaches the phone through the router < 1 s, all released', async () => {
    try {
      const { callStart, call } = await ends.phoneCalls(ALICE.user);
      await waitFor(async () => ((await world.phoneLeg())?.packetsToPeer ?? 0) > 50, 10_000, 100, 'RTP to the phone from ferry media');
      await webphoneHangsUp(callStart);
      await world.waitReleased();
      assert.equal((await world.call(call.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  // Order: the calls that need the phone's registration current (the click-to-call among them) come before
  // the router first forgets, and the tests that wait for the phone's next re-REGISTER follow each other so
  // that each starts on a registration the one before left current (no wait for a re-REGISTER that a
  // test only needs as a starting point)
  test('NAT: a click-to-call through the API rings the phone behind NAT first (through the router\'s mapping), then the webphone; audio both ways, the webphone\'s hang-up reaches the phone < 1 s, all released', async () => {
    try {
      await registrationCurrent();
      const callStart = Date.now();
      const res = await fetch(`http://${world.nat.ferryAddress}:${world.ready.http}/api/calls`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ a: DESK.user, b: ALICE.user }),
      });
      assert.equal(res.status, 201, await res.clone().text());
      const { id } = (await res.json()) as { id: string };
      await phone!.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 15_000, 'CALL_ESTABLISHED at the phone (party A, auto-answer)');
      await alice.waitCallState('ringing-in', 15_000);
      await alice.answer();
      await alice.waitCallState('connected', 10_000);
      const record = await world.call(id);
      assert.equal(record.caller.kind, 'rtp', 'party A is the phone');
      await assertAudioBothWays('API click-to-call');
      await webphoneHangsUp(callStart);
      await world.waitReleased();
      assert.equal((await world.call(id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the router forgets its mappings mid-call and maps the phone again on new ports: audio resumes both ways on the new mapping, the call stays up, the phone\'s hang-up ends it', async () => {
    try {
      const { callStart, call } = await webphoneCallsDesk();
      await assertAudioBothWays('before the router forgets');
      const ports = await rtpPorts();
      const old = (await rtpMappingOf(ports))!;
      await world.nat.forgetMappings();
      const forgotAt = Date.now();
      // the phone's next RTP packet makes a new mapping; --random-fully gives it another public port
      const fresh = await waitFor(async () => {
        const m = await rtpMappingOf(ports);
        return m && m.publicPort !== old.publicPort ? m : undefined;
      }, 3000, 20, 'a new mapping of the phone\'s RTP port on another public port');
      console.log(`# the router forgot: the phone's RTP ${old.privatePort} went out on ${old.publicPort}, now on ${fresh.publicPort}`);
      await assertAudioBothWays('after the router forgot');
      console.log(`# audio both ways again ${Date.now() - forgotAt} ms after the router forgot`);
      assert.equal(await alice.callState(), 'connected');
      assert.equal((await world.call(call.id)).state, 'answered', 'the call is still up');
      await deskHangsUp(callStart);
      await world.waitReleased();
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: after the router forgot, the phone\'s next re-REGISTER comes from a new public port; ferry follows it and the next call reaches the phone there', async () => {
    try {
      const before = (await world.registrations(DESK.user))[0]!;
      const beforeMapping = await waitFor(sipMapping, 5000, 50, 'the router\'s mapping of the phone\'s SIP port');
      await world.nat.forgetMappings();
      const moved = await registrationMovedFrom(beforeMapping);
      console.log(`# registration source ${before.source} -> ${moved.source}`);
      const { callStart, call } = await webphoneCallsDesk();
      await assertAudioBothWays('the first call after the router forgot');
      await webphoneHangsUp(callStart);
      await world.waitReleased();
      assert.equal((await world.call(call.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the router forgets its mappings mid-call; once the phone re-registered from its new mapping, the call\'s BYE reaches it there: the webphone\'s hang-up ends the phone\'s call < 1 s', async () => {
    try {
      const { callStart, call } = await webphoneCallsDesk();
      await waitFor(async () => ((await world.phoneLeg())?.packetsFromPeer ?? 0) > 50, 10_000, 100, 'RTP from the phone at ferry media');
      const beforeMapping = await waitFor(sipMapping, 5000, 50, 'the router\'s mapping of the phone\'s SIP port');
      await world.nat.forgetMappings();
      await registrationMovedFrom(beforeMapping);
      assert.ok(world.ferry.lines.some((l) => l.at >= callStart && l.line.includes('dialogs follow a phone behind NAT to its new mapping')), 'ferry sip moved the call\'s dialog to the new mapping');
      const s0 = await alice.rtpStats();
      await waitFor(async () => (await alice.rtpStats()).received - s0.received > 50, 5000, 100, 'the phone\'s audio at the webphone after the router forgot');
      assert.equal((await world.call(call.id)).state, 'answered', 'the call is still up');
      await webphoneHangsUp(callStart);
      await world.waitReleased();
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the router forgets mid-call and the phone puts the call on hold from its new mapping before it re-registers: the hold works, and the webphone\'s hang-up reaches the phone there < 1 s', async () => {
    try {
      const { callStart } = await webphoneCallsDesk();
      // right after one of the phone's re-REGISTERs, so the next (REGINT_S later) cannot move the dialog first
      const registered = await phone!.waitEvent((e) => e.type === 'REGISTER_OK' && e.at >= callStart, (REGINT_S + 5) * 1000, 'a re-REGISTER during the call');
      await world.nat.forgetMappings();
      const sourceBefore = (await world.registrations(DESK.user))[0]!.source;
      assert.ok((await phone!.command('hold')).ok);
      await alice.waitCallState('held by the other side', 5000);
      assert.equal((await world.registrations(DESK.user))[0]!.source, sourceBefore, 'no re-REGISTER yet: only the re-INVITE can have moved the dialog');
      await webphoneHangsUp(callStart);
      assert.ok(Date.now() - registered.at < REGINT_S * 900, 'all of it before the phone\'s next re-REGISTER');
      assert.ok(world.ferry.lines.some((l) => l.at >= callStart && l.line.includes('dialog follows a phone behind NAT to its new mapping')), 'ferry sip moved the dialog on the phone\'s re-INVITE');
      await world.waitReleased();
    } catch (err) {
      throw diagnose(err);
    }
  });
});
