import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';

/**
 * docs/lifecycle.md rule 5 as a transfer needs it (docs/transfer.md): releasing an endpoint connected to
 * no other endpoint (never connected, or disconnected; a pass-through hanging on it does not count)
 * releases only that endpoint, and the call's pipeline and other endpoints stay; releasing an endpoint
 * still connected to another endpoint releases the whole pipeline (the positive control).
 */
describe('media: an endpoint connected to no other endpoint is released alone', () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
    client = await connectKurento(server.url);
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  test('unused and swapped-out endpoints go alone; a connected one takes the pipeline', { timeout: 30_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    // a transfer's new endpoint that was never used
    const unused = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    await call(unused, 'release');
    assert.deepEqual([(await fetchStats(server.port)).pipelines, (await fetchStats(server.port)).elements], [1, 2]);
    // the swap: c takes b's place next to a; b, disconnected from a but still feeding a pass-through, goes alone
    const c = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const tap = await call<KurentoObjectLike>(pipeline, 'create', 'PassThrough');
    await call(b, 'connect', tap);
    await call(c, 'connect', a);
    await call(a, 'connect', c);
    await call(a, 'disconnect', b);
    await call(b, 'release');
    assert.deepEqual([(await fetchStats(server.port)).pipelines, (await fetchStats(server.port)).elements], [1, 3], 'a, c and the pass-through stay');
    // positive control: a is connected to c, so releasing it releases everything
    await call(a, 'release');
    const s = await fetchStats(server.port);
    assert.deepEqual([s.pipelines, s.elements], [0, 0]);
  });
});
