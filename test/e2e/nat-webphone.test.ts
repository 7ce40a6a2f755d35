import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { BaresipPhone, type BaresipEvent } from '../helpers/baresip-phone';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { NatCallEnds, natWebphoneArgs } from '../helpers/nat-calls';
import { NatRouter, type NatMapping } from '../helpers/nat-router';
import { NatWorld } from '../helpers/nat-world';
import { waitFor } from '../helpers/stack';

/**
 * A browser behind a home router: Debian's Chromium runs inside the home network namespace (a wrapper does
 * `ip netns exec <home> /usr/bin/chromium "$@"`, given to playwright-core as its executable), on a private
 * address (192.168.x.2) behind a real NAPT (MASQUERADE --random-fully) with a stateful firewall. It opens
 * the gateway's HTTPS page at ferry's public address (a secure context: the microphone; the development
 * certificate is accepted with --ignore-certificate-errors), registers over the secure WebSocket the page
 * names, and calls a desk phone on the outside (baresip on ferry's side), and is called by it. Its only ICE
 * candidate is its private host address, which ferry cannot reach: ferry must answer the checks that arrive
 * from the router's public address (a peer-reflexive candidate) and send the media there. ferry listens on
 * 0.0.0.0 with FERRY_MEDIA_SDP_ADDRESS and FERRY_MEDIA_ICE_ADDRESSES naming its public address, as
 * docs/deploy.md's "One public host" says (test/e2e/nat-desk-phone.test.ts binds the public address itself).
 */
const ALICE = { user: 'alice', password: 'alice-nat-web-secret', displayName: 'Alice (webphone behind NAT)' };
const DESK = { user: '1002', password: 'desk-outside-secret', displayName: 'Desk phone outside' };

/** Records every RTCPeerConnection the page makes (window.__natPcs), so a test can read the selected ICE pair. */
async function trackPeerConnections(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const w = window as unknown as { __natPcs: RTCPeerConnection[]; RTCPeerConnection: typeof RTCPeerConnection };
    const Original = w.RTCPeerConnection;
    w.__natPcs = [];
    w.RTCPeerConnection = class extends Original {
      constructor(config?: RTCConfiguration) {
        super(config);
        w.__natPcs.push(this);
      }
    };
  });
}

interface SelectedPair {
  local: { address: string; port: number; type: string };
  remote: { address: string; port: number; type: string };
  localCandidates: string[];
}

