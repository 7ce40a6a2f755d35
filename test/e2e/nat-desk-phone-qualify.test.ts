import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BaresipPhone, type BaresipEvent } from '../helpers/baresip-phone';
import { NatRouter, type NatMapping } from '../helpers/nat-router';
import { NatWorld } from '../helpers/nat-world';
import { waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Qualify in the real NAT world (test/helpers/nat-router.ts): baresip behind a masquerading router whose
 * UDP mappings idle out after CONNTRACK_UDP_S (the router namespace's own nf_conntrack_udp_timeout and
 * _udp_timeout_stream, shortened from their 30 s / 120 s), registering over UDP once an hour, as a phone
 * with a long registration interval does; another baresip on ferry's side calls it. With the gateway's
 * OPTIONS pings every QUALIFY_MS (shorter than the router's timeout) the router keeps the mapping however
 * long the phone is silent, and the call rings the phone and carries audio both ways. The control, the
 * same world with FERRY_QUALIFY_MS=0: once the router forgot the idle mapping, the INVITE goes to a port
 * that leads nowhere and the phone never rings. Then, with pings on, the router forgets the mapping at
 * once (`conntrack -F`): two pings go unanswered, the gateway logs the registration unreachable, and a
 * call to the phone is refused 480 at once instead of ringing into nothing.
 */
const DESK = { user: '1001', password: 'desk-qualify-secret', displayName: 'Desk phone behind NAT' };
const CALLER = { user: 'alice', password: 'alice-qualify-secret', displayName: 'Caller on ferry\'s side' };
const CONNTRACK_UDP_S = 3;
const QUALIFY_MS = 1000;
/** FERRY_NO_ANSWER_MS: 3 s in the control world (the INVITE nothing answers), 6 s where pings run (Q2 tells a 480 at once from one after it) */
const NO_ANSWER_MS = { control: 3000, pinged: 6000 };
/**
 * FERRY_SIP_T1_MS in the control world: the given-up INVITE's transaction ends at Timer B = 64 × T1 (8 s instead of
 * 32 s), so the control world is done before the pinged one instead of about 3 s after it
 */
const CONTROL_T1_MS = 125;
/** the desk phone's registration interval: it does not register again during the test */
const REGINT_S = 3600;

/** one NAT world: the router, ferry with `env`, the phone behind the router and the caller outside */
class QualifyWorld {
  readonly world: NatWorld;
  desk: BaresipPhone | undefined;
  caller: BaresipPhone | undefined;
  /** when the desk phone's REGISTER was answered (it does not send again) */
  registeredAt = 0;

  constructor(env: Record<string, string>) {
    this.world = new NatWorld([DESK, CALLER], { env: { FERRY_NO_ANSWER_MS: String(NO_ANSWER_MS.pinged), ...env } });
  }

  async start(): Promise<void> {
    const { world } = this;
    await world.start();
    // the router forgets an idle UDP mapping after CONNTRACK_UDP_S: per network namespace, so only this router
    for (const key of ['nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream']) {
      await world.nat.inRouter('sysctl', ['-qw', `net.netfilter.${key}=${CONNTRACK_UDP_S}`]);
      assert.equal((await world.nat.inRouter('sysctl', ['-n', `net.netfilter.${key}`])).trim(), String(CONNTRACK_UDP_S), `${key} in the router namespace`);
    }
    this.desk = await BaresipPhone.start({
      user: DESK.user, password: DESK.password, registrar: world.registrar, answer: 'auto', regint: REGINT_S,
      netns: { name: world.nat.home, address: world.nat.homeAddress },
    });
    this.caller = await BaresipPhone.start({ user: CALLER.user, password: CALLER.password, registrar: world.registrar, address: world.nat.ferryAddress, regint: REGINT_S });
    await this.desk.waitRegistered(15_000);
    await this.caller.waitRegistered(15_000);
    this.registeredAt = Date.now();
  }

  async stop(): Promise<void> {
    await this.desk?.stop();
    await this.caller?.stop();
    await this.world.stop();
    assert.equal(await NatRouter.exists(this.world.nat.router), false, 'the router namespace is gone');
  }

  /** the router's mapping of the desk phone's SIP port towards ferry's SIP port */
  async sipMapping(): Promise<NatMapping | undefined> {
    return (await this.world.nat.mappings('udp')).find((m) => m.privatePort === this.desk!.sipPort && m.peer === this.world.nat.ferryAddress && m.peerPort === this.world.ready.sip);
  }

  /** the desk phone's events since `since` of a type */
  deskEvents(type: string, since: number): BaresipEvent[] {
    return this.desk!.events.filter((e) => e.type === type && e.at >= since);
  }

  /** the caller dials the desk phone */
  async dial(): Promise<number> {
    const at = Date.now();
    const r = await this.caller!.command('dial', `sip:${DESK.user}@${this.world.registrar}`);
    assert.ok(r.ok, `dial: ${r.data}`);
    return at;
  }

  /** the record of the call made since `since`, once `ready` says so (a call given up on stays `routing` until its INVITE's transaction ends) */
  async callRecord(since: number, ready: (r: CallRecord) => boolean, what: string, timeoutMs = 15_000): Promise<CallRecord> {
    let last: CallRecord | undefined;
    return waitFor(async () => {
      const all = (await this.world.api<{ calls: CallRecord[] }>('/api/calls?state=all')).calls;
      last = all.find((c) => c.createdAt >= since - 50) ?? last;
      return last && ready(last) ? last : undefined;
    }, timeoutMs, 100, what).catch((err: Error) => {
      throw new Error(`${err.message}; the call's record: ${last ? `${last.state} ${last.reason ?? ''}: ${events(last)}` : 'none'}`);
    });
  }

  diagnose(err: unknown): Error {
    return new Error(`${(err as Error).message}\n--- desk baresip events: ${this.desk?.events.map((e) => `${e.type}(${e.param ?? ''})`).join(' ')}\n--- desk log:\n${this.desk?.log.slice(-15).join('\n')}\n--- ferry:\n${this.world.tail(40)}`);
  }
}

const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');

// the two worlds are independent (own router, own ferry, own phones): the control and the pinged world run side by side
describe('NAT + qualify: the gateway\'s pings keep an idle phone\'s mapping open at the router; without them the call does not reach the phone', { timeout: 300_000, concurrency: 2 }, () => {
  describe('control: FERRY_QUALIFY_MS=0', { concurrency: 1 }, () => {
    const q = new QualifyWorld({ FERRY_QUALIFY_MS: '0', FERRY_NO_ANSWER_MS: String(NO_ANSWER_MS.control), FERRY_SIP_T1_MS: String(CONTROL_T1_MS) });
    before(() => q.start());
    after(() => q.stop());

    test('Q0: the router forgets the idle mapping after its UDP timeout; a call to the phone then never rings it: the INVITE is lost at the router, the caller gets 480 after FERRY_NO_ANSWER_MS', async () => {
      try {
        const first = await waitFor(() => q.sipMapping(), 5000, 100, 'the router\'s mapping of the phone\'s SIP port after its REGISTER');
        await waitFor(async () => (await q.sipMapping()) === undefined, (CONNTRACK_UDP_S + 10) * 1000, 200, 'the router forgot the idle mapping');
        const idle = Date.now() - q.registeredAt;
        console.log(`# without pings: the router forgot mapping ${first.privatePort} -> ${first.publicPort} ${idle} ms after the REGISTER`);
        assert.equal((await q.world.registrations(DESK.user))[0]?.source, `${q.world.nat.routerOutside}:${first.publicPort}`, 'ferry still knows the forgotten mapping');
        const since = await q.dial();
        // FERRY_NO_ANSWER_MS gives up on the INVITE that nothing answers (its transaction ends at Timer B, 64 × T1)
        const closed = await q.caller!.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= since, 40_000, 'the caller\'s call closed');
        console.log(`# without pings: the caller's call closed after ${closed.at - since} ms (${closed.param})`);
        assert.match(closed.param ?? '', /480/);
        assert.ok(closed.at - since >= NO_ANSWER_MS.control - 500, `given up after FERRY_NO_ANSWER_MS (${NO_ANSWER_MS.control} ms), not refused at once: the INVITE went out to the forgotten mapping`);
        const record = await q.callRecord(since, (r) => r.callee.party === DESK.user, 'the call routed to the phone');
        assert.ok(!record.timeline.some((e) => e.event === 'answered'), events(record));
        // the gateway's log line comes through ferry's stdout pipe, maybe after the caller already had its 480
        await waitFor(() => q.world.ferry.lines.some((l) => l.line.includes(record.id) && l.line.includes('"no-answer"')), 5000, 50, 'the gateway gave up: no-answer (its log line)');
        assert.equal(q.deskEvents('CALL_INCOMING', since).length + q.deskEvents('CALL_ESTABLISHED', since).length, 0, 'the phone never rang');
        assert.equal(await q.sipMapping(), undefined, 'nothing came back through the router');
        await q.world.waitReleased(40_000);
      } catch (err) {
        throw q.diagnose(err);
      }
    });
  });

  describe(`FERRY_QUALIFY_MS=${QUALIFY_MS}`, { concurrency: 1 }, () => {
    const q = new QualifyWorld({ FERRY_QUALIFY_MS: String(QUALIFY_MS), FERRY_QUALIFY_MAX_FAILURES: '2' });
    before(() => q.start());
    after(() => q.stop());

    test('Q1: the pings keep the same mapping open well past the router\'s timeout; a call then rings the phone through it, audio both ways, the hang-up reaches the phone', async () => {
      try {
        const first = await waitFor(() => q.sipMapping(), 5000, 100, 'the router\'s mapping of the phone\'s SIP port after its REGISTER');
        // the phone sends nothing; the mapping lives on only through the pings coming in through it
        const kept = await waitFor(async () => {
          const m = await q.sipMapping();
          if (!m) throw new Error('the router forgot the mapping although the gateway pings the phone');
          if (m.publicPort !== first.publicPort) throw new Error(`the mapping moved: ${first.publicPort} -> ${m.publicPort}`);
          return Date.now() - q.registeredAt > 3 * CONNTRACK_UDP_S * 1000 && m.packetsIn - first.packetsIn >= 5 ? m : undefined;
        }, (4 * CONNTRACK_UDP_S + 15) * 1000, 200, `the mapping alive ${3 * CONNTRACK_UDP_S} s after the REGISTER, with pings coming in`);
        console.log(`# with pings every ${QUALIFY_MS} ms: mapping ${kept.privatePort} -> ${kept.publicPort} alive ${Date.now() - q.registeredAt} ms after the REGISTER, ${kept.packetsIn} packets in, ${kept.packetsOut} out`);
        assert.ok(q.desk!.log.some((l) => /OPTIONS/.test(l)) || kept.packetsOut - first.packetsOut >= 5, 'the phone answered the pings (its answers went out through the mapping)');
        assert.equal((await q.world.registrations(DESK.user))[0]?.source, `${q.world.nat.routerOutside}:${first.publicPort}`, 'no new REGISTER');
        const since = await q.dial();
        await q.desk!.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= since, 15_000, 'CALL_ESTABLISHED at the phone behind NAT (auto-answer)');
        await q.caller!.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= since, 10_000, 'CALL_ESTABLISHED at the caller');
        // audio: both phone legs in ferry media, and the router's mapping of the desk phone's RTP, both ways
        await waitFor(async () => {
          const legs = (await q.world.media()).pipelinesDetail.flatMap((p) => p.elements).filter((e) => e.type === 'RtpEndpoint');
          return legs.length === 2 && legs.every((l) => l.packetsFromPeer > 100 && l.packetsToPeer > 100);
        }, 15_000, 100, 'RTP both ways at both phone legs in ferry media');
        const rtp = await waitFor(async () => (await q.world.nat.mappings('udp')).find((m) => m.privatePort !== q.desk!.sipPort && m.peer === q.world.nat.ferryAddress && m.packetsIn > 100 && m.packetsOut > 100), 10_000, 100, 'RTP both ways through the router\'s mapping of the phone\'s RTP port');
        console.log(`# audio through the router: ${rtp.privatePort} -> ${rtp.publicPort}: ${rtp.packetsOut} out, ${rtp.packetsIn} in`);
        assert.equal((await q.sipMapping())?.publicPort, first.publicPort, 'the INVITE came in through the mapping the pings kept');
        assert.ok((await q.caller!.command('hangup')).ok);
        await q.desk!.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= since, 5000, 'CALL_CLOSED at the phone behind NAT');
        const record = await q.callRecord(since, (r) => r.state === 'ended', 'the call\'s record ended');
        // baresip's hang-up is its SIP BYE and, from its RTP session, an RTCP BYE sent at the same moment:
        // whichever reaches ferry first names the end
        assert.ok(['sip-bye', 'rtcp-bye'].includes(record.reason!), events(record));
        await q.world.waitReleased();
      } catch (err) {
        throw q.diagnose(err);
      }
    });

    test('Q2: the router forgets the mapping at once: two unanswered pings later the gateway logs the registration unreachable, and a call is refused 480 at once instead of ringing into nothing', async () => {
      try {
        await q.world.nat.forgetMappings();
        const forgotAt = Date.now();
        const line = await waitFor(() => q.world.ferry.lines.find((l) => l.at >= forgotAt && l.line.includes('registration-unreachable')), 4 * QUALIFY_MS + 10_000, 100, 'registration-unreachable in ferry\'s log');
        console.log(`# unreachable ${line.at - forgotAt} ms after the router forgot: ${line.line}`);
        assert.ok(line.line.includes(DESK.user) && line.line.includes(q.world.nat.homeAddress), 'the line names the user and the Contact');
        assert.ok(!line.line.includes(DESK.password));
        const since = await q.dial();
        const closed = await q.caller!.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= since, 5000, 'the caller\'s call refused');
        assert.ok(closed.at - since < 3000, `refused after ${closed.at - since} ms, not after FERRY_NO_ANSWER_MS (${NO_ANSWER_MS.pinged} ms)`);
        assert.match(closed.param ?? '', /480|Temporarily Unavailable/i);
        assert.equal(q.deskEvents('CALL_INCOMING', since).length, 0);
        await q.world.waitReleased();
      } catch (err) {
        throw q.diagnose(err);
      }
    });
  });
});
