import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { RawRpc } from '../helpers/media-raw-rpc';
import { rawRpcRtpPair } from '../helpers/media-rtp-pair';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { rng } from '../helpers/seeded-random';

/**
 * Garbage datagrams on the RTP ports (from the latched phone itself and from a stranger, before and
 * after latching) never crash ferry media, never end a leg by themselves (only a well-formed RTCP BYE
 * does), and the call keeps relaying its real packets.
 */
describe('media: garbage on RTP ports', () => {
  let server: RunningMediaServer;
  let rpc: RawRpc;
  const peers: RtpTestPeer[] = [];
  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', deadMs: 15000 } });
    rpc = await RawRpc.open(server.url);
  });
  after(async () => {
    await rpc.close();
    peers.forEach((p) => p.close());
    await server.close();
  });

  test('10000 seeded garbage datagrams: no crash, no end, every real packet relayed', { timeout: 300_000 }, async () => {
    const { p, pa, pb } = await rawRpcRtpPair(rpc, peers, { subscribeEnded: true });

    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    const r = rng(1889);
    const garbage = (): Buffer => {
      const len = Math.floor(r() * 200);
      const g = Buffer.alloc(len);
      for (let i = 0; i < len; i++) g[i] = Math.floor(r() * 256);
      if (len >= 2 && r() < 0.5) g[0] = 0x80 | (g[0]! & 0x3f); // version 2 half the time
      if (len >= 2 && r() < 0.3) g[1] = 192 + Math.floor(r() * 32); // RTCP-looking (never a valid BYE compound)
      if (len >= 4 && g[1] === 203) g[1] = 204;
      return g;
    };
    let real = 0;
    // stranger first (before the phone latched), then the phone, then interleaved
    for (let i = 0; i < 200; i++) {
      stranger.send(garbage(), pa.remote!.port, '127.0.0.1');
      if (i % 50 === 49) await new Promise((res) => setTimeout(res, 3));
    }
    await new Promise((res) => setTimeout(res, 20));
    for (let i = 0; i < 10000; i++) {
      const from = r() < 0.5 ? pa.socket : stranger;
      from.send(garbage(), pa.remote!.port, '127.0.0.1');
      if (i % 50 === 0) {
        pa.send(0, Buffer.from(`real-${real++}`));
        // the server runs in this process: let it drain its socket so the kernel buffer never overflows
        await new Promise((res) => setTimeout(res, 3));
      }
    }
    stranger.close();
    const realAtB = () => pb.received.filter((x) => x.payload.toString().startsWith('real-')).length;
    await pb.waitFor(() => realAtB() >= real, 5000, `all ${real} real packets`).catch((err: Error) => {
      const got = new Set(pb.received.map((x) => x.payload.toString()));
      const missing = Array.from({ length: real }, (_, k) => `real-${k}`).filter((k) => !got.has(k));
      throw new Error(`${err.message} (got ${realAtB()}, missing ${missing.join(',')}; stats ${JSON.stringify(server.mediaSet.stats()).slice(0, 1500)})`);
    });
    assert.deepEqual(rpc.notifications, [], 'no leg ended');
    assert.deepEqual(await rpc.ok('ping'), { value: 'pong', sessionId: p.sessionId });
    await rpc.ok('release', { object: p.value });
  });
});
