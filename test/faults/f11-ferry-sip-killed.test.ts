import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { endedRecord, HANGUP_BOUND_MS, phoneCallsWebphone, phoneHangsUpWebphoneTold, startFerryStartCallWorld, webphoneHangsUpPhoneTold, type FerryStartCallWorld } from '../helpers/ferry-start-call-world';
import { isPortFree } from '../helpers/free-port';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md F11, through `ferry start` (what `npm start` runs, default mode): ferry sip is
 * SIGKILLed mid-call and ferry start restarts it on the same ports. Media does not pass through ferry
 * sip, so it never stops; the gateway's control connection (drachtio-srf) reconnects by itself and the
 * gateway claims every live call's dialogs with their identifiers, which makes the new ferry sip
 * rebuild them (nothing on the wire). The Chromium webphone's JsSIP reconnects its WebSocket and
 * registers again, keeping its call. A later hang-up by either party then reaches the other < 500 ms.
 */
/** short, so a call whose dialogs nobody claimed again would be cut within the test */
const ORPHAN_DIALOG_MS = 4000;

/**
 * Free ports for ferry sip below the kernel's ephemeral range. ferry sip is restarted on the ports
 * it had; a port the kernel handed out (port 0) may meanwhile be handed to any other socket on the
 * machine (an outgoing connection, a browser's ICE socket), and the restart would then fail with
 * EADDRINUSE. A real deployment uses fixed ports (5060, 8088, 9022) outside that range too.
 */
async function portsBelowEphemeralRange(n: number): Promise<number[]> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.min(low ?? 32768, 32768);
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 1000; tries++) {
    const p = 20000 + Math.floor(Math.random() * (top - 20000));
    if (!ports.includes(p) && (await isPortFree(p, 'udp')) && (await isPortFree(p, 'tcp'))) ports.push(p);
  }
  assert.equal(ports.length, n, 'free ports below the ephemeral range');
  return ports;
}

type World = FerryStartCallWorld;

async function startWorld(): Promise<World> {
  const [sip, ws, control, tls, wss] = await portsBelowEphemeralRange(5);
  return startFerryStartCallWorld('ferry-f11', {
    FERRY_SIP_ORPHAN_DIALOG_MS: String(ORPHAN_DIALOG_MS),
    FERRY_SIP_PORT: String(sip), FERRY_SIP_WS_PORT: String(ws), FERRY_SIP_CONTROL_PORT: String(control),
    FERRY_SIP_TLS_PORT: String(tls), FERRY_SIP_WSS_PORT: String(wss), FERRY_HTTPS_PORT: '0',
  });
}

async function callRecord(w: World, id: string): Promise<CallRecord | undefined> {
  return getJson<CallRecord>(w.ready.http, `/api/calls/${id}`).catch(() => undefined);
}

