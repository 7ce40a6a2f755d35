import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, getJson, waitFor, type Stack } from '../helpers/stack';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { GatewayWebphone } from '../helpers/gateway-webphone';
import { writeLifecycleSipConfig, WEBPHONE_USERS } from '../helpers/lifecycle-sip-config';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md S1 (webphone hangs up with SIP BYE over WebSocket, proxy alive -> BYE to the phone,
 * pipeline released, < 1 s) and S2 (IP phone hangs up with SIP BYE, proxy alive -> the webphone is
 * told, pipeline released, < 1 s), through the real three processes (ferry sip, ferry media, ferry
 * gateway on Redis), real Chromium on the gateway's JsSIP webphone page, and the scripted SIP phone
 * (sip-phone.ts over the scripted RTP phone; like baresip it sends an RTCP BYE right after its SIP BYE).
 */
interface MediaStats {
  pipelines: number;
  elements: number;
  boundPorts: number;
}

describe('S1/S2: hang-up with the proxy alive (sip + media + gateway + Redis, Chromium webphone, scripted SIP phone)', { timeout: 120_000 }, () => {
  let stack: Stack | undefined;
  let phone: SipPhone;
  let webphone: GatewayWebphone | undefined;
  let removeConfig: (() => Promise<void>) | undefined;

  before(async () => {
    phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
    const phonePort = await phone.start();
    const config = await writeLifecycleSipConfig({ port: phonePort });
    removeConfig = config.remove;
    stack = await startStack({
      redisUrl: 'redis://127.0.0.1:6379',
      env: { FERRY_SIP_CONFIG: config.file, FERRY_MEDIA_DEAD_MS: '5000' },
    });
    webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: WEBPHONE_USERS.alice });
  });
  after(async () => {
    await webphone?.close();
    await phone?.close();
    await stack?.stop();
    await removeConfig?.();
  });

  const mediaStats = (): Promise<MediaStats> => getJson<MediaStats>(stack!.mediaPort, '/stats');
  async function releasedAt(timeoutMs: number): Promise<number> {
    await waitFor(async () => (await mediaStats()).pipelines === 0, timeoutMs, 10, 'pipelines back to 0');
    return Date.now();
  }
  /** RTP both ways: the phone got > 20 packets from the browser and the browser > 20 from the phone (ICE/DTLS may finish after SIP 'connected'). */
  async function mediaFlowing(since: number): Promise<void> {
    await waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the browser at the phone');
    await waitFor(async () => (await webphone!.rtpStats()).received > 20, 10_000, 50, 'RTP from the phone at the browser');
  }
  async function lastCall(): Promise<CallRecord> {
    const { calls } = await getJson<{ calls: CallRecord[] }>(stack!.httpPort, '/api/calls?state=all');
    const call = calls[calls.length - 1];
    assert.ok(call, 'the gateway lists the call');
    return getJson<CallRecord>(stack!.httpPort, `/api/calls/${call.id}`);
  }

  test('S1: webphone hangs up (SIP BYE over WS), proxy alive -> BYE to the phone and pipeline released, each < 1 s', async () => {
    const since = Date.now();
    await webphone!.dial('9100');
    await webphone!.waitCallState('connected', 15_000);
    await mediaFlowing(since);
    assert.equal((await mediaStats()).pipelines, 1);
    const hangupAt = await webphone!.hangup();
    const bye = await phone.waitForRequest('BYE', 5000, since);
    const released = await releasedAt(5000);
    await phone.media.stopMedia();
    assert.ok(bye.at - hangupAt < 1000, `BYE reached the phone ${bye.at - hangupAt} ms after the webphone hung up`);
    assert.ok(released - hangupAt < 1000, `pipeline released ${released - hangupAt} ms after the webphone hung up`);
    const stats = await mediaStats();
    assert.equal(stats.boundPorts, 0);
    const record = await lastCall();
    assert.equal(record.state, 'ended');
    // JsSIP sends its BYE and closes the peer connection (DTLS close_notify) at the same moment; which
    // signal reaches the gateway first is a race, and both are the webphone hanging up.
    assert.ok(record.reason === 'sip-bye' || record.reason === 'dtls-close', `reason ${record.reason}`);
    assert.ok(record.timeline.length >= 3, `the call has a timeline: ${JSON.stringify(record.timeline)}`);
    console.log(`[measure] S1 webphone hang-up -> BYE at phone ${bye.at - hangupAt} ms, pipeline released ${released - hangupAt} ms`);
  });

  test('S2: IP phone hangs up (SIP BYE then RTCP BYE), proxy alive -> the webphone is told and the pipeline released, each < 1 s', async () => {
    const since = Date.now();
    const calling = phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: stack!.sipPort });
    await webphone!.waitCallState('ringing-in', 15_000);
    await webphone!.answer();
    await calling;
    await webphone!.waitCallState('connected', 10_000);
    await mediaFlowing(since);
    const byeAt = await phone.hangup();
    await phone.media.sendBye();
    await phone.media.stopMedia();
    const released = await releasedAt(5000);
    await webphone!.waitCallState('ended', 5000);
    const endedAt = (await webphone!.endedAt())!;
    assert.ok(endedAt - byeAt < 1000, `the webphone showed the end ${endedAt - byeAt} ms after the phone's BYE`);
    assert.ok(released - byeAt < 1000, `pipeline released ${released - byeAt} ms after the phone's BYE`);
    assert.match(await webphone!.message(), /other side hung up/i);
    const record = await lastCall();
    assert.equal(record.reason, 'sip-bye');
    console.log(`[measure] S2 phone hang-up -> webphone told ${endedAt - byeAt} ms, pipeline released ${released - byeAt} ms`);
  });

  test('S1/S2 explained: /metrics counts both ends by reason (sip-bye, or dtls-close for the webphone\'s hang-up) and no active call is left', async () => {
    const res = await fetch(`http://127.0.0.1:${stack!.httpPort}/metrics`);
    const text = await res.text();
    const ended = [...text.matchAll(/^ferry_calls_ended_total\{reason="(sip-bye|dtls-close)"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0);
    assert.equal(ended, 2, text);
    assert.match(text, /^ferry_calls_ended_total\{reason="sip-bye"\} [12]$/m, text);
    assert.match(text, /^ferry_active_calls 0$/m, text);
  });
});
