import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { FerryStartProcess } from '../helpers/ferry-start-process';
import { allCalls, endedRecord, HANGUP_BOUND_MS, phoneCallsWebphone, phoneHangsUpWebphoneTold, startFerryStartCallWorld, webphoneHangsUpPhoneTold, type FerryStartCallWorld } from '../helpers/ferry-start-call-world';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { MEMORY_MODE_WARNING } from '../../src/cli/gateway-state-store';

/**
 * docs/lifecycle.md F1, F2, F10, through `ferry start` itself (what `npm start` runs): ferry sip,
 * ferry media, the gateway and (default mode) the private redis-server as real supervised processes;
 * a real Chromium webphone registered as alice on the gateway's page; a scripted SIP desk phone
 * with a real RTP peer. The gateway child is SIGKILLed mid-call; ferry start restarts it with the
 * same instance id. The gateway lease stays at its default (10 s): an adoption within 2 s can only
 * come from the same-id restart, not from a lease running out.
 */
const SHARED_REDIS = 'redis://127.0.0.1:6379';
const ADOPT_BOUND_MS = 2000;
/**
 * ferry sip ends a dialog no app owns after this long: short here, so an unclaimed adopted call would
 * be cut within the test (F1 and F2 wait it out once each), yet longer than a gateway restart takes on
 * a loaded machine (~1-3 s; 0.6-1.1 s measured here)
 */
const ORPHAN_DIALOG_MS = 5000;

interface World extends FerryStartCallWorld {
  redis: Redis;
  prefix: string;
}

async function startWorld(mode: 'default' | 'redis', extraEnv: Record<string, string> = {}): Promise<World> {
  const prefix = mode === 'redis' ? `ferry-f2-${randomUUID().slice(0, 8)}:` : 'ferry:';
  const env: Record<string, string> = { FERRY_SIP_ORPHAN_DIALOG_MS: String(ORPHAN_DIALOG_MS) };
  if (mode === 'redis') Object.assign(env, { REDIS_URL: SHARED_REDIS, FERRY_REDIS_PREFIX: prefix });
  Object.assign(env, extraEnv);
  let redis: Redis | undefined;
  const base = await startFerryStartCallWorld('ferry-f1', env, {
    onReady: (ready) => {
      assert.equal(ready.store, mode === 'redis' ? 'redis' : 'private-redis');
      redis = new Redis(mode === 'redis' ? SHARED_REDIS : `redis://127.0.0.1:${ready.redis}`, { maxRetriesPerRequest: 2 });
    },
    onClose: async () => {
      if (redis && mode === 'redis') {
        const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
        if (keys.length) await redis.del(...keys).catch(() => undefined);
      }
      redis?.disconnect();
    },
  });
  return { ...base, redis: redis!, prefix };
}

const calls = allCalls;

/** the gateway child running now (ferry start's ready line names the first one; restarts get new pids) */
function gatewayPid(w: World): number {
  const pid = w.fs.childPid('gateway');
  assert.ok(pid, `a running gateway child of ferry start ${w.fs.child.pid}`);
  return pid;
}

/** SIGKILL the gateway child; resolves with the kill time and the time the restarted gateway connected to ferry sip. */
async function killGateway(w: World): Promise<{ killedAt: number; connectedAt: number }> {
  const killedAt = Date.now();
  process.kill(gatewayPid(w), 'SIGKILL');
  const connected = await w.fs.gatewayEvent('connected to SIP engine', killedAt, 30_000);
  assert.equal(connected.meta.instanceId, w.ready.gatewayId, 'the restarted gateway runs under the same instance id');
  return { killedAt, connectedAt: connected.at };
}

/**
 * Samples the webphone's received-RTP counter (Chromium getStats via the page) until stop(): the
 * longest time it did not change, and how many samples were taken.
 */
