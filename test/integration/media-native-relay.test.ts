import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { currentOffloadController } from '../../src/media/native/offload-controller';
import { nativeRelay } from '../../src/media/native/native-relay';
import { call, fetchStats } from '../helpers/media-kurento';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { pollUntil } from '../helpers/wait-for';
import { assertFlowing, elementStats, portsFreed, RelayTestServers, relay, relayBothWays, routedBoth, sendBothWaysFor, mediaTimedOut, srtpAndPlainCall, exchangeSrtp, subscribe, type Events } from '../helpers/media-relay-servers';

/**
 * FERRY_MEDIA_RELAY=native through real ferry media (in-process server, kurento-client, real UDP peers):
 * a simple call's two directions go through native routes (the relay's forwarded counter and /stats
 * `nativeRelay: 'routed'` prove it), and everything JavaScript reports stays right: getStats and /stats
 * counts, MediaFlowIn/Out and MediaState events, the media-timeout of a silent call (while packets flow
 * through the native path the leg stays alive), hold and resume (the route into the held leg comes down
 * and back), release frees every port and watch; SDES SRTP on one leg with native contexts (the streams
 * handed over both ways, so a switch JS -> native -> JS loses or refuses nothing). The same with two relay workers.
 */

const world = new RelayTestServers('native');
const { peers } = world;
after(() => world.close());

