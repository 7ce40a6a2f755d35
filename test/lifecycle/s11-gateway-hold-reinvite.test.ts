import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * docs/lifecycle.md S11 end to end: the IP phone (scripted SIP phone) puts the webphone on hold with a
 * sendonly re-INVITE through the gateway (which holds the webphone in turn: Chromium then stops its RTP
 * and keeps RTCP about every 5 s, so T_dead must stay above that: 8 s here), then sends no RTP for
 * 2 x T_dead:
 * the worst holder: RTP and RTCP both stop (T_hold, 1 h by default, must apply: lifecycle rule 3).
 * Nothing may end; resume (sendrecv re-INVITE) brings RTP back both ways. The 10-minute hold runs on a
 * fake clock in s08-s09-s11-s12-long-durations-*.
 */
const DEAD_MS = 8000;

describe('S11 (gateway): hold by sendonly re-INVITE from the IP phone', { timeout: 120_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ env: { FERRY_MEDIA_DEAD_MS: String(DEAD_MS) } });
  });
  afterEach(async () => {
    await fx.endLeftoverCall();
  });
  after(async () => {
    await fx?.close();
  });

  // The silent holder is the strict case; a holder that keeps RTCP (baresip) is covered at media level
  // (RTCP keeps a leg alive: s08-*, fake-clock S8/S11).
  for (const holder of ['silent (no RTP, no RTCP)'] as const) {
    test(`S11: the phone holds (sendonly re-INVITE), ${holder}, for 2 x T_dead -> nothing ends; resume brings media back`, async () => {
      const since = await fx.phoneCallsWebphone();
      const call = await fx.liveCall(since);
      const answer = await fx.phone.reinvite('sendonly');
      assert.match(answer, /a=(recvonly|inactive)/, 'the hold is answered recvonly/inactive');
      await fx.phone.media.applyRemoteSdp(answer);
      await fx.webphone.waitCallState('held by the other side', 5000);
      void holder;
      await fx.phone.media.stopMedia();
      await sleep(2 * DEAD_MS);
      const record = await fx.call(call.id);
      assert.equal(record.state, 'answered', `the call is still up after 2 x T_dead on hold: ${JSON.stringify(record.timeline.slice(-4))}`);
      assert.equal((await fx.mediaStats()).pipelines, 1, 'the pipeline is still there');
      assert.equal(await fx.webphone.callState(), 'held by the other side');

      const resumed = await fx.phone.reinvite('sendrecv');
      await fx.phone.media.applyRemoteSdp(resumed);
      await fx.phone.media.unmute();
      await fx.phone.media.startMedia();
      const resumedAt = Date.now();
      await fx.webphone.waitCallState('connected', 5000);
      await waitFor(async () => (await fx.phone.media.rtpReceivedBetween(resumedAt, Date.now())) > 20, 10_000, 50, 'RTP at the phone after resume');
      const before = (await fx.webphone.rtpStats()).received;
      await waitFor(async () => (await fx.webphone.rtpStats()).received > before + 20, 10_000, 50, 'RTP at the browser after resume');
      await fx.phone.hangup();
      await fx.phone.media.stopMedia();
      await fx.releasedAt(5000);
    });
  }
});
