import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { warmChromium } from './chromium';
import { GatewayWebphone } from './gateway-webphone';
import { RtpPhone } from './rtp-phone';
import { SipInviteProbe } from './sip-invite-probe';
import { SipPhone } from './sip-phone';
import { getJson, startStack, waitFor, type Stack } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The world of the media fault scenarios (F3, F4): the three ferry processes on free ports (memory
 * store or the shared Redis with a unique prefix, cleaned on close), a scripted IP phone (SIP + RTP)
 * as trunk "phone", the gateway's webphone page in Chromium registered as alice, and a SIP INVITE
 * probe declared as trunk "probe" (to see how a new call is answered). Options: `graceMs` sets
 * FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS (default: the gateway's); `partEnv` adds per-part environment
 * (e.g. a fixed FERRY_MEDIA_PORT and a FERRY_MEDIA_URL through a TcpCutter).
 */
export interface World {
  stack: Stack;
  phone: SipPhone;
  webphone: GatewayWebphone;
  probe: SipInviteProbe;
  close(): Promise<void>;
}

export interface WorldOptions {
  graceMs?: number;
  partEnv?: { media?: Record<string, string>; gateway?: Record<string, string> };
}

export async function startWorld(store: 'memory' | 'redis', options: WorldOptions = {}): Promise<World> {
  const phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
  const phonePort = await phone.start();
  const probe = await SipInviteProbe.open();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-f3-'));
  const file = path.join(dir, 'ferry.json');
  await writeFile(file, JSON.stringify({
    domain: 'ferry.local',
    users: [{ user: 'alice', password: 'alice-f3-secret' }],
    trunks: [
      { name: 'phone', address: `127.0.0.1:${phonePort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${phonePort}`] },
      { name: 'probe', address: `127.0.0.1:${probe.port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${probe.port}`] },
    ],
    routes: [{ match: '9(\\d+)', to: 'trunk:phone', rewrite: '$1' }, { match: '.*', to: 'user' }],
  }));
  let stack: Stack | undefined;
  // the process's shared Chromium launches (if it has not yet) while the ferry processes start
  warmChromium();
  try {
    stack = await startStack({
      ...(store === 'redis' ? { redisUrl: 'redis://127.0.0.1:6379' } : {}),
      env: { FERRY_SIP_CONFIG: file },
      partEnv: {
        media: options.partEnv?.media ?? {},
        gateway: {
          ...(options.graceMs !== undefined ? { FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS: String(options.graceMs) } : {}),
          ...(options.partEnv?.gateway ?? {}),
        },
      },
    });
    const webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: 'alice-f3-secret' });
    const s = stack;
    return {
      stack: s,
      phone,
      webphone,
      probe,
      async close() {
        await webphone.close();
        await phone.close();
        await probe.close();
        if (process.env.FERRY_TEST_DUMP) console.log(s.output.filter((l) => l.startsWith('[gateway')).slice(-80).join('\n'));
        await s.stop();
        if (store === 'redis') await clearRedisPrefix(s.redisPrefix);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stack?.stop();
    await phone.close();
    await probe.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function clearRedisPrefix(prefix: string): Promise<void> {
  const { default: Redis } = await import('ioredis');
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** the phone calls alice, the webphone answers, RTP flows both ways; returns the live call's record */
export async function establishCall(w: World): Promise<CallRecord> {
  const since = Date.now();
  const calling = w.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: w.stack.sipPort });
  await w.webphone.waitCallState('ringing-in', 15_000);
  await w.webphone.answer();
  await calling;
  await w.webphone.waitCallState('connected', 10_000);
  await waitFor(async () => (await w.phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the browser at the phone');
  const base = (await w.webphone.rtpStats()).received;
  await waitFor(async () => (await w.webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from the phone at the browser');
  const calls = (await getJson<{ calls: CallRecord[] }>(w.stack.httpPort, '/api/calls')).calls.filter((c) => c.state === 'answered');
  assert.equal(calls.length, 1, `one answered call: ${JSON.stringify(calls.map((c) => c.state))}`);
  // the list holds summaries; the whole record (dialogs, media ids) is at /api/calls/:id
  return getJson<CallRecord>(w.stack.httpPort, `/api/calls/${calls[0]!.id}`);
}

export async function endedRecord(w: World, id: string): Promise<CallRecord> {
  return waitFor(async () => {
    const r = await getJson<CallRecord>(w.stack.httpPort, `/api/calls/${id}`);
    return r.reason ? r : undefined;
  }, 5000, 25, `call ${id} has an end reason`);
}

/** how many gateway log lines so far contain `text` */
export function gatewayLogCount(w: World, text: string): number {
  return w.stack.output.filter((l) => l.startsWith('[gateway]') && l.includes(text)).length;
}

/** how many times the gateway logged getting its media server back */
export function reconnects(w: World): number {
  return gatewayLogCount(w, 'media server reconnected');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** a timeline as one line, for assertion messages */
export function story(r: CallRecord): string {
  return r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
}
