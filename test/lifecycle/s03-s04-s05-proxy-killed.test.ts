import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil, realTimePause } from '../helpers/wait-for';
import { MediaServerProcess } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';

/**
 * docs/lifecycle.md S3-S5, media side: the proxy (a kurento-client app in its own process) is SIGKILLed
 * mid-call; ferry media must keep the orphaned call's media flowing (rule 1), then release it itself
 * on the phone's explicit end signals (rule 7, FERRY_MEDIA_AUTO_RELEASE=orphans), telling both peers
 * first (rule 4: RTCP BYE to the phone, DTLS close_notify to the webphone).
 * The gateway variant of S4 (restarted proxy cleans the state store) is in s04-gateway-*.
 */
const DEAD_MS = 3000;

describe('S3-S5: proxy killed mid-call (ferry media process, kurento-client proxy SIGKILLed, scripted phone, werift webphone)', () => {
  let media: MediaServerProcess;
  const calls: MediaCall[] = [];

  before(async () => {
    media = await MediaServerProcess.start({
      FERRY_MEDIA_DEAD_MS: String(DEAD_MS),
      FERRY_MEDIA_AUTO_RELEASE: 'orphans',
      FERRY_MEDIA_RTCP_INTERVAL_MS: '1000',
    });
  });
  after(async () => {
    for (const c of calls) await c.close();
    await media.stop();
  });

  async function orphanedCall(): Promise<MediaCall> {
    const call = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
    calls.push(call);
    await pollUntil(async () => (await call.phone.stats()).rtpReceived > 20 && call.webphone!.rtpReceived() > 20,
      { timeoutMs: 10_000, stepMs: 50, what: 'RTP both ways before the kill (> 20 packets at the phone and at the webphone)' });
    await call.proxy.kill('SIGKILL');
    return call;
  }

  /** ferry media has seen the proxy go: the call's pipeline is orphaned */
  async function seenOrphaned(call: MediaCall): Promise<void> {
    await media.waitForStats((st) => ((st.pipelinesDetail ?? []) as { id: string; orphaned?: boolean }[]).some((p) => p.id === call.answer!.pipelineId && p.orphaned === true), 3000);
  }

  /** the webphone's DTLS transport closed (ferry media told it); resolves with when */
  async function webphoneTold(call: MediaCall, withinMs: number): Promise<number> {
    return pollUntil(() => call.webphone!.dtlsEndedAt(), { timeoutMs: withinMs, what: `the webphone told (DTLS close): ${JSON.stringify(call.webphone!.dtlsStates)}` });
  }

  test('S3: proxy killed (SIGKILL) mid-call -> RTP keeps flowing both ways, no gap > 100 ms, pipeline kept past T_dead', { timeout: 300_000 }, async () => {
    const call = await orphanedCall();
    try {
      await s3Checks(call);
    } finally {
      await call.phone.sendBye();
      await media.waitForPipelineGone(call.answer!.pipelineId, 5000).catch(() => undefined);
    }
  });

  async function s3Checks(call: MediaCall): Promise<void> {
    const killedAt = Date.now();
    await realTimePause(DEAD_MS * 2); // the measured window: RTP gaps over 2 x T_dead of the real-clock ferry media, the pipeline kept past T_dead
    const end = Date.now();
    const phoneGap = await call.phone.maxRtpGap(killedAt - 200, end);
    const webGap = call.webphone!.maxRtpGap(killedAt - 200, end);
    const phoneCount = await call.phone.rtpReceivedBetween(killedAt, end);
    const webCount = call.webphone!.rtpReceivedBetween(killedAt, end);
    // Every packet sent after the kill arrives (95%: packets in flight at the window's edges), whatever
    // rate the starved test process managed; and that rate is RTP's 50 pps within 25%.
    const webSent = call.webphone!.rtpSentBetween(killedAt, end - 200);
    const phoneSent = await call.phone.rtpSentBetween(killedAt, end - 200);
    assert.ok(phoneCount >= webSent * 0.95, `webphone -> phone after the kill: ${phoneCount} packets received of ${webSent} sent`);
    assert.ok(webCount >= phoneSent * 0.95, `phone -> webphone after the kill: ${webCount} packets received of ${phoneSent} sent`);
    const nominal = (end - killedAt) / 20;
    assert.ok(webSent >= nominal * 0.75 && phoneSent >= nominal * 0.75, `senders kept ~50 pps (${webSent}, ${phoneSent} of ${nominal.toFixed(0)})`);
    // Bound 100 ms for what ferry media adds: where the test process itself stalled its sender
    // (shared 2-core machine), the receiver's gap may be that stall plus 100 ms, not more.
    const webSendGap = call.webphone!.maxSendGap(killedAt - 200, end);
    const phoneSendGap = await call.phone.maxSendGap(killedAt - 200, end);
    assert.ok(phoneGap <= Math.max(100, webSendGap + 100), `largest gap webphone -> phone: ${phoneGap} ms (webphone's own largest send gap ${webSendGap} ms)`);
    assert.ok(webGap <= Math.max(100, phoneSendGap + 100), `largest gap phone -> webphone: ${webGap} ms (phone's own largest send gap ${phoneSendGap} ms)`);
    console.log(`[measure] S3 largest RTP gap after the proxy kill: webphone->phone ${phoneGap} ms, phone->webphone ${webGap} ms (sender gaps ${webSendGap} / ${phoneSendGap} ms)`);
    const stats = await media.stats();
    assert.ok(MediaServerProcess.hasPipeline(stats, call.answer!.pipelineId), `orphaned pipeline kept: ${JSON.stringify(stats)}`);
    assert.equal(call.webphone!.dtlsEndedAt(), undefined, 'the webphone was not cut');
  }

  test('S4: S3, then the IP phone hangs up (RTCP BYE, RTP stops) -> ferry media releases within 1 s and tells both peers first', { timeout: 300_000 }, async () => {
    const call = await orphanedCall();
    await seenOrphaned(call);
    await call.phone.sendBye();
    const byeAt = Date.now();
    await call.phone.stopMedia();
    const { at: releasedAt, stats } = await media.waitForPipelineGone(call.answer!.pipelineId, 5000);
    const latency = releasedAt - byeAt;
    assert.ok(latency < 1000, `released ${latency} ms after the RTCP BYE (bound < 1 s)`);
    if (stats.pipelines === 0) assert.equal(stats.boundPorts, 0, `ports freed: ${JSON.stringify(stats)}`);
    // Rule 4: the webphone learns at once (DTLS close_notify), the phone gets our RTCP BYE.
    const told = await webphoneTold(call, 2000);
    assert.ok(told - byeAt < 1000, `webphone told ${told - byeAt} ms after the RTCP BYE`);
    assert.ok((await call.phone.stats()).byeReceived >= 1, 'ferry media sent an RTCP BYE to the phone before releasing');
    const reasons = media.logsMatching('rtcp-bye');
    assert.ok(reasons.length > 0, `the end reason rtcp-bye is logged; log tail:\n${media.log(20)}`);
    console.log(`[measure] S4 release latency after RTCP BYE: ${latency} ms; webphone DTLS closed after ${told - byeAt} ms`);
  });

  test('S5: S3, then the IP phone hangs up with no RTCP BYE and closes its socket -> released on ICMP port unreachable within 2 s', { timeout: 300_000 }, async () => {
    const call = await orphanedCall();
    await seenOrphaned(call);
    await call.phone.closeSockets();
    const closedAt = Date.now();
    const { at: releasedAt, stats } = await media.waitForPipelineGone(call.answer!.pipelineId, 2000 + DEAD_MS);
    const latency = releasedAt - closedAt;
    assert.ok(latency < 2000, `released ${latency} ms after the socket closed (bound < 2 s; T_dead is ${DEAD_MS} ms, so this was not a timeout)`);
    if (stats.pipelines === 0) assert.equal(stats.boundPorts, 0, 'no port left bound');
    assert.ok(media.logsMatching('icmp-unreachable').length > 0, `the end reason icmp-unreachable is logged; log tail:\n${media.log(20)}`);
    const told = await webphoneTold(call, 3000);
    assert.ok(told - closedAt < 2000, `webphone told (DTLS close) within 2 s: ${JSON.stringify(call.webphone!.dtlsStates)}`);
    console.log(`[measure] S5 release latency after the phone closed its socket: ${latency} ms`);
  });
});