describe('media: FERRY_MEDIA_RELAY=native', () => {
  test('N1 two RtpEndpoints: both directions forwarded natively, counts, getStats, /stats, flow and media state events, release -> zero', { timeout: 60_000 }, async () => {
    const { s, c } = await world.server({});
    const events: Events = [];
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers, { beforeOffers: subscribe(events) });
    // the first packet each way latches the legs (JavaScript); the routes follow
    await relayBothWays(pa, pb, 1, ' first');
    await routedBoth(s.port, a.id, b.id);
    const before = nativeRelay().counters().forwarded;
    await relayBothWays(pa, pb, 100);
    assert.ok(nativeRelay().counters().forwarded - before >= 200, 'the 200 packets went through the native relay');
    assert.equal(currentOffloadController()?.routeCount, 2);
    // what the peers saw: one SSRC per leg, consecutive sequence numbers across the switch to native
    for (const p of [pa, pb]) {
      assert.equal(p.received.length, 101);
      assert.equal(new Set(p.received.map((r) => r.ssrc)).size, 1);
      p.received.forEach((r, i) => i > 0 && assert.equal(r.seq, (p.received[i - 1]!.seq + 1) & 0xffff, 'consecutive sequence numbers'));
      assert.ok(p.received.every((r) => r.pt === 0));
    }
    const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number; bytesReceived?: number; ssrc?: string }>>(a, 'getStats', 'AUDIO');
    const inbound = Object.values(st).find((x) => x.type === 'inboundrtp')!;
    const outbound = Object.values(st).find((x) => x.type === 'outboundrtp')!;
    assert.equal(inbound.packetsReceived, 101);
    assert.equal(inbound.bytesReceived, 101 * 172);
    assert.equal(inbound.ssrc, String(pa.ssrc), 'the reception statistics know the peer SSRC');
    assert.equal(outbound.packetsSent, 101);
    assert.equal(outbound.ssrc, String(pa.received[0]!.ssrc), 'the SSRC on the wire');
    const stats = await fetchStats(s.port);
    assert.equal(elementStats(stats, a.id).packetsFromPeer, 101);
    assert.equal(elementStats(stats, a.id).packetsToPeer, 101);
    assert.equal(elementStats(stats, b.id).packetsFromPeer, 101);
    assert.equal(stats.boundPorts, 2);
    assertFlowing(events, [a.id, b.id]);
    assert.equal(await call(b, 'isMediaFlowingIn', 'AUDIO'), true);
    await pipeline.release();
    const after = await fetchStats(s.port);
    assert.deepEqual([after.pipelines, after.elements, after.boundPorts], [0, 0, 0]);
    assert.equal(currentOffloadController()?.routeCount, 0, 'no route left');
    assert.equal(nativeRelay().counters().watched, 0, 'no socket left watched');
    assert.equal(nativeRelay().counters().routes, 0);
  });

  test('N2 media-timeout still ends a silent call; packets flowing natively keep it alive past DEAD_MS (control)', { timeout: 60_000 }, async () => {
    const deadMs = 800;
    const { s, c } = await world.server({ deadMs, rtcpIntervalMs: 200 });
    const events: Events = [];
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers, { beforeOffers: subscribe(events) });
    await relayBothWays(pa, pb, 1, ' first');
    await routedBoth(s.port, a.id, b.id);
    // control: 2.5 x DEAD_MS of packets through the native routes, and no end
    await sendBothWaysFor(pa, pb, 2.5 * deadMs, 10 * deadMs, 'packets for 2.5 x DEAD_MS');
    assert.equal(events.filter((e) => e.type === 'MediaSessionTerminated').length, 0, 'no end while packets flow through the native relay');
    assert.ok(pb.received.length > 20 && pa.received.length > 20, 'packets did flow');
    // silence: media-timeout
    await mediaTimedOut(events, 10 * deadMs);
    await pipeline.release().catch(() => undefined);
    await portsFreed(s.port);
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('N3 hold stops the route into the held leg and resume brings it back', { timeout: 60_000 }, async () => {
    const { s, c } = await world.server({});
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers);
    await relayBothWays(pa, pb, 1, ' first');
    await routedBoth(s.port, a.id, b.id);
    // phone A puts the call on hold: it sends, but must receive nothing
    await call(a, 'processOffer', pa.sdp({ direction: 'sendonly' }));
    await pollUntil(async () => elementStats(await fetchStats(s.port), b.id).nativeRelay === 'js', { timeoutMs: 5000, what: 'the route into the held leg removed' });
    const heldAt = pa.received.length;
    // positive control: A's packets still reach B (native), and B's packets are handled (counted) but not sent to A
    await relay(pa, pb, 20, 'A->B during hold');
    const bFromPeerBefore = elementStats(await fetchStats(s.port), b.id).packetsFromPeer as number;
    for (let i = 0; i < 20; i++) pb.send(0, Buffer.alloc(160, 3));
    await pollUntil(async () => (elementStats(await fetchStats(s.port), b.id).packetsFromPeer as number) >= bFromPeerBefore + 20, { timeoutMs: 5000, what: "B's 20 packets counted during the hold" });
    assert.equal(pa.received.length, heldAt, 'nothing reaches the held phone');
    // resume
    await call(a, 'processOffer', pa.sdp({ direction: 'sendrecv' }));
    await relay(pb, pa, 10, 'B->A after resume');
    await routedBoth(s.port, a.id, b.id);
    await relay(pb, pa, 10, 'B->A routed again');
    await pipeline.release();
    await portsFreed(s.port);
    assert.equal(currentOffloadController()?.routeCount, 0);
  });

  test('N5 SDES SRTP phone <-> plain phone: both directions natively, the SRTP streams continue across hand-overs, nothing refused', { timeout: 60_000 }, async () => {
    const { s, c } = await world.server({});
    const { pipeline, a, b, phone, plain } = await srtpAndPlainCall(c, peers);
    try {
      const exchange = (n: number, what: string): Promise<void> => exchangeSrtp(phone, plain, n, what);
      await exchange(1, 'first packets (JavaScript)');
      await routedBoth(s.port, a.id, b.id);
      const before = nativeRelay().counters().forwarded;
      await exchange(50, 'native');
      assert.ok(nativeRelay().counters().forwarded - before >= 100, 'forwarded natively');
      // a re-offer with the same key takes the routes down (state handed back) and up again
      phone.useRemoteSdp(await call<string>(a, 'processOffer', phone.sdp()));
      await exchange(10, 'after the re-offer');
      await routedBoth(s.port, a.id, b.id);
      await exchange(20, 'native again');
      assert.ok(plain.received.every((r) => r.payload.equals(Buffer.alloc(160, 0x42))), 'decrypted before relaying');
      assert.ok(phone.rtp.every((r) => r.clear !== undefined), 'every packet to the SRTP phone authenticates (ROC and keystream continue)');
      assert.ok(phone.rtp.every((r) => !r.wire.subarray(12, 172).equals(Buffer.alloc(160, 0x24))), 'encrypted on the wire');
      const seqs = phone.rtp.map((r) => r.clear!.readUInt16BE(2));
      seqs.forEach((q, i) => i > 0 && assert.equal(q, (seqs[i - 1]! + 1) & 0xffff, 'consecutive sequence numbers to the SRTP phone'));
      const st = await fetchStats(s.port);
      assert.equal(elementStats(st, a.id).srtpRefusedPackets, 0, 'nothing refused');
      assert.equal(elementStats(st, a.id).packetsFromPeer, 81);
    } finally {
      phone.close();
      await pipeline.release();
    }
  });

  test('N6 RTCP reports count what went natively: SR packet and octet counts, the report block extended highest sequence and loss', { timeout: 60_000 }, async () => {
    const { s, c } = await world.server({ rtcpIntervalMs: 200 });
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers);
    await relayBothWays(pa, pb, 1, ' first');
    await routedBoth(s.port, a.id, b.id);
    await relay(pa, pb, 60, 'A->B'); // RtpTestPeer numbers from 1000: 1000..1060 sent so far
    // one packet lost on the way: the next one carries 1062
    const skip = Buffer.alloc(172, 7);
    skip[0] = 0x80;
    skip[1] = 0; // PCMU
    skip.writeUInt16BE(1062, 2);
    skip.writeUInt32BE(999_999, 4);
    skip.writeUInt32BE(pa.ssrc, 8);
    pa.sendRaw(skip);
    await pb.waitFor(() => pb.received.length >= 62, 5000, 'the 62nd packet at B');
    const forwardedBy = Date.now(); // the route has forwarded all 62 by now (the server shares this clock)
    // ferry's reports to phone B, as they are on the wire: every SR made after the route forwarded the
    // 62nd packet counts all 62 and their octets (one by JavaScript, 61 natively) — the route is synced
    // just before each report is made, not whenever something else happens to read the figures
    const srNtpMs = (r: Buffer): number => (r.readUInt32BE(8) - 2_208_988_800) * 1000 + (r.readUInt32BE(12) / 0x1_0000_0000) * 1000;
    const laterSrs = (): { packets: number; octets: number }[] =>
      pb.rtcpReceived
        .filter((r) => parseRtcpCompound(r).senderReport !== undefined && srNtpMs(r) > forwardedBy + 1)
        .map((r) => ({ packets: parseRtcpCompound(r).senderReport!.packetCount, octets: parseRtcpCompound(r).senderReport!.octetCount }));
    await pollUntil(() => laterSrs().length >= 2 || laterSrs().some((x) => x.packets !== 62), { timeoutMs: 5000, what: 'two SRs to B made after the 62nd packet' });
    assert.deepEqual(laterSrs().slice(0, 2), [
      { packets: 62, octets: 62 * 160 },
      { packets: 62, octets: 62 * 160 },
    ], 'each SR made while routed counts what the route carried');
    // ferry's report to phone A: a block about A's stream with its extended highest sequence and the one loss
    await pollUntil(
      () =>
        pa.rtcpReceived.some((r) => {
          const block = parseRtcpCompound(r).reportBlocks.find((x) => x.ssrc === pa.ssrc);
          return block !== undefined && block.extendedHighestSeq === 1062 && block.cumulativeLost === 1;
        }),
      { timeoutMs: 5000, what: "a report block to A: highest 1062, 1 lost" },
    );
    const st = await call<Record<string, { type: string; packetsLost?: number; packetsReceived?: number }>>(a, 'getStats', 'AUDIO');
    const inbound = Object.values(st).find((x) => x.type === 'inboundrtp')!;
    assert.equal(inbound.packetsReceived, 62);
    assert.equal(inbound.packetsLost, 1);
    await pipeline.release();
  });

  test('N4 FERRY_MEDIA_WORKERS=2: calls in relay workers go through their own native relay', { timeout: 90_000 }, async () => {
    const { s, c } = await world.server({ workers: 2 });
    const calls = [];
    for (let i = 0; i < 2; i++) calls.push(await bridgedRtpPair(c, peers));
    for (const k of calls) await relayBothWays(k.pa, k.pb, 1, ' first');
    for (const k of calls) await routedBoth(s.port, k.a.id, k.b.id);
    for (const k of calls) {
      await relayBothWays(k.pa, k.pb, 50);
      const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(k.b, 'getStats', 'AUDIO');
      assert.equal(Object.values(st).find((x) => x.type === 'inboundrtp')?.packetsReceived, 51);
      assert.equal(Object.values(st).find((x) => x.type === 'outboundrtp')?.packetsSent, 51);
    }
    for (const k of calls) await k.pipeline.release();
    await portsFreed(s.port, 'ports freed in the workers');
  });
});
