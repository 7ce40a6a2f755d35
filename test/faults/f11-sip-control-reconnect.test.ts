import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/free-port';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { writeLifecycleSipConfig, WEBPHONE_USERS } from '../helpers/lifecycle-sip-config';
import { TcpCutter } from '../helpers/media-tcp-cutter';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md F11, the same-process case: ferry sip stays alive, but the gateway's control
 * connection to it drops (a TCP relay between them cuts it) and drachtio-srf reconnects. ferry sip
 * treats the dropped app's dialogs as orphans and ends them at FERRY_SIP_ORPHAN_DIALOG_MS unless they
 * are claimed; the gateway claims every live call's dialogs as soon as it is back, so the call
 * outlives that deadline untouched, and a later hang-up still crosses (srf's Dialogs rebound to the
 * new connection). Positive control: with the relay refusing reconnection past the deadline, ferry
 * sip does BYE both parties — the deadline is really armed in this setup.
 */
const ORPHAN_DIALOG_MS = 1500;
const HANGUP_BOUND_MS = 500;

interface World {
  stack: Stack;
  cutter: TcpCutter;
  phone: SipPhone;
  webphone: GatewayWebphone;
  close(): Promise<void>;
}

async function startWorld(): Promise<World> {
  const phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
  const phonePort = await phone.start();
  const config = await writeLifecycleSipConfig({ port: phonePort });
  // ferry sip's control port is chosen here, so the relay can sit in front of it before the gateway starts
  const controlPort = await freePort({ protocols: ['tcp'] });
  const cutter = await TcpCutter.start(controlPort);
  let stack: Stack | undefined;
  let webphone: GatewayWebphone | undefined;
  const close = async (): Promise<void> => {
    if (process.env.FERRY_TEST_DUMP && stack) console.log(stack.output.join('\n'));
    await webphone?.close();
    await phone.close();
    await stack?.stop();
    await cutter.close();
    await config.remove();
  };
  try {
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: config.file },
      partEnv: {
        sip: { FERRY_SIP_CONTROL_PORT: String(controlPort), FERRY_SIP_ORPHAN_DIALOG_MS: String(ORPHAN_DIALOG_MS) },
        gateway: { FERRY_SIP_CONTROL_URL: `127.0.0.1:${cutter.port}` },
      },
    });
    webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: WEBPHONE_USERS.alice });
    return { stack, cutter, phone, webphone, close };
  } catch (err) {
    if (err instanceof Error && stack) err.message += `\n${stack.output.slice(-40).join('\n')}`;
    await close().catch(() => undefined);
    throw err;
  }
}

async function phoneCallsWebphone(w: World): Promise<CallRecord> {
  const since = Date.now();
  const calling = w.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: w.stack.sipPort });
  await w.webphone.waitCallState('ringing-in', 15_000);
  await w.webphone.answer();
  await calling;
  await w.webphone.waitCallState('connected', 10_000);
  await waitFor(async () => (await w.phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the webphone at the phone');
  const all = (await getJson<{ calls: CallRecord[] }>(w.stack.httpPort, '/api/calls?state=all')).calls;
  const live = all.filter((c) => c.state === 'answered' && c.createdAt >= since - 1000);
  assert.equal(live.length, 1, 'one answered call');
  return live[0]!;
}

function outputLines(w: World, part: string, message: string): number {
  return w.stack.output.filter((l) => l.startsWith(`[${part}] {`) && l.includes(`"message":${JSON.stringify(message)}`)).length;
}

async function record(w: World, id: string): Promise<CallRecord | undefined> {
  return getJson<CallRecord>(w.stack.httpPort, `/api/calls/${id}`).catch(() => undefined);
}

describe('F11: the gateway\'s control connection to ferry sip cut, ferry sip alive', { timeout: 180_000 }, () => {
  test('F11: control connection cut mid-call and reconnected -> the gateway re-claims the dialogs, the call outlives FERRY_SIP_ORPHAN_DIALOG_MS with no BYE, the phone\'s later hang-up reaches the webphone < 500 ms; positive control: kept cut past the deadline, ferry sip BYEs both parties', async () => {
    const w = await startWorld();
    try {
      const call = await phoneCallsWebphone(w);
      const reclaimsBefore = outputLines(w, 'gateway', "sip control connection back; claiming the live calls' dialogs");
      const cutAt = Date.now();
      w.cutter.cut();
      await waitFor(() => outputLines(w, 'gateway', "sip control connection back; claiming the live calls' dialogs") > reclaimsBefore, 10_000, 20, 'the gateway reconnected');
      await waitFor(() => (outputLines(w, 'sip', 'dialog claimed by app') >= 2 ? true : undefined), 5000, 20, 'both dialogs claimed in ferry sip');
      // well past the orphan deadline counted from the cut
      await new Promise((r) => setTimeout(r, Math.max(0, cutAt + ORPHAN_DIALOG_MS * 2 + 500 - Date.now())));
      assert.equal(outputLines(w, 'sip', 'orphan dialog ended by ferry sip: BYE sent'), 0, 'ferry sip ended no orphan');
      assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= cutAt).length, 0, 'no BYE reached the phone');
      assert.equal(await w.webphone.callState(), 'connected', 'the webphone is still in the call');
      const flowing = Date.now();
      await waitFor(async () => (await w.phone.media.rtpReceivedBetween(flowing, Date.now())) > 10, 3000, 50, 'RTP still reaching the phone');
      const rec = await record(w, call.id);
      assert.equal(rec?.state, 'answered');
      const byeAt = await w.phone.hangup();
      await w.phone.media.stopMedia();
      assert.equal(w.phone.lastHangupStatus, 200);
      await w.webphone.waitCallState('ended', 5000);
      const told = (await w.webphone.endedAt())! - byeAt;
      assert.ok(told < HANGUP_BOUND_MS, `webphone told ${told} ms after the phone's BYE (bound ${HANGUP_BOUND_MS} ms)`);
      const ended = await waitFor(async () => ((await record(w, call.id))?.state === 'ended' ? record(w, call.id) : undefined), 5000, 25, 'call ended');
      assert.equal(ended?.reason, 'sip-bye');
      assert.ok(!ended?.timeline.some((e) => e.event === 'bye-failed'), `no failed BYE: ${JSON.stringify(ended?.timeline)}`);

      // positive control: a second call, the connection cut and kept away past the deadline
      const second = await phoneCallsWebphone(w);
      w.cutter.refuse(true);
      const cut2 = Date.now();
      w.cutter.cut();
      const engineBye = await w.phone.waitForRequest('BYE', ORPHAN_DIALOG_MS + 5000, cut2);
      await w.phone.media.stopMedia();
      assert.ok(engineBye.at - cut2 >= ORPHAN_DIALOG_MS - 100, `ferry sip's BYE came ${engineBye.at - cut2} ms after the cut (deadline ${ORPHAN_DIALOG_MS} ms)`);
      await w.webphone.waitCallState('ended', 5000);
      w.cutter.refuse(false);
      console.log(`[measure] F11 control cut: the call outlived ${ORPHAN_DIALOG_MS * 2 + 500} ms past the cut (orphan deadline ${ORPHAN_DIALOG_MS} ms); phone's later hang-up told to the webphone in ${told} ms; control: kept cut, ferry sip BYEd the phone ${engineBye.at - cut2} ms after the cut (call ${second.id})`);
    } catch (err) {
      if (err instanceof Error) err.message += `\n${w.stack.output.slice(-40).join('\n')}`;
      throw err;
    } finally {
      await w.close();
    }
  });
});
