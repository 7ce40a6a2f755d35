import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { fetchStats, type KurentoClientLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { TcpCutter } from '../helpers/media-tcp-cutter';
import { pollPause } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurento = require('kurento-client') as (url: string, options?: Record<string, unknown>) => Promise<KurentoClientLike>;

/**
 * The real kurento-client loses its control connection and reconnects on its own: it sends
 * `connect` with its sessionId, ferry media rebinds the session, and events subscribed before the cut
 * reach the new socket. Meanwhile the pipeline was an orphan whose media kept flowing.
 */
describe('media: kurento-client reconnect', () => {
  let server: RunningMediaServer;
  let cutter: TcpCutter;
  let client: KurentoClientLike | undefined;
  const peers: RtpTestPeer[] = [];
  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    await cutter?.close();
    await server?.close();
  });

  test('cut, media keeps flowing as an orphan, the client reconnects to the same session and still gets its events', { timeout: 120_000 }, async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', deadMs: 15000, autoRelease: 'orphans' } });
    cutter = await TcpCutter.start(server.port);
    client = await kurento(`ws://127.0.0.1:${cutter.port}/kurento`, { failAfter: 10, response_timeout: 200, duplicates_timeout: 200 });
    client.on('error', () => undefined);
    const reconnected = new Promise<boolean>((resolve) => client!.on('reconnected', (same: unknown) => resolve(same === true)));
    const ended: Record<string, unknown>[] = [];
    const { pipeline, pa, pb } = await bridgedRtpPair(client, peers, {
      oneWay: true,
      beforeOffers: (a) => a.on('MediaSessionTerminated', (d) => ended.push(d)),
    });
    const sessionId = (await fetchStats(server.port)).sessionsDetail[0]!.id;

    cutter.cut();
    const deadline = Date.now() + 3000;
    while (!(await fetchStats(server.port)).pipelinesDetail[0]?.orphaned) {
      if (Date.now() > deadline) throw new Error('not orphaned after the cut');
      await pollPause(20);
    }
    for (let i = 0; i < 10; i++) pa.send(0, Buffer.from([i]));
    await pb.waitFor(() => pb.received.length >= 10, 3000, 'media through the orphan');

    assert.equal(await reconnected, true, 'kurento-client resumed the same session');
    const st = await fetchStats(server.port);
    assert.equal(st.pipelinesDetail[0]!.orphaned, false);
    assert.deepEqual(st.sessionsDetail.map((s) => s.id), [sessionId]);

    pa.sendRtcpBye();
    await pb.waitFor(() => ended.length > 0, 3000, 'MediaSessionTerminated on the reconnected client');
    assert.equal(ended[0]!.reason, 'rtcp-bye');
    assert.equal((await fetchStats(server.port)).pipelines, 1, 'owner alive again: the app decides');
    await pipeline.release();
    assert.equal((await fetchStats(server.port)).boundPorts, 0);
  });
});
