import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MediaServerProcess } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';
import type { ProxyEvent } from '../helpers/media-proxy-process';
import { pollUntil, realTimePause } from '../helpers/wait-for';

/** RTP from the phone reaches the webphone (more than `n` packets since `since`) */
async function webphoneHears(call: MediaCall, since: number, n: number, what: string): Promise<void> {
  await pollUntil(() => call.webphone!.rtpReceivedBetween(since, Date.now()) > n, { timeoutMs: 10_000, stepMs: 50, what });
}

/**
 * docs/lifecycle.md S8 (IP phone mutes: RTP stops, RTCP continues) with real packets and real processes,
 * scaled down: T_dead = 2 s, the scripted phone's RTCP every 1 s, and the mute lasts 3 x T_dead
 * (the 10-minute version runs on a fake clock in s08-s09-s11-s12-long-durations-*; S9 is in s09-*).
 * A false end shows as a MediaSessionTerminated / MediaStateChanged(DISCONNECTED) event to the live
 * proxy, or (orphaned call) as ferry media releasing the pipeline.
 * The two scenarios are independent calls on one ferry media (each its own pipeline, proxy and phone)
 * and run at the same time: each waits out its own mute in real time.
 */
const DEAD_MS = 2000;
const MUTE_MS = 3 * DEAD_MS;

function endEvents(events: ProxyEvent[]): ProxyEvent[] {
  return events.filter((e) => e.event === 'MediaSessionTerminated' || (e.event === 'MediaStateChanged' && e.data.newState === 'DISCONNECTED'));
}

describe('S8: IP phone mute never ends a call (real packets, T_dead 2 s, mute 6 s)', { timeout: 300_000, concurrency: true }, () => {
  let media: MediaServerProcess;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    media = await MediaServerProcess.start({ FERRY_MEDIA_DEAD_MS: String(DEAD_MS), FERRY_MEDIA_AUTO_RELEASE: 'orphans', FERRY_MEDIA_RTCP_INTERVAL_MS: '1000' });
  });
  after(async () => {
    for (const c of closers) await c().catch(() => undefined);
    await media.stop();
  });

  test('S8: IP phone mutes (RTP stops, RTCP SR every 1 s continues) for 3 x T_dead, proxy alive -> 0 false ends; RTP resumes on unmute', { timeout: 300_000 }, async () => {
    const call = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
    closers.push(() => call.close());
    await webphoneHears(call, 0, 10, 'media flowing before the mute');
    await call.phone.mute();
    const mutedAt = Date.now();
    await realTimePause(MUTE_MS); // the scenario: the mute really lasts 3 x T_dead of the real-clock ferry media
    await call.phone.unmute();
    const unmutedAt = Date.now();
    // the positive control of "no end event": RTP after the unmute reaches the webphone, so the call outlived the mute
    await webphoneHears(call, unmutedAt + 300, 20, 'RTP at the webphone again after the unmute');
    assert.ok(call.webphone!.rtpReceivedBetween(mutedAt + 200, unmutedAt) <= 5, 'the phone really sent no RTP while muted');
    assert.deepEqual(endEvents(call.proxy.events), [], 'no end event');
    assert.equal(call.webphone!.dtlsEndedAt(), undefined);
    await call.proxy.release('pipeline');
    await media.waitForPipelineGone(call.answer!.pipelineId, 2000);
  });

  test('S8 orphaned: proxy killed, then the IP phone mutes for 3 x T_dead -> ferry media keeps the call (no release)', { timeout: 300_000 }, async () => {
    const call = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
    closers.push(() => call.close());
    await webphoneHears(call, 0, 10, 'media flowing before the mute');
    await call.proxy.kill('SIGKILL');
    await call.phone.mute();
    await realTimePause(MUTE_MS); // the scenario: the mute really lasts 3 x T_dead of the real-clock ferry media
    assert.ok(MediaServerProcess.hasPipeline(await media.stats(), call.answer!.pipelineId), 'the muted orphan is not released');
    await call.phone.unmute();
    const unmutedAt = Date.now();
    await webphoneHears(call, unmutedAt + 300, 20, 'RTP at the webphone again after the unmute');
    await call.phone.sendBye();
    await media.waitForPipelineGone(call.answer!.pipelineId, 3000);
  });

});