/** Samples the webphone's RTP counters (Chromium getStats through the page) until stop(). */
function watchWebphoneRtp(w: World): { stop(): Promise<{ longestStillMs: number; samples: number; received: number; sent: number }> } {
  let running = true;
  let samples = 0;
  let last = -1;
  let lastChange = Date.now();
  let longestStillMs = 0;
  let first: { sent: number; received: number } | undefined;
  let latest = { sent: 0, received: 0 };
  const loop = (async () => {
    while (running) {
      latest = await w.webphone.rtpStats();
      first ??= latest;
      const now = Date.now();
      samples++;
      if (latest.received !== last) {
        longestStillMs = Math.max(longestStillMs, now - lastChange);
        last = latest.received;
        lastChange = now;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    longestStillMs = Math.max(longestStillMs, Date.now() - lastChange);
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestStillMs, samples, received: latest.received - (first?.received ?? 0), sent: latest.sent - (first?.sent ?? 0) };
    },
  };
}

function sipLines(w: World, message: string, since: number): number {
  return w.fs.lines.filter((l) => l.at >= since && l.line.startsWith('[sip] {') && l.line.includes(`"message":${JSON.stringify(message)}`)).length;
}

/**
 * SIGKILL the ferry sip child mid-call; ferry start restarts it. Checks, across the kill: RTP both
 * ways never stops (packets counted at both parties), the gateway reconnects and ferry sip rebuilds
 * both dialogs from the gateway's claims, alice's webphone registers again over a new WebSocket;
 * then waits past the orphan deadline: no BYE anywhere, the call still up.
 */
async function killSipMidCall(w: World, call: CallRecord, label: string): Promise<void> {
  const pid = w.fs.childPid('sip');
  assert.ok(pid, 'a running ferry sip child');
  const webRtp = watchWebphoneRtp(w);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const back = await w.fs.gatewayEvent("sip control connection back; claiming the live calls' dialogs", killedAt, 30_000);
  assert.notEqual(w.fs.childPid('sip'), pid, 'ferry start restarted ferry sip');
  const rebuilt = await waitFor(() => (sipLines(w, 'dialog rebuilt from a claim', killedAt) >= 2 ? sipLines(w, 'dialog rebuilt from a claim', killedAt) : undefined), 5000, 25, 'ferry sip rebuilding both dialogs');
  assert.equal(rebuilt, 2, 'both dialogs rebuilt once');
  const registered = await w.fs.gatewayEvent('registered', killedAt, 30_000);
  assert.equal(registered.meta.user, 'alice', 'the webphone registered again over its new WebSocket');
  // past the orphan deadline (from the moment the gateway came back): nobody got a BYE, media flows
  await new Promise((r) => setTimeout(r, Math.max(0, back.at + ORPHAN_DIALOG_MS + 1000 - Date.now())));
  const end = Date.now();
  const web = await webRtp.stop();
  const phoneGap = await w.phone.media.maxRtpGap(killedAt - 200, end);
  const phoneSendGap = await w.phone.media.maxSendGap(killedAt - 200, end);
  const phoneGot = await w.phone.media.rtpReceivedBetween(killedAt, end);
  const spanS = (end - killedAt) / 1000;
  // G.711 at 20 ms: 50 packets a second each way; allow for the browser's jitter and the shared CPU
  assert.ok(phoneGot > spanS * 40, `phone received ${phoneGot} RTP packets in the ${spanS.toFixed(1)} s after the kill`);
  // phone -> webphone: judged against what the phone (a child of this test process) managed to send, since a
  // starved test machine stalls the sender itself; the stall is bounded by the gap checks below
  const phoneSent = await w.phone.media.rtpSentBetween(killedAt, end);
  assert.ok(web.received > phoneSent * 0.8, `webphone received ${web.received} RTP packets in the ${spanS.toFixed(1)} s after the kill, of ${phoneSent} the phone sent`);
  assert.ok(phoneGap < Math.max(100, phoneSendGap + 100), `largest RTP gap webphone -> phone across the kill: ${phoneGap} ms (our own largest send gap ${phoneSendGap} ms)`);
  assert.ok(web.samples >= 5, `webphone RTP counter sampled ${web.samples} times`);
  assert.ok(web.longestStillMs < 1000, `phone -> webphone: the webphone's received counter stood still ${web.longestStillMs} ms at most (< 1000 ms)`);
  assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, 'no BYE reached the phone');
  assert.equal(await w.webphone.callState(), 'connected', 'the webphone is still in the call');
  const rec = await callRecord(w, call.id);
  assert.equal(rec?.state, 'answered', `the call is still answered: ${JSON.stringify(rec?.timeline)}`);
  assert.ok(rec.timeline.some((e) => e.event === 'dialogs-reclaimed'), 'the gateway noted the reclaim');
  console.log(`[measure] ${label}: gateway back on ferry sip ${back.at - killedAt} ms after the SIGKILL, alice registered again ${registered.at - killedAt} ms after it; over ${spanS.toFixed(1)} s: phone got ${phoneGot} RTP (largest gap ${phoneGap} ms, own send gap ${phoneSendGap} ms), webphone got ${web.received} (counter still <= ${web.longestStillMs} ms); no BYE past the orphan deadline`);
}


