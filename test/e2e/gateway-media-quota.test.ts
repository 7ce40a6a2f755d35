import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import { connectKurento, type KurentoClientLike } from '../helpers/media-kurento';
import { waitFor } from '../helpers/stack';

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

  test('quota: a kurento-client that hits the pipeline quota gets 40009 NOT_ENOUGH_RESOURCES while a call through the gateway still connects with media; a call while the server is full gets 503 + Retry-After (media-overloaded); after clients that filled the server leave, a call connects at once', async () => {
    const a = await client();
    const first = await createUntilRefused(a, 2000);
    assert.equal(first.made, 20, `the session quota (refusal: ${JSON.stringify(first.refusal)})`);
    assert.equal(first.refusal?.code, 40009);
    assert.equal(first.refusal?.data?.type, 'NOT_ENOUGH_RESOURCES');

    // the other client stays connected: a phone calls the webphone, media both ways
    await callAndHangUp();
    // the call's own pipeline is released (the other client's 20 stay)
    await waitFor(async () => (await fx.mediaStats()).pipelines === 20, 10_000, 20, "the call's pipeline released");

    // a second session takes the rest of the server: now even the gateway could not get a pipeline
    const b = await client();
    const rest = await createUntilRefused(b, 2000);
    const stats = await fx.mediaStats();
    assert.equal(rest.refusal?.code, 40009, JSON.stringify(rest.refusal));
    assert.match(String(rest.refusal?.message), /pipeline quota of the server reached \(30\/30\)/);
    assert.equal(stats.pipelines, 30, 'the server is full');

    // a call through the gateway now: refused with 503 + Retry-After (the caller may retry), reason recorded, nothing left behind
    const refusedSince = Date.now();
    const refusal = await fx.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: fx.stack.sipPort }).then(
      () => assert.fail('the call was accepted by a full media server'),
      (err: { status?: number; headers?: Map<string, string[]>; message?: string }) => err,
    );
    assert.equal(refusal.status, 503, refusal.message);
    assert.match(refusal.headers?.get('retry-after')?.[0] ?? '', /^\d+$/, 'Retry-After');
    const refusedCall = await waitFor(async () => (await fx.calls()).find((c) => c.createdAt >= refusedSince - 1000 && c.state === 'ended'), 5000, 20, 'the refused call recorded as ended');
    assert.equal(refusedCall.reason, 'media-overloaded', JSON.stringify(refusedCall.timeline));
    assert.notEqual(await fx.webphone.callState(), 'ringing-in', 'the webphone was not rung');
    assert.equal((await fx.mediaStats()).pipelines, 30, 'no pipeline made or lost by the refused call');

    // both leave; their pipelines are orphans that never negotiated media: a call connects at once.
    // close() only starts the WebSocket closing handshake: the media server owes those slots to the
    // two sessions until it has seen their connections close (a call placed before that is refused)
    a.close();
    b.close();
    const leftAt = Date.now();
    await waitFor(async () => {
      const detail = (await fx.mediaStats()).sessionsDetail ?? [];
      return detail.every((sess) => !sess.bound || sess.pipelines.length < 9) || undefined;
    }, 10_000, 10, 'the media server saw both filling clients leave');
    const closeSeenMs = Date.now() - leftAt;
    await callAndHangUp();
    const tookMs = Date.now() - leftAt;
    console.log(`# the media server saw the filling clients' connections close ${closeSeenMs} ms after close(); a call connected with media ${tookMs} ms after close() (orphan TTL 240 s)`);
    assert.ok(tookMs < 60_000, `took ${tookMs} ms`);
  });
});
