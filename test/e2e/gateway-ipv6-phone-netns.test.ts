import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { warmChromium } from '../helpers/chromium';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { BaresipPhone } from '../helpers/baresip-phone';
import { NetNamespace } from '../helpers/netns';

const run = promisify(execFile);

/**
 * A desk phone on a real IPv6 link (docs/deploy.md, "IPv6"): baresip in a network namespace of its own,
 * joined to this host by a veth pair carrying a unique local /64 (fd0f:<pid>:<k>::/64, `nodad`), SIP over
 * UDP and RTP on its IPv6 address only. ferry sip listens dual-stack on `::` and tells the phone the host's
 * address on that /64 (not another IPv6 address of the host); ferry media's RTP is on the host's end of
 * the link. The phone registers with digest, calls the webphone page (Chromium, WebSocket and WebRTC on
 * IPv4 loopback) and is called by it: audio both ways on both legs at ferry media and at the page; the
 * hang-ups release the pipeline. Needs root (ip netns).
 */
const DESK_PASSWORD = 'desk-ipv6-link-secret';
const ALICE_PASSWORD = 'alice-ipv6-link-secret';
type Element = { type: string; packetsFromPeer: number; packetsToPeer: number };

describe('a desk phone on an IPv6 link (network namespace) and a webphone', { timeout: 120_000 }, () => {
  let ns: NetNamespace;
  let stack: Stack;
  let webphone: GatewayWebphone;
  let phone: BaresipPhone;
  let dir: string;
  let hostV6: string;
  let phoneV6: string;

  before(async () => {
    ns = await NetNamespace.create();
    const prefix = `fd0f:${(process.pid & 0xffff).toString(16)}:${(Date.now() & 0xffff).toString(16)}`;
    hostV6 = `${prefix}::1`;
    phoneV6 = `${prefix}::2`;
    await run('ip', ['-6', 'addr', 'add', `${hostV6}/64`, 'dev', ns.hostVeth, 'nodad']);
    await ns.exec('ip', ['-6', 'addr', 'add', `${phoneV6}/64`, 'dev', ns.phoneVeth, 'nodad']);
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ipv6-link-'));
    const config = path.join(dir, 'ferry.json');
    await writeFile(config, JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'alice', password: ALICE_PASSWORD }, { user: 'desk', password: DESK_PASSWORD }],
      routes: [{ match: '.*', to: 'user' }],
    }));
    warmChromium();
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: config },
      partEnv: {
        sip: { FERRY_SIP_HOST: '::' },
        media: { FERRY_MEDIA_RTP_HOST: hostV6, FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.1' },
      },
    });
    webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: ALICE_PASSWORD });
    phone = await BaresipPhone.start({ user: 'desk', password: DESK_PASSWORD, registrar: `[${hostV6}]:${stack.sipPort}`, netns: { name: ns.name, address: phoneV6 }, answer: 'auto' });
  });

  after(async () => {
    await phone?.stop().catch(() => undefined);
    await webphone?.close().catch(() => undefined);
    await stack?.stop();
    await ns?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const elements = async (): Promise<Element[]> =>
    (await getJson<{ pipelinesDetail: { elements: Element[] }[] }>(stack.mediaPort, '/stats')).pipelinesDetail.flatMap((p) => p.elements);

  const audioBothWays = async (): Promise<void> => {
    let seen: Element[] = [];
    await waitFor(async () => {
      seen = await elements();
      return seen.length === 2 && seen.every((e) => e.packetsFromPeer > 20 && e.packetsToPeer > 20);
    }, 10_000, 100, 'RTP both ways on both legs at ferry media').catch((err: Error) => {
      throw new Error(`${err.message} (${JSON.stringify(seen)})`);
    });
    const base = (await webphone.rtpStats()).received;
    await waitFor(async () => (await webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from the phone at the browser');
  };

  const released = async (): Promise<void> => {
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
  };

  test('the phone registers over UDP from its IPv6 address with digest', async () => {
    await phone.waitRegistered(10_000);
    const regs = await getJson<{ registrations: { contact: string; source: string }[] }>(stack.httpPort, '/api/registrations?user=desk');
    assert.equal(regs.registrations.length, 1, JSON.stringify(regs));
    assert.ok(regs.registrations[0]!.contact.includes(`[${phoneV6}]`), JSON.stringify(regs));
  });

  test('the phone calls the webphone over the IPv6 link: audio both ways, its hang-up releases everything', async () => {
    await phone.command('dial', `sip:alice@[${hostV6}]:${stack.sipPort}`);
    await webphone.waitCallState('ringing-in', 15_000);
    await webphone.answer();
    await webphone.waitCallState('connected', 10_000);
    await audioBothWays();
    await phone.command('hangup');
    await webphone.waitCallState('ended', 5000);
    await released();
  });

  test('the webphone calls the phone on the IPv6 link: audio both ways, the page hangs up, everything is released', async () => {
    await webphone.dial('desk');
    await webphone.waitCallState('connected', 15_000);
    await audioBothWays();
    await webphone.hangup();
    await phone.waitEvent((e) => e.type === 'CALL_CLOSED', 5000, 'the phone saw the BYE');
    await released();
  });
});