describe('F11: ferry sip SIGKILLed mid-call and restarted by ferry start', { timeout: 300_000 }, () => {
  // both tests run in one world (one ferry start, one webphone, one phone): each ends its calls, and ferry
  // start's supervisor restarts ferry sip after the same 250 ms each time (its back-off starts over once
  // the restarted ferry sip is ready)
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.close();
  });

  test('F11: ferry sip killed mid-call -> RTP never stops both ways, the gateway rebuilds the dialogs in the new ferry sip, no BYE past the orphan deadline; then (a) the phone hangs up -> the webphone told < 500 ms, (b) in a second call the webphone hangs up -> the phone gets BYE < 500 ms', async () => {
    try {
      // (a) the phone hangs up after the restart
      const first = await phoneCallsWebphone(w);
      await killSipMidCall(w, first, 'F11 call 1');
      const { webphoneTold } = await phoneHangsUpWebphoneTold(w, first);

      // (b) a second call through the restarted ferry sip; it is killed again; the webphone hangs up
      const second = await phoneCallsWebphone(w);
      await killSipMidCall(w, second, 'F11 call 2');
      const { phoneTold, record: rec2 } = await webphoneHangsUpPhoneTold(w, second);
      const sipBye = rec2.timeline.some((e) => e.event === 'bye' && e.detail === 'from callee');
      console.log(`[measure] F11: after ferry sip's restart the phone's hang-up reached the webphone in ${webphoneTold} ms; the webphone's reached the phone in ${phoneTold} ms (${rec2.reason}; webphone's BYE reached the gateway: ${sipBye})`);
    } catch (err) {
      if (err instanceof Error) err.message += `\nferry start output:\n${w.fs.tail(40)}`;
      throw err;
    }
  });

  test('F11: the phone hangs up while ferry sip is down -> its retransmitted BYE is held by the restarted ferry sip until the gateway re-claims the dialog, answered 200 (not 481); the webphone is told < 500 ms after it has reconnected and registered again', async () => {
    try {
      const call = await phoneCallsWebphone(w);
      const pid = w.fs.childPid('sip');
      assert.ok(pid, 'a running ferry sip child');
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      // a desk phone over UDP retransmits its BYE until ferry sip answers
      const hangup = w.phone.hangup({ retransmit: true, timeoutMs: 30_000 });
      await w.phone.media.stopMedia();
      const back = await w.fs.gatewayEvent("sip control connection back; claiming the live calls' dialogs", killedAt, 30_000);
      await hangup;
      assert.equal(w.phone.lastHangupStatus, 200, "the phone's BYE answered 200, not 481");
      await w.webphone.waitCallState('ended', 20_000);
      const endedAt = (await w.webphone.endedAt())!;
      const registered = await w.fs.gatewayEvent('registered', killedAt, 30_000);
      assert.equal(registered.meta.user, 'alice');
      const told = endedAt - Math.max(back.at, registered.at);
      assert.ok(told < HANGUP_BOUND_MS, `webphone told ${told} ms after it was reachable again (gateway back ${back.at - killedAt} ms, alice registered ${registered.at - killedAt} ms after the kill; bound ${HANGUP_BOUND_MS} ms)`);
      const rec = await endedRecord(w, call.id);
      assert.equal(rec.reason, 'sip-bye', `timeline ${JSON.stringify(rec.timeline)}`);
      assert.equal(rec.endedBy, 'caller');
      assert.ok(!rec.timeline.some((e) => e.event === 'bye-failed'), `the BYE to the webphone went out: ${JSON.stringify(rec.timeline)}`);
      assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, 'no BYE to the phone that hung up');
      const heldByEngine = sipLines(w, 'request held since the restart handed to its rebuilt dialog', killedAt);
      console.log(`[measure] F11 hang-up while ferry sip was down: gateway back ${back.at - killedAt} ms after the kill, alice registered again after ${registered.at - killedAt} ms, webphone told ${endedAt - killedAt} ms after the kill (${told} ms after it was reachable); BYE held by the restarted ferry sip until the claim: ${heldByEngine > 0}`);
    } catch (err) {
      if (err instanceof Error) err.message += `\nferry start output:\n${w.fs.tail(40)}`;
      throw err;
    }
  });
});
