import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * docs/lifecycle.md S4 and S13 with the real gateway as the proxy (sip + media + gateway on Redis,
 * Chromium webphone on the gateway page, scripted SIP phone):
 *  - S4: the gateway is SIGKILLed mid-call, then the IP phone hangs up (SIP BYE, RTCP BYE, RTP stops):
 *    ferry media releases the orphaned pipeline within 1 s of the RTCP BYE; the restarted gateway finds
 *    the call ended, tells the webphone (SIP BYE) and cleans the state store.
 *  - S13: the gateway is SIGKILLed and restarted mid-call, adopts the call, then either party hangs up:
 *    the new gateway handles the BYE and the pipeline is released within 1 s.
 * Lease 2 s so adoption happens within a few seconds.
 */
const LEASE_MS = 2000;

describe('S4/S13: the gateway killed mid-call, restarted', { timeout: 180_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ env: { FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_MEDIA_DEAD_MS: '5000' } });
  });
  afterEach(async () => {
    // A failed test must not leave its call to the next one.
    if (!fx) return;
    await fx.phone.media.stopMedia().catch(() => undefined);
    if ((await fx.webphone.callState()) !== 'ended' && (await fx.webphone.callState()) !== 'idle') await fx.webphone.hangup().catch(() => undefined);
    await fx.releasedAt(5000).catch(() => undefined);
  });
  after(async () => {
    await fx?.close();
  });

  async function adopted(callId: string): Promise<void> {
    await waitFor(async () => (await fx.call(callId).catch(() => undefined))?.timeline.some((e) => e.event === 'adopted'), LEASE_MS * 3 + 10_000, 100, `call ${callId} adopted by the restarted gateway`);
  }

  test('S4: gateway SIGKILLed, then the IP phone hangs up (SIP BYE + RTCP BYE) -> ferry media releases within 1 s of the RTCP BYE; the restarted gateway tells the webphone and cleans Redis', async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since);
    await fx.stack.kill('gateway', 'SIGKILL');
    // ferry media has seen the gateway's control connection go: the call's pipeline is orphaned (S3), so the phone's RTCP BYE ends it
    await waitFor(async () => {
      const st = (await fx.mediaStats()) as unknown as { pipelinesDetail?: { orphaned?: boolean }[] };
      return (st.pipelinesDetail ?? []).length > 0 && (st.pipelinesDetail ?? []).every((p) => p.orphaned === true);
    }, 3000, 20, 'the pipeline orphaned after the gateway kill');
    // nobody answers the BYE while no gateway lives (ferry sip holds it for the orphaned dialog): the phone
    // gives up on it after 3 s, before the gateway is restarted, as it did after its default 10 s
    const hangup = fx.phone.hangup({ timeoutMs: 3000 }).catch((err: Error) => err.message);
    await fx.phone.media.sendBye();
    const rtcpByeAt = Date.now();
    await fx.phone.media.stopMedia();
    const released = await fx.releasedAt(5000);
    assert.ok(released - rtcpByeAt < 1000, `ferry media released the orphan ${released - rtcpByeAt} ms after the RTCP BYE`);
    assert.equal((await fx.mediaStats()).boundPorts, 0);
    await hangup;
    const restartedAt = Date.now(); // the restarted gateway finishes the call during its start-up scan
    await fx.stack.restart('gateway');
    await fx.webphone.waitCallState('ended', LEASE_MS * 3 + 10_000).catch(async (err: Error) => {
      const record = await fx.redisCall(call.id);
      throw new Error(`${err.message}: the restarted gateway never ended the webphone's call; record ${JSON.stringify(record?.record.state)} ${JSON.stringify(record?.record.timeline)}\n${fx.stack.output.filter((l) => l.startsWith('[gateway]')).slice(-25).join('\n')}`);
    });
    const toldAfter = (await fx.webphone.endedAt())! - restartedAt;
    await waitFor(async () => {
      const r = await fx.redisCall(call.id);
      return r === undefined || (r.record.state === 'ended' && r.ttlMs > 0);
    }, 10_000, 100, 'the call record deleted or marked ended with a TTL');
    console.log(`[measure] S4 (gateway) release ${released - rtcpByeAt} ms after RTCP BYE; webphone told ${toldAfter} ms after the gateway restart began (process start included)`);
  });

  for (const who of ['phone', 'webphone'] as const) {
    test(`S13: gateway SIGKILLed and restarted mid-call, adopts it; then the ${who} hangs up -> the new gateway relays the BYE and the pipeline is released, each < 1 s`, async () => {
      const since = await fx.phoneCallsWebphone();
      const call = await fx.liveCall(since);
      await fx.stack.kill('gateway', 'SIGKILL');
      const killedAt = Date.now();
      await fx.stack.restart('gateway');
      await adopted(call.id);
      // media never stopped (rule 1)
      const gap = await fx.phone.media.maxRtpGap(killedAt - 200, Date.now());
      assert.ok(gap < 300, `RTP to the phone kept flowing through the restart (largest gap ${gap} ms)`);
      if (who === 'phone') {
        const byeAt = await fx.phone.hangup();
        await fx.phone.media.sendBye();
        await fx.phone.media.stopMedia();
        const released = await fx.releasedAt(5000);
        await fx.webphone.waitCallState('ended', 5000);
        const told = (await fx.webphone.endedAt())!;
        assert.ok(told - byeAt < 1000, `webphone told ${told - byeAt} ms after the phone's BYE`);
        assert.ok(released - byeAt < 1000, `released ${released - byeAt} ms after the phone's BYE`);
        console.log(`[measure] S13 phone hang-up after restart: webphone told ${told - byeAt} ms, released ${released - byeAt} ms`);
      } else {
        const byeFrom = Date.now();
        const hangupAt = await fx.webphone.hangup();
        const bye = await fx.phone.waitForRequest('BYE', 5000, byeFrom);
        await fx.phone.media.stopMedia();
        const released = await fx.releasedAt(5000);
        assert.ok(bye.at - hangupAt < 1000, `BYE at the phone ${bye.at - hangupAt} ms after the webphone hung up`);
        assert.ok(released - hangupAt < 1000, `released ${released - hangupAt} ms after the webphone hung up`);
        console.log(`[measure] S13 webphone hang-up after restart: BYE at phone ${bye.at - hangupAt} ms, released ${released - hangupAt} ms`);
      }
      const record = await fx.call(call.id);
      assert.equal(record.state, 'ended');
      // a webphone's hang-up is a BYE plus a DTLS close_notify at the same moment: either may arrive first
      const expected = who === 'phone' ? ['sip-bye'] : ['sip-bye', 'dtls-close'];
      assert.ok(expected.includes(record.reason ?? ''), `end reason ${record.reason}`);
    });
  }
});