function watchWebphoneRtp(w: World): { stop(): Promise<{ longestMs: number; samples: number }> } {
  let running = true;
  let samples = 0;
  let lastValue = -1;
  let lastChange = Date.now();
  let longestMs = 0;
  const loop = (async () => {
    while (running) {
      const value = (await w.webphone.rtpStats()).received;
      const now = Date.now();
      samples++;
      if (value !== lastValue) {
        longestMs = Math.max(longestMs, now - lastChange);
        lastValue = value;
        lastChange = now;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    longestMs = Math.max(longestMs, Date.now() - lastChange);
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestMs, samples };
    },
  };
}

/** SIGKILL the gateway child and wait until it is gone (the supervisor restarts it after a back-off); resolves with the kill time. */
async function killGatewayAndWaitGone(w: World): Promise<number> {
  const pid = gatewayPid(w);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await waitFor(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000, 5, 'the gateway child gone');
  return killedAt;
}

async function adoptedAt(w: World, id: string): Promise<number> {
  const rec = await waitFor(async () => {
    const r = await getJson<CallRecord>(w.ready.http, `/api/calls/${id}`).catch(() => undefined);
    return r?.timeline.some((e) => e.event === 'adopted') ? r : undefined;
  }, 15_000, 25, `call ${id} adopted by the restarted gateway`);
  return rec.timeline.find((e) => e.event === 'adopted')!.t;
}


/**
 * The kill-and-restart part shared by F1 and F2: media never stops (the phone's largest RTP gap
 * < 100 ms, net of this test process's own stalls), adoption < 2 s after the new gateway connected,
 * alice's registration still in the store; the adopter claimed both dialogs in ferry sip, so the
 * call outlives ferry sip's orphan deadline untouched.
 */
async function killAndAdopt(w: World, call: CallRecord, label: string, opts: { pastOrphanDeadline: boolean }): Promise<void> {
  const webphoneRtp = watchWebphoneRtp(w);
  const { killedAt, connectedAt } = await killGateway(w);
  const adopted = await adoptedAt(w, call.id);
  const end = Date.now();
  const webStall = await webphoneRtp.stop();
  const phoneGap = await w.phone.media.maxRtpGap(killedAt - 200, end);
  const phoneSendGap = await w.phone.media.maxSendGap(killedAt - 200, end);
  // the phone's receive times are taken by this (test) process: a stall of ours shows up in its own send gaps too
  assert.ok(phoneGap < Math.max(100, phoneSendGap + 100), `largest RTP gap webphone -> phone across the restart: ${phoneGap} ms (our own largest send gap ${phoneSendGap} ms)`);
  // the browser's counter, read through the page every 100 ms or so: a coarse check that the other direction never stopped either
  assert.ok(webStall.samples >= 5, `webphone RTP counter sampled ${webStall.samples} times`);
  assert.ok(webStall.longestMs < 1000, `phone -> webphone across the restart: the webphone's received-packet counter stood still for ${webStall.longestMs} ms at most (< 1000 ms)`);
  const adoptMs = adopted - connectedAt;
  assert.ok(adoptMs < ADOPT_BOUND_MS, `adopted ${adoptMs} ms after the restarted gateway connected (bound ${ADOPT_BOUND_MS} ms)`);
  const bindings = await w.redis.hgetall(`${w.prefix}reg:alice`);
  assert.ok(Object.keys(bindings).length >= 1, `alice's registration is still in the store: ${JSON.stringify(bindings)}`);
  const claims = await waitFor(() => {
    const n = w.fs.lines.filter((l) => l.at >= killedAt && l.line.startsWith('[sip] {') && l.line.includes('"message":"dialog claimed by app"')).length;
    return n >= 2 ? n : undefined;
  }, 5000, 25, 'ferry sip logging both dialogs claimed');
  assert.equal(claims, 2, 'both dialogs claimed once');
  const measured = `[measure] ${label}: adopted ${adoptMs} ms after the restarted gateway connected (${adopted - killedAt} ms after the SIGKILL); largest RTP gap at the phone ${phoneGap} ms (own send gap ${phoneSendGap} ms); webphone's RTP counter never still > ${webStall.longestMs} ms (${webStall.samples} samples)`;
  if (!opts.pastOrphanDeadline) return console.log(measured);
  // past ferry sip's orphan deadline (counted from the kill): nobody was sent a BYE, media still flows
  const pastDeadline = killedAt + ORPHAN_DIALOG_MS + 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, pastDeadline - Date.now())));
  assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, 'no BYE reached the phone');
  assert.equal(await w.webphone.callState(), 'connected', 'the webphone is still in the call');
  const flowing = Date.now();
  await waitFor(async () => (await w.phone.media.rtpReceivedBetween(flowing, Date.now())) > 10, 3000, 50, 'RTP still reaching the phone');
  console.log(`${measured}; no BYE past the orphan deadline`);
}

/**
 * F1 (default mode) or F2 (REDIS_URL mode) in a running world: two calls, each with the gateway
 * SIGKILLed mid-call and adopted by its same-id successor; the phone hangs up the first, the webphone
 * the second.
 */
