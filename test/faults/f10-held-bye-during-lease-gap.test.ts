import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import { waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md F10 with two gateways on one Redis (S14's set-up): the call's owner is SIGKILLed
 * and the phone hangs up at once, long before the other gateway may adopt the call (its owner's
 * lease, 3 s here, has not run out). ferry sip offers the phone's BYE to the surviving gateway,
 * which does not drive that call yet: it holds the BYE until its scan adopts the call, then the BYE
 * ends it as the phone's hang-up: 200 to the phone, one BYE to the webphone, reason `sip-bye`.
 * Real processes: ferry sip, ferry media, two gateways, Chromium webphone, scripted SIP phone.
 */
const LEASE_MS = 3000;

describe('F10: a party hangs up while its call waits for the dead owner\'s lease (two gateways)', { timeout: 120_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ secondGateway: true, env: { FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_LOG_LEVEL: 'info' } });
  });
  after(async () => {
    if (process.env.FERRY_TEST_DUMP && fx) console.log(fx.stack.output.join('\n'));
    await fx?.close();
  });

  test('F10: the owner SIGKILLed, the phone hangs up in the lease gap -> its BYE is held, answered 200 when the other gateway adopts the call; one BYE to the webphone (sip-bye), none to the phone', async () => {
    const since = await fx.phoneCallsWebphone();
    // the call's owner: whichever gateway ferry sip gave the INVITE to
    const call = await fx.liveCall(since);
    const ownerIsFirst = call.owner.startsWith('gw-a-');
    const survivorPort = ownerIsFirst ? fx.stack.httpPort2! : fx.stack.httpPort;
    const killedAt = Date.now();
    await fx.stack.kill(ownerIsFirst ? 'gateway' : 'gateway2', 'SIGKILL');
    const byeSentAt = await fx.phone.hangup();
    await fx.phone.media.stopMedia();
    const answeredAfter = Date.now() - killedAt;
    assert.equal(fx.phone.lastHangupStatus, 200, "the phone's BYE was answered 200, not 481");
    await fx.webphone.waitCallState('ended', 5000);
    const rec = await waitFor(async () => {
      const r = await fx.call(call.id, survivorPort).catch(() => undefined);
      return r?.state === 'ended' ? r : undefined;
    }, 5000, 25, 'the call ended by the surviving gateway');
    assert.ok(rec.timeline.some((e) => e.event === 'adopted'), `adopted by the survivor: ${JSON.stringify(rec.timeline.map((e) => e.event))}`);
    assert.equal(rec.reason, 'sip-bye', `reason; timeline ${JSON.stringify(rec.timeline)}`);
    assert.equal(rec.endedBy, 'caller');
    const byes = rec.timeline.filter((e: CallRecord['timeline'][number]) => /^bye-(sent|unanswered|failed)$/.test(e.event));
    assert.deepEqual(byes.map((e) => `${e.event} ${e.detail}`), ['bye-sent to callee'], 'exactly one BYE, to the webphone');
    assert.equal(fx.phone.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, 'no BYE reached the phone');
    const told = (await fx.webphone.endedAt())! - byeSentAt;
    // the BYE waited for the lease: it cannot have been handled before the owner's lease ran out
    assert.ok(answeredAfter >= LEASE_MS - 1000, `answered ${answeredAfter} ms after the kill, i.e. after the lease gap`);
    assert.ok(told < LEASE_MS + 3000, `webphone told ${told} ms after the phone's BYE (lease ${LEASE_MS} ms + one scan)`);
    console.log(`[measure] F10 (two gateways): the phone's BYE answered ${answeredAfter} ms after the owner's SIGKILL (lease ${LEASE_MS} ms); webphone told ${told} ms after the BYE`);
  });
});
