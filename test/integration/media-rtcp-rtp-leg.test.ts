import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { RtpLeg } from '../../src/media/rtp/rtp-leg';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, type KurentoClientLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { pollUntil } from '../helpers/wait-for';

/**
 * The plain RTP leg's RTCP with real UDP sockets on 127.0.0.1: two concurrent close() calls put one RTCP
 * BYE on the wire; getStats (through kurento-client) reports the SSRC the peer really receives, the
 * peer's SSRC, and an interarrival jitter that is not 0 when the arrivals are irregular.
 */
const logger = createLogger('test.media-rtcp-rtp-leg');

const sockets: dgram.Socket[] = [];
const servers: RunningMediaServer[] = [];
const clients: KurentoClientLike[] = [];
const peers: RtpTestPeer[] = [];
after(async () => {
  for (const s of sockets) s.close();
  clients.forEach((c) => c.close());
  peers.forEach((p) => p.close());
  await Promise.all(servers.map((s) => s.close()));
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return s;
}

describe('media: RTCP on the RTP leg (real sockets)', () => {
  test('two concurrent close({ notifyPeer }) calls send ONE RTCP BYE (counted at the peer\'s socket)', { timeout: 10_000 }, async () => {
    const legRtp = await udp();
    const phone = await udp();
    sockets.push(phone);
    const arrivals: Buffer[] = [];
    phone.on('message', (m) => arrivals.push(Buffer.from(m)));
    const leg = new RtpLeg({ rtp: legRtp, rtcp: undefined }, systemClock, 60_000, 'ferry-test', logger);
    const port = phone.address().port;
    leg.setRemote({ address: '127.0.0.1', rtpPort: port, rtcpAddress: '127.0.0.1', rtcpPort: port, rtcpMux: true }, true, [0]);
    // One RTP packet first: the leg stamps its SSRC on it, and the BYE must name that same SSRC.
    const pkt = Buffer.alloc(172);
    pkt[0] = 0x80;
    pkt.writeUInt32BE(0xabcdef01, 8);
    leg.sendRtp(pkt);
    await pollUntil(() => arrivals.length >= 1, { timeoutMs: 3000, what: 'the RTP packet at the phone' });
    const wireSsrc = arrivals[0]!.readUInt32BE(8);
    assert.equal(wireSsrc, leg.localSsrc, 'the leg sends under its own SSRC');

    const first = leg.close({ notifyPeer: true });
    const second = leg.close({ notifyPeer: true });
    assert.equal(first, second, 'one close, one promise');
    await Promise.all([first, second]);
    await leg.close({ notifyPeer: true }); // a late third call: resolves, sends nothing
    // Positive control in the same window: a marker sent after the closes resolved arrives after any BYE they sent.
    const marker = await udp();
    marker.send(Buffer.from('marker'), port, '127.0.0.1');
    await pollUntil(() => arrivals.some((m) => m.toString() === 'marker'), { timeoutMs: 3000, what: 'the marker datagram' });
    marker.close();
    const byes = arrivals.filter((m) => parseRtcpCompound(m).bye);
    assert.equal(byes.length, 1, `${byes.length} RTCP BYEs at the phone`);
    const bye = parseRtcpCompound(byes[0]!);
    assert.deepEqual(bye.byeSsrcs, [wireSsrc], 'the BYE names the SSRC of the RTP');
    assert.equal(bye.types[0], 200, 'an SR before the BYE: the leg sent RTP in this interval');
    assert.equal(leg.boundPorts(), 0);
  });

  test('getStats: outbound ssrc = the SSRC the phone receives; inbound ssrc = the phone\'s; jitter measured, in every report block too', { timeout: 15_000 }, async () => {
    const server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', rtcpIntervalMs: 200 } });
    servers.push(server);
    const client = await connectKurento(server.url);
    clients.push(client);
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(client, peers);
    // 50 packets back to back, 20 ms of timestamp apart: arrival gaps of ~0 ms give |D| ~ 160 units each,
    // so J climbs towards 160 (about 150 after 49 steps, 0.019 s at 8 kHz), far from 0.
    for (let i = 0; i < 50; i++) pa.send(0, Buffer.alloc(160, 0xff));
    await pb.waitFor(() => pb.received.length >= 50, 5000, '50 packets relayed to B');
    const wireSsrc = pb.received[0]!.ssrc;
    assert.ok(pb.received.every((p) => p.ssrc === wireSsrc), 'one SSRC on the wire');
    type Stats = Record<string, { type: string; ssrc?: string; jitter?: number; packetsReceived?: number; packetsLost?: number; packetsSent?: number }>;
    const statsB = await call<Stats>(b, 'getStats', 'AUDIO');
    const outB = Object.values(statsB).find((s) => s.type === 'outboundrtp')!;
    assert.equal(outB.ssrc, String(wireSsrc), 'B reports the SSRC its phone receives');
    assert.equal(outB.packetsSent, 50);
    const statsA = await call<Stats>(a, 'getStats', 'AUDIO');
    const inA = Object.values(statsA).find((s) => s.type === 'inboundrtp')!;
    assert.equal(inA.ssrc, String(pa.ssrc), "A reports the phone's SSRC as inbound");
    assert.equal(inA.packetsReceived, 50);
    assert.equal(inA.packetsLost, 0);
    assert.ok(inA.jitter! > 0.01 && inA.jitter! < 0.021, `jitter ${inA.jitter} s`);
    // B's SR names the same SSRC; A's report block about the phone's stream carries the jitter (no longer 0).
    await pb.waitFor(() => pb.rtcpReceived.some((m) => parseRtcpCompound(m).types[0] === 200), 3000, 'an SR at B');
    assert.equal(parseRtcpCompound(pb.rtcpReceived.find((m) => parseRtcpCompound(m).types[0] === 200)!).senderSsrc, wireSsrc);
    // A report sent while the burst was still arriving (a slow machine) names an earlier highest sequence:
    // the block to judge is one sent after A had all 50, i.e. one whose highest sequence is the 50th packet.
    const blocksAboutPhone = () => pa.rtcpReceived.map((m) => parseRtcpCompound(m).reportBlocks.find((r) => r.ssrc === pa.ssrc)).filter((r) => r !== undefined);
    await pa.waitFor(() => blocksAboutPhone().some((r) => r.extendedHighestSeq === 1049), 3000, 'a report block at A about the phone naming its 50th packet (the peer starts at 1000)');
    const blocks = blocksAboutPhone();
    assert.ok(blocks.every((r) => r.extendedHighestSeq <= 1049), `no block names a packet the phone did not send: ${blocks.map((r) => r.extendedHighestSeq).join(', ')}`);
    const block = blocks.find((r) => r.extendedHighestSeq === 1049)!;
    assert.ok(block.jitter > 80 && block.jitter <= 160, `report block jitter ${block.jitter} timestamp units`);
    await pipeline.release();
  });
});
