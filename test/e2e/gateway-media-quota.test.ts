import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import { connectKurento, type KurentoClientLike } from '../helpers/media-kurento';

/**
 * ferry media's quotas seen from a real call: the three ferry processes, a scripted SIP phone and a
 * Chromium webphone (test/helpers/gateway-call-fixture.ts), and another kurento-client on the media
 * server's port creating pipelines until it is refused. The gateway's calls still connect with media
 * both ways — while the other client stays connected, and at once after clients that filled the whole
 * server left (their pipelines never negotiated media and must not hold the server for the orphan TTL).
 */

interface RpcError {
  code?: number;
  message?: string;
  data?: { type?: string };
}

async function createUntilRefused(c: KurentoClientLike, max: number): Promise<{ made: number; refusal: RpcError | undefined }> {
  for (let made = 0; made < max; made++) {
    try {
      await c.create('MediaPipeline');
    } catch (err) {
      return { made, refusal: err as RpcError };
    }
  }
  return { made: max, refusal: undefined };
}

describe('gateway calls under a media quota', { timeout: 180_000 }, () => {
  let fx: GatewayCallFixture;
  const clients: KurentoClientLike[] = [];
  before(async () => {
    fx = await GatewayCallFixture.start({
      env: { FERRY_MEDIA_MAX_PIPELINES: '30', FERRY_MEDIA_MAX_PIPELINES_PER_SESSION: '20', FERRY_MEDIA_ORPHAN_TTL_MS: '240000' },
    });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await fx?.close();
  });

  async function client(): Promise<KurentoClientLike> {
    const c = await connectKurento(`ws://127.0.0.1:${fx.stack.mediaPort}/kurento`);
    clients.push(c);
    return c;
  }

  async function callAndHangUp(): Promise<void> {
    await fx.phoneCallsWebphone(); // connected, RTP both ways (> 20 packets each way)
    assert.equal(await fx.webphone.callState(), 'connected');
    await fx.phone.media.stopMedia().catch(() => undefined);
    await fx.webphone.hangup();
    await fx.webphone.waitCallState('ended', 10_000).catch(() => undefined);
  }

  test('quota: a kurento-client that hits the pipeline quota gets 40009 NOT_ENOUGH_RESOURCES while a call through the gateway still connects with media; after clients that filled the server leave, a call connects at once', async () => {
    const a = await client();
    const first = await createUntilRefused(a, 2000);
    assert.equal(first.made, 20, `the session quota (refusal: ${JSON.stringify(first.refusal)})`);
    assert.equal(first.refusal?.code, 40009);
    assert.equal(first.refusal?.data?.type, 'NOT_ENOUGH_RESOURCES');

    // the other client stays connected: a phone calls the webphone, media both ways
    await callAndHangUp();
    await fx.releasedAt(10_000).catch(() => undefined);

    // a second session takes the rest of the server: now even the gateway could not get a pipeline
    const b = await client();
    const rest = await createUntilRefused(b, 2000);
    const stats = await fx.mediaStats();
    assert.equal(rest.refusal?.code, 40009, JSON.stringify(rest.refusal));
    assert.match(String(rest.refusal?.message), /pipeline quota of the server reached \(30\/30\)/);
    assert.equal(stats.pipelines, 30, 'the server is full');

    // both leave; their pipelines are orphans that never negotiated media: a call connects at once
    a.close();
    b.close();
    const leftAt = Date.now();
    await callAndHangUp();
    const tookMs = Date.now() - leftAt;
    console.log(`# after the filling clients left, a call connected with media in ${tookMs} ms (orphan TTL 240 s)`);
    assert.ok(tookMs < 60_000, `took ${tookMs} ms`);
  });
});