async function killedTwiceScenario(w: World, mode: 'default' | 'redis'): Promise<void> {
  const id = mode === 'default' ? 'F1' : 'F2';
  if (mode === 'default') {
    assert.ok(w.ready.pids.redis, 'ferry start runs its private redis-server');
    assert.ok(!w.fs.lines.some((l) => l.line.startsWith(MEMORY_MODE_WARNING)), 'no memory-mode warning in the default mode');
  } else {
    assert.equal(w.ready.pids.redis, undefined, 'no private redis-server when REDIS_URL is given');
  }

  // first call: the phone hangs up after the restart
  const first = await phoneCallsWebphone(w);
  await killAndAdopt(w, first, `${id} call 1`, { pastOrphanDeadline: true });
  const { webphoneTold } = await phoneHangsUpWebphoneTold(w, first);

  // second call, placed after the restart: alice's registration survived it
  const second = await phoneCallsWebphone(w);
  await killAndAdopt(w, second, `${id} call 2`, { pastOrphanDeadline: false });
  const { phoneTold, record: rec2 } = await webphoneHangsUpPhoneTold(w, second);
  assert.equal(rec2.endedBy, rec2.reason === 'sip-bye' ? 'callee' : 'media');
  console.log(`[measure] ${id}: after the restart, the phone's hang-up reached the webphone in ${webphoneTold} ms; the webphone's reached the phone in ${phoneTold} ms (${rec2.reason})`);
}

/** runs `body`; a failure's message gets the tail of ferry start's output */
async function withOutputTail(w: World, lines: number, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (err instanceof Error) err.message += `\nferry start output:\n${w.fs.tail(lines)}`;
    throw err;
  }
}

const killedTwiceTitle = (id: string, what: string): string =>
  `${id}: ${what}: gateway SIGKILLed mid-call twice; each time media never stops and the call is adopted < 2 s after the new gateway connects; the phone then the webphone hangs up -> the other told < 500 ms; alice still reachable after the restart`;

