import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { RawRpc } from '../helpers/media-raw-rpc';
import { rawRpcRtpPair } from '../helpers/media-rtp-pair';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { rng } from '../helpers/seeded-random';
import { pollUntil } from '../helpers/wait-for';
import { readFileSync } from 'node:fs';

/** The kernel's view of the IPv4 UDP socket bound to `port` (/proc/net/udp): bytes queued unread, datagrams dropped. */
function udpSocketQueue(port: number): { queued: number; drops: number } | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.split(':')[1] === hexPort) return { queued: parseInt(f[4]!.split(':')[1]!, 16), drops: Number(f[f.length - 1]) };
  }
  return undefined;
}

/**
 * Garbage datagrams on the RTP ports (from the latched phone itself and from a stranger, before and
 * after latching) never crash ferry media, never end a leg by themselves (only a well-formed RTCP BYE
 * does), and the call keeps relaying its real packets.
 *
 * Pacing: the sender waits until ferry's socket and B's have been read (their queues in /proc/net/udp),
 * whether ferry runs on this thread, in relay workers or with the native relay (which forwards a
 * burst at once): a full kernel receive buffer drops datagrams before ferry sees them, real ones too.
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

    const ferryPort = pa.remote!.port;
    const drops = (): { ferry?: number; b?: number } => ({ ferry: udpSocketQueue(ferryPort)?.drops, b: udpSocketQueue(pb.port)?.drops });
    const dropsBefore = drops();
    assert.notEqual(dropsBefore.ferry, undefined, "ferry's RTP socket is in /proc/net/udp");
    assert.notEqual(dropsBefore.b, undefined, "B's socket is in /proc/net/udp");
    // dgram's send reaches the kernel later (after its address lookup): count them out
    let unsent = 0;
    const sent = (): void => {
      unsent--;
    };
    const sendTo = (from: dgram.Socket, msg: Buffer): void => {
      unsent++;
      from.send(msg, ferryPort, '127.0.0.1', sent);
    };
    const drained = (): Promise<boolean> =>
      pollUntil(() => unsent === 0 && [ferryPort, pb.port].every((port) => (udpSocketQueue(port)?.queued ?? 0) <= 16_384), {
        timeoutMs: 10_000,
        what: "ferry's and B's sockets read",
        stepMs: 2,
      });
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
      sendTo(stranger, garbage());
      if (i % 50 === 49) await drained();
    }
    await drained();
    for (let i = 0; i < 10000; i++) {
      const from = r() < 0.5 ? pa.socket : stranger;
      sendTo(from, garbage());
      if (i % 50 === 0) {
        pa.send(0, Buffer.from(`real-${real++}`));
        await drained();
      }
    }
    stranger.close();
    const realAtB = () => pb.received.filter((x) => x.payload.toString().startsWith('real-')).length;
    await pb.waitFor(() => realAtB() >= real, 5000, `all ${real} real packets`).catch((err: Error) => {
      const got = new Set(pb.received.map((x) => x.payload.toString()));
      const missing = Array.from({ length: real }, (_, k) => `real-${k}`).filter((k) => !got.has(k));
      const queues = JSON.stringify({ before: dropsBefore, now: drops() });
      throw new Error(`${err.message} (got ${realAtB()}, missing ${missing.join(',')}; kernel ${queues}; stats ${JSON.stringify(server.mediaSet.stats()).slice(0, 1500)})`);
    });
    assert.deepEqual(drops(), dropsBefore, 'the kernel dropped nothing at ferry or B (the pacing held)');
    assert.deepEqual(rpc.notifications, [], 'no leg ended');
    assert.deepEqual(await rpc.ok('ping'), { value: 'pong', sessionId: p.sessionId });
    await rpc.ok('release', { object: p.value });
  });
});
