import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * docs/lifecycle.md S11 with both legs: the IP phone (scripted SIP phone) holds a call with the Chromium
 * webphone by a sendonly re-INVITE and goes silent. The gateway re-INVITEs the browser, which then
 * sends no RTP and only sparse RTCP; its WebRtcEndpoint takes no SDP renegotiation, so ferry media puts
 * it on the hold rule because the endpoint it is connected to (the phone's RtpEndpoint) is held by its
 * SDP. FERRY_MEDIA_DEAD_MS is 3 s, below the browser's RTCP gaps while held: without the hold rule on
 * the browser leg it ends with media-timeout (a false end). The hold lasts 4 x T_dead; on resume both
 * legs leave the hold rule and RTP flows both ways again.
 */
const DEAD_MS = 3000;

interface ElementStats {
  type: string;
  hold?: string | null;
  legEnded?: string | null;
}

async function elementsByType(fx: GatewayCallFixture): Promise<Map<string, ElementStats>> {
  const stats = (await fx.mediaStats()) as unknown as { pipelinesDetail?: { elements: ElementStats[] }[] };
  const out = new Map<string, ElementStats>();
  for (const p of stats.pipelinesDetail ?? []) for (const e of p.elements) out.set(e.type, e);
  return out;
}

describe('S11 (gateway, both legs): the phone holds a webphone call, T_dead 3 s', { timeout: 120_000 }, () => {
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

  test('S11: the phone holds (sendonly re-INVITE) silently for 4 x T_dead -> both legs on the hold rule, nothing ends; resume -> both off it, RTP both ways', async (t) => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    const before = await elementsByType(fx);
    assert.equal(before.get('WebRtcEndpoint')?.hold, null, 'not on the hold rule while the call is up');
    assert.equal(before.get('RtpEndpoint')?.hold, null);

    const answer = await fx.phone.reinvite('sendonly');
    assert.match(answer, /a=(recvonly|inactive)/, 'the hold is answered recvonly/inactive');
    await fx.phone.media.applyRemoteSdp(answer);
    await fx.phone.media.stopMedia();
    await fx.webphone.waitCallState('held by the other side', 5000);
    const heldAt = Date.now();
    const held = await elementsByType(fx);
    assert.equal(held.get('RtpEndpoint')?.hold, 'own-sdp', 'the phone leg is held by its SDP');
    assert.equal(held.get('WebRtcEndpoint')?.hold, 'connected-endpoint', 'the browser leg is held because the phone leg is');

    // the browser stops its RTP once held: from then on only its sparse RTCP reaches ferry media
    const browserRtpIn = async (): Promise<number> => {
      const stats = (await fx.mediaStats()) as unknown as { pipelinesDetail?: { elements: { type: string; leg?: { packetsIn?: number } }[] }[] };
      return stats.pipelinesDetail?.[0]?.elements.find((e) => e.type === 'WebRtcEndpoint')?.leg?.packetsIn ?? 0;
    };
    const quietFrom = await waitFor(async () => {
      const a = await browserRtpIn();
      await new Promise((r) => setTimeout(r, 500));
      return (await browserRtpIn()) === a ? a : undefined;
    }, 5000, 0, 'the browser stopped sending RTP on hold');

    // 4 x T_dead on hold: every 500 ms the call must still be up with both legs alive
    while (Date.now() - heldAt < 4 * DEAD_MS) {
      const record = await fx.call(call.id);
      assert.equal(record.state, 'answered', `the call ended on hold after ${Date.now() - heldAt} ms: ${JSON.stringify(record.timeline.slice(-4))}`);
      const els = await elementsByType(fx);
      assert.equal(els.get('WebRtcEndpoint')?.legEnded, null, 'the browser leg did not end');
      assert.equal(els.get('RtpEndpoint')?.legEnded, null, 'the phone leg did not end');
      await new Promise((r) => setTimeout(r, 500));
    }
    const rtpWhileHeld = (await browserRtpIn()) - quietFrom;
    t.diagnostic(`held ${Date.now() - heldAt} ms (T_dead ${DEAD_MS} ms); browser RTP packets at ferry media while held: ${rtpWhileHeld}`);
    assert.ok(rtpWhileHeld <= 5, `the browser sent no RTP while held (${rtpWhileHeld})`);
    assert.equal(await fx.webphone.callState(), 'held by the other side');

    const resumed = await fx.phone.reinvite('sendrecv');
    await fx.phone.media.applyRemoteSdp(resumed);
    await fx.phone.media.unmute();
    await fx.phone.media.startMedia();
    const resumedAt = Date.now();
    await fx.webphone.waitCallState('connected', 5000);
    const after = await elementsByType(fx);
    assert.equal(after.get('RtpEndpoint')?.hold, null, 'the phone leg is off the hold rule');
    assert.equal(after.get('WebRtcEndpoint')?.hold, null, 'the browser leg is off the hold rule');
    await waitFor(async () => (await fx.phone.media.rtpReceivedBetween(resumedAt, Date.now())) > 20, 10_000, 50, 'RTP at the phone after resume');
    const base = (await fx.webphone.rtpStats()).received;
    await waitFor(async () => (await fx.webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP at the browser after resume');
    assert.equal((await fx.call(call.id)).state, 'answered');
    await fx.phone.hangup();
    await fx.phone.media.stopMedia();
    await fx.releasedAt(5000);
  });
});
