import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { pollPause } from '../helpers/wait-for';

/**
 * A pipeline released by a control session that is not the one watching it (an operator's tool, a
 * second app): ferry media first tells the other sessions subscribed to its endpoints —
 * MediaStateChanged(DISCONNECTED) and MediaSessionTerminated with reason `control-release` and detail
 * `released-by-other-session` — then releases. The releasing session gets no error and no such event.
 */
describe('media: a pipeline released by another control session', { timeout: 30_000 }, () => {
  let server: RunningMediaServer;
  const clients: KurentoClientLike[] = [];
  const peers: RtpTestPeer[] = [];
  after(async () => {
    clients.forEach((c) => c.close());
    peers.forEach((p) => p.close());
    await server?.close();
  });

  interface Watched {
    terminated: Record<string, unknown>[];
    disconnected: Record<string, unknown>[];
  }

  function watch(ep: KurentoObjectLike): Watched {
    const w: Watched = { terminated: [], disconnected: [] };
    ep.on('MediaSessionTerminated', (d) => w.terminated.push(d));
    ep.on('MediaStateChanged', (d) => {
      if (d.newState === 'DISCONNECTED') w.disconnected.push(d);
    });
    return w;
  }

  /** owner session: a pipeline with two RTP endpoints, media flowing both ways (state CONNECTED) */
  async function ownerCall(owner: KurentoClientLike): Promise<{ pipeline: KurentoObjectLike; a: KurentoObjectLike; b: KurentoObjectLike }> {
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(owner, peers);
    for (let i = 0; i < 5; i++) {
      pa.send(0, Buffer.from([i]));
      pb.send(0, Buffer.from([i]));
    }
    await pb.waitFor(() => pb.received.length >= 5, 3000, 'RTP a -> b');
    await pa.waitFor(() => pa.received.length >= 5, 3000, 'RTP b -> a');
    return { pipeline, a, b };
  }

  test('the owner hears MediaSessionTerminated + DISCONNECTED with reason and detail; the releasing session gets no error and no event', async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1' } });
    const url = `ws://127.0.0.1:${server.port}/kurento`;
    const owner = await connectKurento(url);
    const other = await connectKurento(url);
    clients.push(owner, other);
    const { pipeline, a, b } = await ownerCall(owner);
    const seenA = watch(a);
    const seenB = watch(b);
    // the other session also listens on one endpoint: it is the releaser, so it must hear nothing
    const otherA = await other.getMediaobjectById(a.id);
    const seenByReleaser = watch(otherA);
    // subscriptions are requests: make sure they are in place (a positive round trip on each session)
    await call(a, 'getMediaState');
    await call(otherA, 'getMediaState');

    const releasedAt = Date.now();
    const byOther = await other.getMediaobjectById(pipeline.id);
    await byOther.release(); // resolves: no error for the releasing session

    const deadline = Date.now() + 3000;
    while (seenA.terminated.length === 0 || seenB.terminated.length === 0) {
      if (Date.now() > deadline) throw new Error(`owner not told: a=${JSON.stringify(seenA)} b=${JSON.stringify(seenB)}`);
      await pollPause(10);
    }
    const toldMs = Date.now() - releasedAt;
    for (const seen of [seenA, seenB]) {
      assert.equal(seen.terminated.length, 1);
      assert.equal(seen.terminated[0]!.reason, 'control-release');
      assert.equal(seen.terminated[0]!.detail, 'released-by-other-session');
      assert.equal(seen.disconnected.length, 1, 'MediaStateChanged -> DISCONNECTED too');
      assert.equal(seen.disconnected[0]!.oldState, 'CONNECTED');
      assert.equal(seen.disconnected[0]!.reason, 'control-release');
      assert.equal(seen.disconnected[0]!.detail, 'released-by-other-session');
    }
    assert.deepEqual(seenByReleaser, { terminated: [], disconnected: [] }, 'the releasing session is not told about its own release');

    const st = await fetchStats(server.port);
    assert.equal(st.pipelines, 0, 'the release happened');
    assert.equal(st.boundPorts, 0);
    assert.equal(st.releasesByReason['control-release'], 1);
    console.log(`# owner told ${toldMs} ms after the other session's release request`);
  });

  test('the owner releasing its own pipeline hears nothing (KMS behaviour unchanged for the releaser)', async () => {
    const url = `ws://127.0.0.1:${server.port}/kurento`;
    const owner = await connectKurento(url);
    clients.push(owner);
    const { pipeline, a } = await ownerCall(owner);
    const seen = watch(a);
    await call(a, 'getMediaState');
    await pipeline.release();
    // positive control for "nothing arrives": a round trip on the same connection after the release
    const probe = await owner.create('MediaPipeline');
    await probe.release();
    assert.deepEqual(seen, { terminated: [], disconnected: [] });
    assert.equal((await fetchStats(server.port)).pipelines, 0);
  });
});
