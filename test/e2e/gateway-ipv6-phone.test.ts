import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { warmChromium } from '../helpers/chromium';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { BaresipPhone } from '../helpers/baresip-phone';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A desk phone on IPv6 (docs/deploy.md, "IPv6"): ferry sip listens dual-stack (FERRY_SIP_HOST=::),
 * ferry media binds its RTP sockets on an IPv6 address (FERRY_MEDIA_RTP_HOST=::1, so RtpEndpoint SDP
 * says c=IN IP6) and its WebRTC legs on IPv4 (FERRY_MEDIA_ICE_ADDRESSES). The phone (scripted SIP over
 * UDP on [::1], RTP on [::1]) registers with digest and calls the gateway's webphone page in Chromium
 * (its WebSocket on IPv4 loopback, reaching the same dual-stack listener), and the page calls it:
 * audio both ways at the phone, at the page and on both of ferry media's legs; the hang-up releases
 * the pipeline. baresip on [::1] does the same over SIP/TCP. With ferry media's RTP on IPv4 the IPv6
 * phone is refused (488, a Warning naming IPv6) instead of getting a call without audio.
 */
const DESK_PASSWORD = 'desk-ipv6-secret';
const ALICE_PASSWORD = 'alice-ipv6-secret';

type Element = { type: string; packetsFromPeer: number; packetsToPeer: number };