describe('F1/F2/F10: ferry start, the gateway SIGKILLed mid-call and restarted with the same id', { timeout: 600_000 }, () => {
  // F1 and F10 run in the same default-mode world (one ferry start, one webphone): each ends its calls
  describe('default mode (private Redis)', () => {
    let w: World;
    before(async () => {
      w = await startWorld('default');
    });
    after(async () => {
      await w?.close();
    });

    test(killedTwiceTitle('F1', 'default mode (private Redis)'), async () => {
      await withOutputTail(w, 30, () => killedTwiceScenario(w, 'default'));
    });

    test('F10: a party hangs up while no gateway is connected -> the restarted gateway gets the held BYE and BYEs the other party exactly once: the phone (200 to its BYE, reason sip-bye), then the webphone', async () => {
      await withOutputTail(w, 40, async () => {
        // the phone hangs up in the gap
        const call = await phoneCallsWebphone(w);
        let killedAt = await killGatewayAndWaitGone(w);
        const hangup = w.phone.hangup();
        const byeSentAt = Date.now();
        await w.phone.media.stopMedia();
        const connected = await w.fs.gatewayEvent('connected to SIP engine', killedAt, 30_000);
        assert.ok(byeSentAt < connected.at, 'the BYE was sent before the restarted gateway connected');
        await hangup;
        assert.equal(w.phone.lastHangupStatus, 200, "the phone's held BYE was answered 200");
        await w.webphone.waitCallState('ended', 5000);
        const toldAfterConnect = (await w.webphone.endedAt())! - connected.at;
        const rec = await endedRecord(w, call.id);
        assert.equal(rec.reason, 'sip-bye', `end reason; timeline ${JSON.stringify(rec.timeline)}`);
        assert.equal(rec.endedBy, 'caller');
        const byes = rec.timeline.filter((e) => /^bye-(sent|unanswered|failed)$/.test(e.event));
        assert.deepEqual(byes.map((e) => `${e.event} ${e.detail}`), ['bye-sent to callee'], 'exactly one BYE, to the webphone');
        // the record is ended, so every BYE the gateway meant to send has gone out: none reached the phone
        assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, 'no BYE reached the phone');
        console.log(`[measure] F10 phone: held BYE held ${connected.at - byeSentAt} ms until the restarted gateway connected; webphone told ${toldAfterConnect} ms after it connected`);

        // the webphone hangs up in the gap (its BYE over WebSocket, its DTLS close to ferry media)
        const second = await phoneCallsWebphone(w);
        killedAt = await killGatewayAndWaitGone(w);
        const hangupAt = await w.webphone.hangup();
        const connected2 = await w.fs.gatewayEvent('connected to SIP engine', killedAt, 30_000);
        assert.ok(hangupAt < connected2.at, 'the webphone hung up before the restarted gateway connected');
        const bye = await w.phone.waitForRequest('BYE', 10_000, killedAt);
        await w.phone.media.stopMedia();
        const rec2 = await endedRecord(w, second.id);
        // the webphone's BYE and its DTLS close_notify leave together: either may be what ends it
        assert.ok(['sip-bye', 'dtls-close'].includes(rec2.reason ?? ''), `end reason ${rec2.reason}; timeline ${JSON.stringify(rec2.timeline)}`);
        const byes2 = rec2.timeline.filter((e) => /^bye-(sent|unanswered|failed)$/.test(e.event));
        assert.deepEqual(byes2.map((e) => `${e.event} ${e.detail}`), ['bye-sent to caller'], 'exactly one BYE, to the phone');
        assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 1, 'one BYE reached the phone');
        console.log(`[measure] F10 webphone: phone got its BYE ${bye.at - connected2.at} ms after the restarted gateway connected (${rec2.reason})`);
      });
    });
  });

  test(killedTwiceTitle('F2', 'REDIS_URL mode'), async () => {
    const w = await startWorld('redis');
    try {
      await withOutputTail(w, 30, () => killedTwiceScenario(w, 'redis'));
    } finally {
      await w.close();
    }
  });

  // F7 and the memory-mode check side by side (each its own ferry start): F7 bounds no time tighter
  // than 5 s, and the memory-mode check only reads ferry start's output
  describe('F7 and the memory-mode warning', { concurrency: 2 }, () => {
    test('F7: the gateway comes back after ferry sip ended the orphaned call itself -> its claims get 481, it finishes the call with no second BYE to either party', async () => {
      // ferry sip ends the orphaned dialogs 300 ms after the gateway dies, well before its successor connects
      const w = await startWorld('default', { FERRY_SIP_ORPHAN_DIALOG_MS: '300' });
      try {
        const call = await phoneCallsWebphone(w);
        const killedAt = await killGatewayAndWaitGone(w);
        const engineBye = await w.phone.waitForRequest('BYE', 5000, killedAt);
        assert.match(engineBye.message.headers.get('reason')?.[0] ?? '', /.+/, "ferry sip's BYE carries a Reason");
        await w.phone.media.stopMedia();
        await w.webphone.waitCallState('ended', 5000);
        const connected = await w.fs.gatewayEvent('connected to SIP engine', killedAt, 30_000);
        assert.ok(connected.at > engineBye.at, 'ferry sip ended the call before the gateway came back');
        const rec = await endedRecord(w, call.id);
        const events = rec.timeline.map((e) => `${e.event}${e.event === 'dialog-gone' ? ` ${e.detail?.split(':')[0]}` : ''}`);
        assert.ok(events.includes('adopted'), events.join(','));
        assert.ok(events.includes('dialog-gone caller') && events.includes('dialog-gone callee'), `both claims answered 481: ${events.join(',')}`);
        assert.ok(!events.some((e) => /^bye-(sent|unanswered|failed)/.test(e)), `no BYE from the gateway: ${events.join(',')}`);
        assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 1, "the phone got ferry sip's BYE and no second one");
        console.log(`[measure] F7 (gateway side): ferry sip BYEd the phone ${engineBye.at - killedAt} ms after the kill; the restarted gateway connected ${connected.at - killedAt} ms after it and ended the record (${rec.reason}) with no BYE`);
      } catch (err) {
        if (err instanceof Error) err.message += `\nferry start output:\n${w.fs.tail(40)}`;
        throw err;
      } finally {
        await w.close();
      }
    });

    test('F1: FERRY_STORE=memory prints one warning line that calls and registrations do not survive a gateway restart', async () => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-f1-mem-'));
      const fs = FerryStartProcess.spawn({ FERRY_STORE: 'memory', FERRY_DATA_DIR: dataDir, FERRY_LOG_LEVEL: 'warn' });
      try {
        const ready = await fs.ready();
        assert.equal(ready.store, 'memory');
        assert.equal(ready.pids.redis, undefined, 'no redis-server in memory mode');
        const warnings = fs.lines.filter((l) => l.line.startsWith(MEMORY_MODE_WARNING));
        assert.equal(warnings.length, 1, `one warning line:\n${fs.tail(20)}`);
        assert.match(warnings[0]!.line, /do not survive a gateway restart/);
        assert.match(warnings[0]!.line, /\(FERRY_STORE=memory\)$/);
      } finally {
        await fs.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
});
