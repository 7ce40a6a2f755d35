import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * /metrics counts false ends. A call ended on silence (here media-timeout) whose
 * silent party then answers the gateway's BYE at once was still there: the end was probably false
 * (a phone that mutes without RTCP, a blip), and the gateway says so in the call's timeline, its
 * record and `ferry_calls_suspected_false_end_total`. The lifecycle scenarios S8-S12 promise 0 of
 * them; this test proves the counter really moves when such an end happens, so a 0 means something.
 * A real end (the phone's SIP BYE) is not counted.
 */
const DEAD_MS = 3000;

async function metric(fx: GatewayCallFixture, name: string): Promise<string[]> {
  const body = await (await fetch(`http://127.0.0.1:${fx.stack.httpPort}/metrics`)).text();
  return body.split('\n').filter((l) => l.startsWith(name));
}

describe('false-end detector (gateway /metrics)', { timeout: 90_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ env: { FERRY_MEDIA_DEAD_MS: String(DEAD_MS) } });
  });
  after(async () => {
    await fx?.close();
  });

  test('a real end (the phone hangs up with SIP BYE) is not a suspected false end', { timeout: 30_000 }, async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    await fx.phone.hangup();
    await fx.phone.media.stopMedia();
    await fx.releasedAt(5000);
    await waitFor(async () => (await fx.call(call.id)).state === 'ended', 5000, 20, 'call record ended');
    const record = await fx.call(call.id);
    assert.equal(record.reason, 'sip-bye');
    assert.notEqual(record.suspectedFalseEnd, true);
    assert.deepEqual(await metric(fx, 'ferry_calls_suspected_false_end_total'), ['ferry_calls_suspected_false_end_total 0']);
    await fx.webphone.waitCallState('ended', 3000).catch(() => undefined);
  });

  test('the webphone hangs up: the gateway BYEs the phone, which answers 200 at once; a real end, not a suspected false end', { timeout: 30_000 }, async () => {
    // the control that can fail: the gateway's own BYE answered at once by a party that is still there
    // is what the detector looks for; here the end was real (a hang-up), so a detector that counted every
    // answered BYE would count this call
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    await fx.webphone.hangup();
    await fx.releasedAt(5000);
    await waitFor(async () => (await fx.call(call.id)).state === 'ended', 5000, 20, 'call record ended');
    await waitFor(() => !fx.phone.inCall, 5000, 20, "the phone got (and answered) the gateway's BYE");
    await fx.phone.media.stopMedia();
    const record = await fx.call(call.id);
    assert.notEqual(record.reason, 'media-timeout');
    assert.notEqual(record.suspectedFalseEnd, true, JSON.stringify(record.timeline.slice(-6)));
    assert.deepEqual(await metric(fx, 'ferry_calls_suspected_false_end_total'), ['ferry_calls_suspected_false_end_total 0']);
  });

  test('the phone goes silent (no RTP, no RTCP) but is still there: ended on media-timeout, its 200 to our BYE marks a suspected false end', { timeout: 30_000 }, async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    await fx.phone.media.stopMedia(); // silent, SIP still alive: what a mute without RTCP looks like
    await fx.releasedAt(DEAD_MS + 5000);
    await waitFor(async () => (await fx.call(call.id)).state === 'ended', 5000, 20, 'call record ended');
    const record = await fx.call(call.id);
    assert.equal(record.reason, 'media-timeout');
    assert.equal(record.suspectedFalseEnd, true, JSON.stringify(record.timeline.slice(-6)));
    assert.ok(record.timeline.some((e) => e.event === 'suspected-false-end'), 'the timeline explains it');
    assert.equal(fx.phone.inCall, false, 'the phone got (and answered) the gateway\'s BYE');
    assert.deepEqual(await metric(fx, 'ferry_calls_suspected_false_end_total'), ['ferry_calls_suspected_false_end_total{reason="media-timeout"} 1']);
    await fx.webphone.waitCallState('ended', 3000).catch(() => undefined);
  });
});