// The three worlds (each its own stack, phones and, for two of them, webphone page) run side by side;
// each world's tests share its phones and page, so they run one at a time (concurrency 1 stated: node:test
// passes a suite's concurrency down)
describe('IPv6 desk phones: three worlds side by side', { concurrency: true, timeout: 180_000 }, () => {
  describe('a desk phone on IPv6 calls a webphone and is called by it', { concurrency: 1, timeout: 120_000 }, () => {
    let stack: Stack;
    let phone: SipPhone;
    let rtp: RtpPhone;
    let webphone: GatewayWebphone;
    let dir: string;

    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ipv6-'));
      const config = path.join(dir, 'ferry.json');
      await writeFile(config, JSON.stringify({
        domain: 'ferry.local',
        users: [{ user: 'alice', password: ALICE_PASSWORD }, { user: 'desk', password: DESK_PASSWORD }, { user: 'desk6tcp', password: DESK_PASSWORD }],
        routes: [{ match: '.*', to: 'user' }],
      }));
      rtp = new RtpPhone({ address: '::1' });
      phone = new SipPhone(rtp, { address: '::1', user: 'desk' });
      await phone.start();
      warmChromium();
      stack = await startStack({
        env: { FERRY_SIP_CONFIG: config },
        partEnv: {
          sip: { FERRY_SIP_HOST: '::' },
          media: { FERRY_MEDIA_RTP_HOST: '::1', FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.1' },
        },
      });
      webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: ALICE_PASSWORD });
    });

    after(async () => {
      await webphone?.close().catch(() => undefined);
      await phone?.close().catch(() => undefined);
      await stack?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const elements = async (): Promise<Element[]> =>
      (await getJson<{ pipelinesDetail: { elements: Element[] }[] }>(stack.mediaPort, '/stats')).pipelinesDetail.flatMap((p) => p.elements);

    /** RTP both ways at the phone, at the page, and on both legs at ferry media */
    const audioBothWays = async (since: number): Promise<void> => {
      await waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the browser at the IPv6 phone');
      const base = (await webphone.rtpStats()).received;
      await waitFor(async () => (await webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from the IPv6 phone at the browser');
      let seen: Element[] = [];
      await waitFor(async () => {
        seen = await elements();
        return seen.length === 2 && seen.every((e) => e.packetsFromPeer > 20 && e.packetsToPeer > 20);
      }, 8000, 100, 'RTP both ways on both legs at ferry media').catch((err: Error) => {
        throw new Error(`${err.message} (${JSON.stringify(seen)})`);
      });
    };

    const released = async (): Promise<void> => {
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
    };

    const newestCall = async (): Promise<CallRecord> => {
      const all = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt);
      return getJson<CallRecord>(stack.httpPort, `/api/calls/${all[0]!.id}`);
    };

    test('the phone registers over UDP on [::1] with digest: its binding is the IPv6 address', async () => {
      await phone.register({ host: '::1', port: stack.sipPort }, DESK_PASSWORD);
      const regs = await getJson<{ registrations: { user: string; contact: string; transport: string; source?: unknown }[] }>(stack.httpPort, '/api/registrations?user=desk');
      assert.equal(regs.registrations.length, 1, JSON.stringify(regs));
      assert.match(regs.registrations[0]!.contact, /@\[::1\]:\d+/, JSON.stringify(regs));
    });

    test('the IPv6 phone calls the webphone: c=IN IP6 to the phone, audio both ways, its BYE releases everything', async () => {
      const since = Date.now();
      const calling = phone.call('sip:alice@ferry.local', { host: '::1', port: stack.sipPort }, { password: DESK_PASSWORD });
      await webphone.waitCallState('ringing-in', 15_000);
      await webphone.answer();
      await calling;
      await webphone.waitCallState('connected', 10_000);
      // the answer's Contact (where the phone sends its ACK and BYE) and SDP name IPv6 addresses
      assert.match(phone.remoteTargetUri ?? '', /^sip:[^@]*@?\[[0-9a-f:]+\]:\d+/i, `Contact of the 200: ${phone.remoteTargetUri}`);
      assert.equal(rtp.remoteAddress, '::1', 'the answer SDP names ferry media on c=IN IP6 ::1');
      await audioBothWays(since);
      await phone.media.stopMedia();
      await phone.hangup();
      await webphone.waitCallState('ended', 5000);
      await released();
      const rec = await newestCall();
      assert.equal(rec.state, 'ended');
      assert.equal(rec.reason, 'sip-bye');
    });

    test('baresip on [::1] over SIP/TCP registers with digest and calls the webphone: audio both ways, its hang-up releases everything', async () => {
      const bs = await BaresipPhone.start({ user: 'desk6tcp', password: DESK_PASSWORD, registrar: `[::1]:${stack.sipPort}`, transport: 'tcp', address: '::1', answer: 'auto' });
      try {
        await bs.waitRegistered(10_000);
        const regs = await getJson<{ registrations: { contact: string; transport: string }[] }>(stack.httpPort, '/api/registrations?user=desk6tcp');
        assert.equal(regs.registrations.length, 1, JSON.stringify(regs));
        assert.match(regs.registrations[0]!.contact, /\[::1\]/, JSON.stringify(regs));
        assert.equal(regs.registrations[0]!.transport, 'tcp', JSON.stringify(regs));
        await bs.command('dial', `sip:alice@[::1]:${stack.sipPort};transport=tcp`);
        await webphone.waitCallState('ringing-in', 15_000);
        await webphone.answer();
        await webphone.waitCallState('connected', 10_000);
        let seen: Element[] = [];
        await waitFor(async () => {
          seen = await elements();
          return seen.length === 2 && seen.every((e) => e.packetsFromPeer > 20 && e.packetsToPeer > 20);
        }, 10_000, 100, 'RTP both ways on both legs at ferry media').catch((err: Error) => {
          throw new Error(`${err.message} (${JSON.stringify(seen)})`);
        });
        const base = (await webphone.rtpStats()).received;
        await waitFor(async () => (await webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from baresip at the browser');
        await bs.command('hangup');
        await webphone.waitCallState('ended', 5000);
        await released();
      } finally {
        await bs.stop();
      }
    });

    test('the webphone calls the IPv6 phone: audio both ways, the page hangs up and everything is released', async () => {
      const since = Date.now();
      await webphone.dial('desk');
      await waitFor(async () => phone.inCall, 15_000, 25, 'the IPv6 phone answered');
      await webphone.waitCallState('connected', 10_000);
      // the INVITE the phone got: ferry sip's Via, Record-Route/Contact and the offer's c= on IPv6
      const invite = [...phone.received].reverse().find((r) => r.method === 'INVITE')!.message;
      const head = (name: string): string => (invite.headers.get(name) ?? []).join(', ');
      assert.match(head('via'), /^SIP\/2\.0\/UDP \[[0-9a-f:]+\]:\d+/i, head('via'));
      assert.match(head('contact'), /@?\[[0-9a-f:]+\]:\d+/i, head('contact'));
      assert.match(invite.body, /^c=IN IP6 ::1\r?$/m, invite.body);
      await audioBothWays(since);
      await webphone.hangup();
      await waitFor(async () => !phone.inCall, 5000, 25, 'the phone got the BYE');
      await released();
      const rec = await newestCall();
      assert.equal(rec.state, 'ended');
    });
  });

  /**
   * The same phone when ferry media's RTP is on IPv4 (FERRY_MEDIA_RTP_HOST 127.0.0.1, the default): its
   * c=IN IP6 offer is refused with 488 and a Warning naming IPv6 and the setting, not a call with no audio;
   * nothing is left on the media server. Control: an IPv4 phone on the same stack gets through.
   */
  describe('an IPv6 phone while ferry media has RTP on IPv4 only', { concurrency: 1, timeout: 90_000 }, () => {
    let stack: Stack;
    let phone: SipPhone;
    let v4phone: SipPhone;
    let webphone: GatewayWebphone;
    let dir: string;

    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ipv6-'));
      const config = path.join(dir, 'ferry.json');
      await writeFile(config, JSON.stringify({
        domain: 'ferry.local',
        users: [{ user: 'alice', password: ALICE_PASSWORD }, { user: 'desk', password: DESK_PASSWORD }, { user: 'desk4', password: DESK_PASSWORD }],
        routes: [{ match: '.*', to: 'user' }],
      }));
      phone = new SipPhone(new RtpPhone({ address: '::1' }), { address: '::1', user: 'desk' });
      await phone.start();
      v4phone = new SipPhone(new RtpPhone(), { user: 'desk4' });
      await v4phone.start();
      warmChromium();
      stack = await startStack({ env: { FERRY_SIP_CONFIG: config }, partEnv: { sip: { FERRY_SIP_HOST: '::' } } });
      webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: ALICE_PASSWORD });
      await phone.register({ host: '::1', port: stack.sipPort }, DESK_PASSWORD);
      await v4phone.register({ host: '127.0.0.1', port: stack.sipPort }, DESK_PASSWORD);
    });

    after(async () => {
      await webphone?.close().catch(() => undefined);
      await phone?.close().catch(() => undefined);
      await v4phone?.close().catch(() => undefined);
      await stack?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('the IPv6 phone\'s call is refused 488 with a Warning naming IPv6; control: the IPv4 phone\'s call connects', async () => {
      const refused = await phone.call('sip:alice@ferry.local', { host: '::1', port: stack.sipPort }, { password: DESK_PASSWORD })
        .then(() => undefined, (err: Error & { status?: number; headers?: Map<string, string[]> }) => err);
      assert.ok(refused, 'the call was refused');
      assert.equal(refused.status, 488, refused.message);
      assert.match((refused.headers?.get('warning') ?? []).join(' '), /IPv6.*FERRY_MEDIA_RTP_HOST/, JSON.stringify([...(refused.headers ?? new Map())]));
      assert.equal(await webphone.callState(), 'idle', 'the webphone never rang');
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'nothing left at ferry media');

      const calling = v4phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: stack.sipPort }, { password: DESK_PASSWORD });
      await webphone.waitCallState('ringing-in', 15_000);
      await webphone.answer();
      await calling;
      await webphone.waitCallState('connected', 10_000);
      await v4phone.hangup();
      await webphone.waitCallState('ended', 5000);
    });

    test('the webphone calls the IPv6 phone: its c=IN IP6 answer is refused, the call ends for both (BYE to the phone, the page told), nothing left', async () => {
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'the previous call released');
      const byes = phone.received.filter((r) => r.method === 'BYE').length;
      await webphone.dial('desk');
      await waitFor(async () => phone.received.filter((r) => r.method === 'BYE').length > byes, 15_000, 25, 'the phone answered and then got a BYE');
      await waitFor(async () => ['ended', 'failed'].includes(await webphone.callState()), 10_000, 25, 'the page saw the call end');
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'nothing left at ferry media');
      const all = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.sort((a, b) => b.createdAt - a.createdAt);
      const rec = await getJson<CallRecord>(stack.httpPort, `/api/calls/${all[0]!.id}`);
      assert.equal(rec.state, 'ended');
      assert.match(JSON.stringify(rec.timeline), /IPv6/, JSON.stringify(rec.timeline));
    });
  });

  /**
   * ferry sip on one IPv6 address (FERRY_SIP_HOST=::1, no wildcard): two IPv6 phones register and one calls
   * the other; Via and Contact carry the address in brackets, RTP on c=IN IP6.
   */
  describe('ferry sip listening on ::1 only: IPv6 phone calls IPv6 phone', { concurrency: 1, timeout: 60_000 }, () => {
    let stack: Stack;
    let caller: SipPhone;
    let callee: SipPhone;
    let dir: string;

    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ipv6-'));
      const config = path.join(dir, 'ferry.json');
      await writeFile(config, JSON.stringify({
        domain: 'ferry.local',
        users: [{ user: 'desk', password: DESK_PASSWORD }, { user: 'desk2', password: DESK_PASSWORD }],
        routes: [{ match: '.*', to: 'user' }],
      }));
      caller = new SipPhone(new RtpPhone({ address: '::1' }), { address: '::1', user: 'desk' });
      callee = new SipPhone(new RtpPhone({ address: '::1' }), { address: '::1', user: 'desk2' });
      await caller.start();
      await callee.start();
      stack = await startStack({
        env: { FERRY_SIP_CONFIG: config },
        partEnv: { sip: { FERRY_SIP_HOST: '::1' }, media: { FERRY_MEDIA_RTP_HOST: '::1', FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.1' } },
      });
      await caller.register({ host: '::1', port: stack.sipPort }, DESK_PASSWORD);
      await callee.register({ host: '::1', port: stack.sipPort }, DESK_PASSWORD);
    });

    after(async () => {
      await caller?.close().catch(() => undefined);
      await callee?.close().catch(() => undefined);
      await stack?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('the call connects with [::1] in Via and Contact, RTP both ways, the BYE releases the pipeline', async () => {
      const since = Date.now();
      await caller.call('sip:desk2@ferry.local', { host: '::1', port: stack.sipPort }, { password: DESK_PASSWORD });
      assert.match(caller.remoteTargetUri ?? '', /^sip:(?:[^@]*@)?\[::1\]:\d+/, `Contact of the 200: ${caller.remoteTargetUri}`);
      const invite = [...callee.received].reverse().find((r) => r.method === 'INVITE')!.message;
      const head = (name: string): string => (invite.headers.get(name) ?? []).join(', ');
      assert.match(head('via'), /^SIP\/2\.0\/UDP \[::1\]:\d+/, head('via'));
      assert.match(head('contact'), /^<sip:(?:[^@]*@)?\[::1\]:\d+/, head('contact'));
      assert.match(invite.body, /^c=IN IP6 ::1\r?$/m, invite.body);
      await waitFor(async () => (await caller.media.rtpReceivedBetween(since, Date.now())) > 20 && (await callee.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP both ways between the phones');
      await caller.media.stopMedia();
      await caller.hangup();
      await waitFor(async () => !callee.inCall, 5000, 25, 'the callee got the BYE');
      await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
    });
  });
});
