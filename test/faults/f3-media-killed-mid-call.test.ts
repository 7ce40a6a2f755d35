import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipInviteProbe } from '../helpers/sip-invite-probe';
import { SipPhone } from '../helpers/sip-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * F3 (docs/lifecycle.md): ferry media is SIGKILLed mid-call (an IP phone — scripted SIP + RTP —
 * calls the Chromium webphone on the gateway page), with the in-memory store and with Redis.
 * The gateway must stay up (same pid) and end the call it can no longer carry, both parties told:
 *  (a) media restarted at once: the gateway reconnects, finds the pipeline gone (checked by id)
 *      and BYEs both parties < 2 s after the media server is back, reason `media-lost`;
 *  (b) media stays down: both parties get BYE < 2 s after the loss (the gateway's grace is
 *      FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS = 1500 ms, its default; the remaining 500 ms is the margin
 *      for process scheduling on a loaded machine), reason `media-lost`; a new call during the
 *      outage gets 503 with Retry-After; once media is back a new call connects (positive control).
 * In (a) the grace is raised to 10 s so the end comes from the check after reconnecting, not from
 * the grace (a restart can take longer than 1.5 s on a loaded machine).
 */
const BOUND_MS = 2000;

interface World {
  stack: Stack;
  phone: SipPhone;
  webphone: GatewayWebphone;
  probe: SipInviteProbe;
  close(): Promise<void>;
}

async function startWorld(store: 'memory' | 'redis', graceMs: number | undefined): Promise<World> {
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
  try {
    stack = await startStack({
      ...(store === 'redis' ? { redisUrl: 'redis://127.0.0.1:6379' } : {}),
      env: { FERRY_SIP_CONFIG: file },
      ...(graceMs !== undefined ? { partEnv: { gateway: { FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS: String(graceMs) } } } : {}),
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
async function establishCall(w: World): Promise<CallRecord> {
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
  return calls[0]!;
}

async function endedRecord(w: World, id: string): Promise<CallRecord> {
  return waitFor(async () => {
    const r = await getJson<CallRecord>(w.stack.httpPort, `/api/calls/${id}`);
    return r.reason ? r : undefined;
  }, 5000, 25, `call ${id} has an end reason`);
}

/** how many times the gateway logged getting its media server back */
function reconnects(w: World): number {
  return w.stack.output.filter((l) => l.startsWith('[gateway]') && l.includes('media server reconnected')).length;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** a timeline as one line, for assertion messages */
function story(r: CallRecord): string {
  return r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
}

for (const store of ['memory', 'redis'] as const) {
  describe(`F3: ferry media killed mid-call (${store} store)`, { timeout: 150_000 }, () => {
    describe('(a) media restarted at once', () => {
      let w: World;
      before(async () => {
        w = await startWorld(store, 10_000);
      });
      after(async () => {
        await w?.close();
      });

      test(`F3a (${store}): gateway keeps its pid; both parties get BYE (media-lost) < ${BOUND_MS} ms after media is back; then a new call connects`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        const call = await establishCall(w);
        const killedAt = Date.now();
        await w.stack.kill('media', 'SIGKILL');
        await w.stack.restart('media');
        const backAt = Date.now();
        const bye = await w.phone.waitForRequest('BYE', 10_000, killedAt);
        await w.webphone.waitCallState('ended', 10_000);
        const webphoneEndedAt = (await w.webphone.endedAt())!;
        const record = await endedRecord(w, call.id);

        assert.equal(record.reason, 'media-lost', story(record));
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/, 'the BYE says why');
        assert.ok(story(record).includes('after reconnecting'), `ended by the check after reconnecting: ${story(record)}`);
        assert.ok(bye.at - backAt < BOUND_MS, `phone BYE ${bye.at - backAt} ms after media was back`);
        assert.ok(webphoneEndedAt - backAt < BOUND_MS, `webphone told ${webphoneEndedAt - backAt} ms after media was back`);
        assert.equal(w.stack.pid('gateway'), gatewayPid, 'same gateway process');
        assert.ok(alive(gatewayPid), 'the gateway process is alive');
        console.log(`# F3a ${store}: media back ${backAt - killedAt} ms after SIGKILL; phone BYE +${bye.at - backAt} ms, webphone told +${webphoneEndedAt - backAt} ms after media was back`);

        // positive control: the gateway works with the restarted media server
        await w.phone.media.stopMedia();
        const second = await establishCall(w);
        assert.notEqual(second.id, call.id);
        await w.webphone.hangup();
        await w.phone.waitForRequest('BYE', 5000, Date.now() - 100);
        await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
      });
    });

    describe('(b) media stays down', () => {
      let w: World;
      before(async () => {
        w = await startWorld(store, undefined);
      });
      after(async () => {
        await w?.close();
      });

      test(`F3b (${store}): both parties get BYE (media-lost) < ${BOUND_MS} ms after the loss; a new call meanwhile gets 503 + Retry-After; after media is back a new call connects`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        const call = await establishCall(w);
        const killedAt = Date.now();
        await w.stack.kill('media', 'SIGKILL');
        const bye = await w.phone.waitForRequest('BYE', 10_000, killedAt);
        await w.webphone.waitCallState('ended', 10_000);
        const webphoneEndedAt = (await w.webphone.endedAt())!;
        const record = await endedRecord(w, call.id);

        assert.equal(record.reason, 'media-lost', story(record));
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/);
        assert.ok(bye.at - killedAt < BOUND_MS, `phone BYE ${bye.at - killedAt} ms after the loss`);
        assert.ok(webphoneEndedAt - killedAt < BOUND_MS, `webphone told ${webphoneEndedAt - killedAt} ms after the loss`);

        const refused = await w.probe.invite('sip:alice@ferry.local', { host: '127.0.0.1', port: w.stack.sipPort });
        assert.equal(refused.status, 503, `${refused.status} ${refused.reason}`);
        assert.match(refused.headers.get('retry-after')?.[0] ?? '', /^\d+/, 'Retry-After');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
        assert.ok(alive(gatewayPid));
        console.log(`# F3b ${store}: phone BYE +${bye.at - killedAt} ms, webphone told +${webphoneEndedAt - killedAt} ms after SIGKILL; new call during the outage: ${refused.status} Retry-After ${refused.headers.get('retry-after')?.[0]}`);

        // positive control: media back, a new call connects (the 503 was about the outage only)
        await w.phone.media.stopMedia();
        const reconnectsBefore = reconnects(w);
        await w.stack.restart('media');
        await waitFor(() => reconnects(w) > reconnectsBefore, 5000, 25, 'the gateway reconnected to the media server');
        const second = await establishCall(w);
        assert.notEqual(second.id, call.id);
        await w.phone.hangup();
        await w.webphone.waitCallState('ended', 5000);
        await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
      });
    });
  });
}