describe('NAT: Chromium behind a masquerading router on the HTTPS page at ferry\'s public address', { timeout: 300_000 }, () => {
  // docs/deploy.md's "One public host" walk: every public listener on 0.0.0.0, the public address in SDP and ICE
  const world = new NatWorld([ALICE, DESK], { listen: 'wildcard' });
  let browser: Browser | undefined;
  let alice: GatewayWebphone;
  let phone: BaresipPhone | undefined;
  let ends: NatCallEnds;

  const diagnose = (err: unknown): Error =>
    new Error(`${(err as Error).message}\n--- baresip events: ${phone?.events.map((e) => `${e.type}(${e.param ?? ''})`).join(' ')}\n--- ferry:\n${world.tail(30)}`);

  /** the ICE pair the browser selected, and every local candidate it gathered */
  async function selectedPair(): Promise<SelectedPair | undefined> {
    return alice.page.evaluate(async () => {
      const pcs = (window as unknown as { __natPcs: RTCPeerConnection[] }).__natPcs;
      const pc = pcs[pcs.length - 1];
      if (!pc) return undefined;
      const stats = (await pc.getStats()) as unknown as Map<string, unknown>;
      let pairId: string | undefined;
      const localCandidates: string[] = [];
      stats.forEach((value) => {
        const r = value as { type: string; selectedCandidatePairId?: string; address?: string; port?: number; candidateType?: string };
        if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
        if (r.type === 'local-candidate') localCandidates.push(`${r.candidateType} ${r.address}:${r.port}`);
      });
      if (!pairId) return undefined;
      const pair = stats.get(pairId) as { localCandidateId: string; remoteCandidateId: string };
      const l = stats.get(pair.localCandidateId) as { address: string; port: number; candidateType: string };
      const r = stats.get(pair.remoteCandidateId) as { address: string; port: number; candidateType: string };
      return { local: { address: l.address, port: l.port, type: l.candidateType }, remote: { address: r.address, port: r.port, type: r.candidateType }, localCandidates };
    });
  }

  /**
   * The router's mapping of the selected pair towards ferry's port: by the browser's private port when its
   * local candidate is its host one, by the public port when it is the peer-reflexive one ferry's check
   * answers told it (its address as seen through the router).
   */
  async function iceMapping(pair: SelectedPair): Promise<NatMapping | undefined> {
    const byLocal = (m: NatMapping): boolean => (pair.local.type === 'prflx' ? m.publicPort === pair.local.port : m.privatePort === pair.local.port);
    return (await world.nat.mappings('udp')).find((m) => byLocal(m) && m.peer === pair.remote.address && m.peerPort === pair.remote.port);
  }

  /** audio both ways at the browser (getStats), at ferry media's phone leg, through the router's mapping of the ICE path, and at the phone (its RTCP report) */
  async function assertAudioThroughNat(what: string, callStart: number): Promise<void> {
    await waitFor(async () => {
      const s = await alice.rtpStats();
      return s.sent > 100 && s.received > 100;
    }, 15_000, 100, `${what}: RTP both ways at the Chromium webphone behind NAT (getStats)`);
    const pair = await waitFor(selectedPair, 5000, 100, `${what}: the browser's selected ICE pair`);
    // the browser's own candidates are its private host address only; the pair's local side is that, or the
    // peer-reflexive address ferry's answers to its checks told it: the router's public address
    const hosts = pair.localCandidates.filter((c) => c.startsWith('host '));
    assert.ok(hosts.length > 0 && hosts.every((c) => c.startsWith(`host ${world.nat.homeAddress}:`)), `the browser's host candidates: ${pair.localCandidates.join(', ')}`);
    if (pair.local.type === 'prflx') assert.equal(pair.local.address, world.nat.routerOutside, `the browser learnt its address through the router: ${JSON.stringify(pair)}`);
    else assert.deepEqual([pair.local.type, pair.local.address], ['host', world.nat.homeAddress], JSON.stringify(pair));
    assert.equal(pair.remote.address, world.nat.ferryAddress, 'to ferry\'s public address');
    assert.ok(pair.remote.port >= world.iceRange[0] && pair.remote.port <= world.iceRange[1], `on ferry's ICE port range: ${pair.remote.port}`);
    const mapping = await waitFor(async () => {
      const m = await iceMapping(pair);
      return m && m.packetsIn > 100 && m.packetsOut > 100 ? m : undefined;
    }, 10_000, 100, `${what}: media both ways through the router's mapping of the browser's ICE port`);
    const leg = await waitFor(async () => {
      const l = await world.phoneLeg();
      return l && l.packetsFromPeer > 100 && l.packetsToPeer > 100 ? l : undefined;
    }, 10_000, 100, `${what}: RTP both ways at the phone leg in ferry media`);
    const sentBoth = (e: BaresipEvent): boolean => {
      const s = e.rtcp_stats as { tx?: { sent?: number }; rx?: { sent?: number } } | undefined;
      return (s?.tx?.sent ?? 0) > 0 && (s?.rx?.sent ?? 0) > 0;
    };
    const report = await phone!.waitEvent((e) => e.type === 'CALL_RTCP' && e.at >= callStart && sentBoth(e), 12_000, 'an RTCP report at the phone with packets both ways');
    console.log(`# ${what}: ICE ${pair.local.type} ${pair.local.address}:${pair.local.port} -> ${pair.remote.type} ${pair.remote.address}:${pair.remote.port}, through the router's ${world.nat.routerOutside}:${mapping.publicPort} (${mapping.packetsOut} out, ${mapping.packetsIn} in); phone leg ${leg.packetsFromPeer} from / ${leg.packetsToPeer} to the phone; phone RTCP ${JSON.stringify(report.rtcp_stats)}`);
  }

  before(async () => {
    await world.start();
    browser = await chromium.launch({ executablePath: world.nat.homeWrapper('/usr/bin/chromium'), headless: true, args: natWebphoneArgs() });
    const [p, a] = await Promise.allSettled([
      (async () => {
        phone = await BaresipPhone.start({ user: DESK.user, password: DESK.password, registrar: world.registrar, answer: 'auto', address: world.nat.ferryAddress });
        await phone.waitRegistered(15_000);
      })(),
      GatewayWebphone.openAt(browser, world.pageUrl, { ...ALICE, prepare: trackPeerConnections }),
    ]);
    if (p.status === 'rejected') throw diagnose(p.reason);
    if (a.status === 'rejected') throw diagnose(a.reason);
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
  });

  test('NAT: the page at ferry\'s public address is a secure context in the browser behind NAT; it registered over WSS from the router\'s address', async () => {
    try {
      assert.equal(await alice.page.evaluate(() => window.isSecureContext), true);
      assert.equal(await alice.page.inputValue('#ws-url'), `wss://${world.nat.ferryAddress}:${world.ready.wss}`);
      const regs = await world.registrations(ALICE.user);
      assert.equal(regs.length, 1, JSON.stringify(regs));
      assert.equal(regs[0]!.transport, 'wss');
      assert.match(regs[0]!.source, new RegExp(`^${world.nat.routerOutside.replace(/\./g, '\\.')}:\\d+$`), 'the WebSocket comes from the router\'s public address');
      const wssMapping = (await world.nat.mappings('tcp')).find((m) => m.peer === world.nat.ferryAddress && m.peerPort === world.ready.wss);
      assert.ok(wssMapping, 'the router maps the browser\'s secure WebSocket');
      assert.equal(regs[0]!.source, `${world.nat.routerOutside}:${wssMapping.publicPort}`);
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: the webphone behind NAT calls a phone outside: ICE from its private host candidate finds the path through the router, audio both ways, its hang-up reaches the phone < 1 s, all released', async () => {
    try {
      const { callStart, call: live } = await ends.webphoneCalls(DESK.user);
      assert.equal(live.caller.kind, 'webrtc');
      await assertAudioThroughNat('webphone behind NAT -> phone', callStart);
      await ends.webphoneHangsUp(callStart, 'webphone behind NAT hangs up -> the phone closes the call');
      await world.waitReleased();
      assert.equal((await world.call(live.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });

  test('NAT: a phone outside calls the webphone behind NAT: it rings over its WebSocket, audio both ways through the router, the phone\'s hang-up reaches the webphone < 1 s, all released', async () => {
    try {
      const { callStart, call: live } = await ends.phoneCalls(ALICE.user);
      assert.equal(live.callee.kind, 'webrtc');
      await assertAudioThroughNat('phone -> webphone behind NAT', callStart);
      await ends.phoneHangsUp('the phone hangs up -> the webphone behind NAT shows the end');
      await world.waitReleased();
      assert.equal((await world.call(live.id)).state, 'ended');
    } catch (err) {
      throw diagnose(err);
    }
  });
});
