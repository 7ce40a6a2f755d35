import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * docs/lifecycle.md S14: two gateways share Redis (and ferry sip / ferry media); the one owning a call
 * is SIGKILLed mid-call; the other takes the call over within the lease time (no call lost: media
 * keeps flowing, the survivor adopts the record, re-attaches to the media objects by id), and then
 * handles the phone's hang-up: the webphone is told and the pipeline released, each < 1 s.
 */
const LEASE_MS = 2000;

describe('S14: two gateways on one Redis, the call owner dies', { timeout: 120_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    // REGISTERs round-robin between the two gateways: the challenge comes from one, the credentials go to the other.
    fx = await GatewayCallFixture.start({ secondGateway: true, env: { FERRY_GATEWAY_LEASE_MS: String(LEASE_MS), FERRY_MEDIA_DEAD_MS: '5000' } });
  });
  after(async () => {
    await fx?.close();
  });

  test('S14 prerequisite: a webphone registers (digest) through two gateways sharing Redis, REGISTERs round-robined between them', async () => {
    const { GatewayWebphone } = await import('../helpers/gateway-webphone');
    const { WEBPHONE_USERS } = await import('../helpers/lifecycle-sip-config');
    // The first REGISTER (no credentials) is challenged by one gateway, the authenticated retry reaches the other.
    const bob = await GatewayWebphone.open({ httpPort: fx.stack.httpPort, wsPort: fx.stack.wsPort, user: 'bob', password: WEBPHONE_USERS.bob }).catch((err: Error) => err);
    if (!(bob instanceof Error)) await bob.close();
    const refusals = fx.stack.output.filter((l) => l.includes('foreign nonce'));
    assert.ok(!(bob instanceof Error), `bob could not register through two gateways: ${bob instanceof Error ? bob.message.split('\n')[0] : ''}; gateway logs: ${refusals.slice(-2).join(' | ')}`);
  });

  test('S14: the owner of a call is SIGKILLed -> the other gateway adopts it within the lease time, media never stops, and it handles the hang-up (< 1 s)', async () => {
    const since = await fx.phoneCallsWebphone();
    const call = await fx.liveCall(since).catch(() => fx.liveCall(since, fx.stack.httpPort2));
    const ownerIsA = call.owner.startsWith('gw-a-');
    const survivorHttp = ownerIsA ? fx.stack.httpPort2! : fx.stack.httpPort;
    await fx.stack.kill(ownerIsA ? 'gateway' : 'gateway2', 'SIGKILL');
    const killedAt = Date.now();
    await waitFor(async () => (await fx.call(call.id, survivorHttp).catch(() => undefined))?.timeline.some((e) => e.event === 'adopted'), LEASE_MS * 3 + 10_000, 50, 'the surviving gateway adopts the call');
    const adoptedAfter = Date.now() - killedAt;
    assert.ok(adoptedAfter <= LEASE_MS * 2 + 2000, `adopted ${adoptedAfter} ms after the owner died (lease ${LEASE_MS} ms)`);
    const record = await fx.call(call.id, survivorHttp);
    assert.notEqual(record.owner, call.owner, 'the survivor owns the call now');
    assert.ok(record.timeline.some((e) => e.event === 'media-reattached'), `re-attached to the media objects: ${JSON.stringify(record.timeline)}`);
    const gap = await fx.phone.media.maxRtpGap(killedAt - 200, Date.now());
    assert.ok(gap < 300, `media kept flowing through the take-over (largest gap at the phone ${gap} ms)`);

    const byeAt = await fx.phone.hangup();
    await fx.phone.media.sendBye();
    await fx.phone.media.stopMedia();
    const released = await fx.releasedAt(5000);
    await fx.webphone.waitCallState('ended', 5000);
    const told = (await fx.webphone.endedAt())!;
    assert.ok(told - byeAt < 1000, `webphone told ${told - byeAt} ms after the phone's BYE`);
    assert.ok(released - byeAt < 1000, `released ${released - byeAt} ms after the phone's BYE`);
    const ended = await fx.call(call.id, survivorHttp);
    assert.equal(ended.state, 'ended');
    const metrics = await (await fetch(`http://127.0.0.1:${survivorHttp}/metrics`)).text();
    assert.match(metrics, /^ferry_calls_adopted_total 1$/m, 'the survivor counts the adoption');
    console.log(`[measure] S14 adoption ${adoptedAfter} ms after the owner died; hang-up: webphone told ${told - byeAt} ms, released ${released - byeAt} ms`);
  });

});
