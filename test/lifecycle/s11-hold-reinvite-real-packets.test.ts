import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil, realTimePause } from '../helpers/wait-for';
import { MediaServerProcess, type MediaStats } from '../helpers/media-server-process';
import { MediaCall } from '../helpers/media-call';
import { RtpPhone } from '../helpers/rtp-phone';
import type { ProxyEvent } from '../helpers/media-proxy-process';

/**
 * docs/lifecycle.md S11: hold via re-INVITE (sendonly). The proxy passes the phone's sendonly re-offer to
 * the RtpEndpoint (processOffer again, as the gateway does on a re-INVITE), and the phone then goes
 * completely silent (no RTP and no RTCP: the worst holder). Scaled down with real packets:
 * T_dead = 2 s, T_hold = 8 s; the hold lasts 3 x T_dead and must not end the call; a hold longer
 * than T_hold ends it with reason hold-timeout at T_hold ± 2 s. The 10-minute hold is on a fake clock
 * (s08-s09-s11-s12-long-durations-*); the SIP re-INVITE through the gateway is in s11-gateway-*.
 * The three scenarios are independent calls on one ferry media (each its own pipeline, proxy and
 * phone) and run at the same time: each waits out its own hold in real time.
 */
const DEAD_MS = 2000;
const HOLD_MS = 8000;

function hasPipeline(stats: MediaStats, id: string): boolean {
  return ((stats.pipelinesDetail ?? []) as { id: string }[]).some((p) => p.id === id);
}

function endEvents(events: ProxyEvent[]): ProxyEvent[] {
  return events.filter((e) => e.event === 'MediaSessionTerminated' || (e.event === 'MediaStateChanged' && e.data.newState === 'DISCONNECTED'));
}

describe('S11: hold via a sendonly re-offer, the held phone silent (T_dead 2 s, T_hold 8 s)', { concurrency: true }, () => {
  let media: MediaServerProcess;

  before(async () => {
    media = await MediaServerProcess.start({
      FERRY_MEDIA_DEAD_MS: String(DEAD_MS),
      FERRY_MEDIA_HOLD_MS: String(HOLD_MS),
      FERRY_MEDIA_AUTO_RELEASE: 'orphans',
      FERRY_MEDIA_RTCP_INTERVAL_MS: '1000',
    });
  });
  after(async () => {
    await media.stop();
  });

  /** A call put on hold; `body` runs with it, then the call is released and closed (each scenario its own call). */
  async function withHeldCall(direction: 'sendonly' | 'inactive', body: (held: { call: MediaCall; heldAt: number }) => Promise<void>): Promise<void> {
    const call = await MediaCall.start({ media, phone: new RtpPhone({ rtcpIntervalMs: 1000 }) });
    try {
      await body(await holdCall(call, direction));
    } finally {
      await call.proxy.release('pipeline').catch(() => undefined);
      await call.close().catch(() => undefined);
    }
  }

  async function holdCall(call: MediaCall, direction: 'sendonly' | 'inactive'): Promise<{ call: MediaCall; heldAt: number }> {
    await pollUntil(() => call.webphone!.rtpReceived() > 10, { timeoutMs: 10_000, stepMs: 50, what: 'media flowing before the hold' });
    const answer = await call.proxy.invoke<string>(0, 'processOffer', [await call.phone.sdp(direction)]);
    assert.match(answer, direction === 'sendonly' ? /a=recvonly/ : /a=inactive/, `ferry media answers a ${direction} hold`);
    await call.phone.applyRemoteSdp(answer);
    await call.phone.stopMedia();
    return { call, heldAt: Date.now() };
  }

  for (const direction of ['sendonly', 'inactive'] as const) test(`S11: held (${direction} re-offer) for 3 x T_dead with neither RTP nor RTCP from the phone -> 0 false ends; resume (sendrecv re-offer) brings media back`, { timeout: 300_000 }, async () => {
    await withHeldCall(direction, async ({ call, heldAt }) => {
      await realTimePause(3 * DEAD_MS); // the scenario: the hold really outlasts 3 x T_dead of the real-clock ferry media
      assert.deepEqual(endEvents(call.proxy.events), [], `no end while on hold (${Date.now() - heldAt} ms)`);
      const answer = await call.proxy.invoke<string>(0, 'processOffer', [await call.phone.sdp('sendrecv')]);
      assert.match(answer, /a=sendrecv/);
      await call.phone.applyRemoteSdp(answer);
      await call.phone.startMedia();
      const resumedAt = Date.now();
      // media both ways after the resume: the positive control of "no end while on hold"
      await pollUntil(async () => call.webphone!.rtpReceivedBetween(resumedAt + 300, Date.now()) > 20 && (await call.phone.rtpReceivedBetween(resumedAt + 300, Date.now())) > 20,
        { timeoutMs: 10_000, stepMs: 50, what: 'RTP both ways after the resume (> 20 packets at the webphone and at the phone)' });
      assert.deepEqual(endEvents(call.proxy.events), []);
      assert.ok(hasPipeline(await media.stats(), call.answer!.pipelineId), 'the pipeline is still there');
    });
  });

  test('S11 bound: a silent hold that never resumes ends with hold-timeout at T_hold ± 2 s (not media-timeout at T_dead)', { timeout: 300_000 }, async () => {
    await withHeldCall('sendonly', async ({ call, heldAt }) => {
      const ended = await call.proxy.waitForEvent((e) => e.event === 'MediaSessionTerminated' && e.leg === 0, HOLD_MS + 5000);
      const after = ended.at - heldAt;
      assert.equal(ended.data.reason, 'hold-timeout');
      assert.ok(Math.abs(after - HOLD_MS) <= 2000, `hold-timeout ${after} ms after the hold (T_hold ${HOLD_MS} ± 2 s)`);
    });
  });
});
