import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil, realTimePause } from '../helpers/wait-for';
import { MediaServerProcess } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';
import { BrowserWebphone } from '../helpers/browser-webphone';
import type { ProxyEvent } from '../helpers/media-proxy-process';

/**
 * docs/lifecycle.md S9: the webphone (real Chromium) mutes, by replaceTrack(null) (RTP stops; the browser's
 * RTCP continues, about every 5 s, randomised up to 7.5 s) or track.enabled = false (Chromium keeps
 * sending silence). Real packets, scaled down: T_dead = 8 s (it must stay above the browser's RTCP
 * interval, as the default 15 s is) and each mute lasts 1.5 x T_dead. The 10-minute version is on a fake
 * clock in s08-s09-s11-s12-long-durations-*. A false end shows as MediaSessionTerminated /
 * MediaStateChanged(DISCONNECTED) to the live proxy.
 */
const DEAD_MS = 8000;
const MUTE_MS = 1.5 * DEAD_MS;

function endEvents(events: ProxyEvent[]): ProxyEvent[] {
  return events.filter((e) => e.event === 'MediaSessionTerminated' || (e.event === 'MediaStateChanged' && e.data.newState === 'DISCONNECTED'));
}

const VARIANTS = ['replaceTrack(null)', 'track.enabled = false'] as const;
type Variant = (typeof VARIANTS)[number];

// The two mutes are two calls at the same time (each its own browser context, RtpPhone and proxy; one
// ferry media), so the scenario's real time is spent once.
describe('S9: webphone (Chromium) mute never ends a call (real packets, T_dead 8 s, mutes of 12 s)', { concurrency: true }, () => {
  let media: MediaServerProcess;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    media = await MediaServerProcess.start({ FERRY_MEDIA_DEAD_MS: String(DEAD_MS), FERRY_MEDIA_AUTO_RELEASE: 'orphans', FERRY_MEDIA_RTCP_INTERVAL_MS: '1000' });
  });
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await media.stop();
  });

  async function muteScenario(t: { diagnostic(m: string): void }, variant: Variant): Promise<void> {
    const browser = await BrowserWebphone.launch();
    closers.push(() => browser.close());
    const call = await MediaCall.startWith({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }), webphone: browser });
    closers.push(() => call.close());
    await pollUntil(async () => (await call.phone.stats()).rtpReceived > 20, { timeoutMs: 10_000, stepMs: 50, what: `${variant}: the phone receiving the browser before the mute` });
    if (variant === 'replaceTrack(null)') await browser.replaceTrackNull();
    else await browser.disableTrack();
    const mutedAt = Date.now();
    await realTimePause(MUTE_MS); // the scenario: the mute really lasts 1.5 x T_dead of the real-clock ferry media
    const duringMute = await call.phone.rtpReceivedBetween(mutedAt + 300, Date.now());
    t.diagnostic(`${variant}: RTP from the muted browser to the phone during ${MUTE_MS} ms: ${duringMute} packets`);
    if (variant === 'replaceTrack(null)') assert.ok(duringMute <= 10, `replaceTrack(null) stops RTP (got ${duringMute})`);
    if (variant === 'replaceTrack(null)') await browser.replaceTrackBack();
    else await browser.enableTrack();
    const unmutedAt = Date.now();
    // the positive control of "no end event": browser RTP after the unmute reaches the phone, so the call outlived the mute
    await pollUntil(async () => (await call.phone.rtpReceivedBetween(unmutedAt + 500, Date.now())) > 20,
      { timeoutMs: 10_000, stepMs: 50, what: `${variant}: browser RTP at the phone again` });
    assert.deepEqual(endEvents(call.proxy.events), [], `${variant}: no end event (browser RTCP is what keeps a muted webphone alive)`);
    assert.equal((await browser.stats()).connectionState, 'connected');
    assert.ok(MediaServerProcess.hasPipeline(await media.stats(), call.answer!.pipelineId), `${variant}: the call's pipeline is kept`);
  }

  for (const variant of VARIANTS) {
    test(`S9: webphone in Chromium mutes by ${variant} for 1.5 x T_dead, proxy alive -> 0 false ends; media resumes after it`, { timeout: 300_000 }, async (t) => {
      await muteScenario(t, variant);
    });
  }
});
