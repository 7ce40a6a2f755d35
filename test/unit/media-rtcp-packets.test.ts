import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as RtpJsPackets from 'rtp.js/lib/packets/public';
import type { ReceiverReportPacket, SdesPacket, SenderReportPacket, ByePacket as ByePacketType } from 'rtp.js/lib/packets/public';

// Runtime path is the package export 'rtp.js/packets'; the types come from its file (tsconfig uses node resolution).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ByePacket, CompoundPacket, ReceiverReportPacket: RR, ReceptionReport, SenderReportPacket: SR } = require('rtp.js/packets') as typeof RtpJsPackets;

const RtcpPacketType = { SR: 200, RR: 201, SDES: 202, BYE: 203 } as const;
import { buildBye, buildReport, looksLikeRtcp, ntpMiddle, parseRtcpCompound, toNtp } from '../../src/media/rtcp/rtcp-packets';
import { rng } from '../helpers/seeded-random';

const view = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);

/** ferry's hand-rolled RTCP checked against rtp.js (an independent implementation), plus fuzz. */
describe('media: RTCP packets', () => {
  test('SR + report block + SDES parses in rtp.js with the same fields', { timeout: 10_000 }, () => {
    const b = buildReport(0x11223344, 'ferry-x', { ntpMs: 1_700_000_000_500, rtpTimestamp: 123456, packetCount: 50, octetCount: 8000 }, [
      { ssrc: 0x55667788, fractionLost: 12, cumulativeLost: 3, extendedHighestSeq: 70000, jitter: 77, lsr: 0x12345678, dlsr: 65536 },
    ]);
    assert.ok(looksLikeRtcp(b));
    const compound = new CompoundPacket(view(b));
    const packets = compound.getPackets();
    assert.equal(packets.length, 2);
    const sr = packets[0] as SenderReportPacket;
    assert.equal(sr.getPacketType(), RtcpPacketType.SR);
    assert.equal(sr.getSsrc(), 0x11223344);
    assert.equal(sr.getRtpTimestamp(), 123456);
    assert.equal(sr.getPacketCount(), 50);
    assert.equal(sr.getOctetCount(), 8000);
    const rb = sr.getReports()[0]!;
    assert.equal(rb.getSsrc(), 0x55667788);
    assert.equal(rb.getFractionLost(), 12);
    assert.equal(rb.getTotalLost(), 3);
    assert.equal(rb.getHighestSeqNumber(), 70000);
    assert.equal(rb.getJitter(), 77);
    assert.equal(rb.getLastSRTimestamp(), 0x12345678);
    assert.equal(rb.getDelaySinceLastSR(), 65536);
    const ntp = toNtp(1_700_000_000_500);
    assert.equal(sr.getNtpSeconds(), ntp.seconds);
    assert.equal(sr.getNtpFraction(), ntp.fraction);
    assert.equal(ntp.fraction, 0x80000000, 'half a second');
    const sdes = packets[1] as SdesPacket;
    assert.equal(sdes.getPacketType(), RtcpPacketType.SDES);
    assert.equal(sdes.getChunks()[0]!.getItems()[0]!.text, 'ferry-x');
    const parsed = parseRtcpCompound(b);
    assert.deepEqual([parsed.valid, parsed.types, parsed.bye, parsed.senderSsrc], [true, [200, 202], false, 0x11223344]);
    assert.deepEqual(parsed.senderReport, { ssrc: 0x11223344, ntpMiddle: ntpMiddle(1_700_000_000_500), rtpTimestamp: 123456, packetCount: 50, octetCount: 8000 });
    assert.deepEqual(parsed.reportBlocks, [
      { reporterSsrc: 0x11223344, ssrc: 0x55667788, fractionLost: 12, cumulativeLost: 3, extendedHighestSeq: 70000, jitter: 77, lsr: 0x12345678, dlsr: 65536 },
    ]);
  });

  test('RR + SDES + BYE with reason parses in rtp.js; ferry sees the BYE', { timeout: 10_000 }, () => {
    const b = Buffer.concat([buildReport(0xaabbccdd, 'ferry-y', undefined, []), buildBye([0xaabbccdd, 0x01020304], 'ferry: call ended')]);
    const packets = new CompoundPacket(view(b)).getPackets();
    assert.deepEqual(packets.map((p) => p.getPacketType()), [RtcpPacketType.RR, RtcpPacketType.SDES, RtcpPacketType.BYE]);
    assert.equal((packets[0] as ReceiverReportPacket).getSsrc(), 0xaabbccdd);
    const bye = packets[2] as ByePacketType;
    assert.deepEqual(bye.getSsrcs(), [0xaabbccdd, 0x01020304]);
    assert.equal(bye.getReason(), 'ferry: call ended');
    const s = parseRtcpCompound(b);
    assert.equal(s.bye, true);
    assert.deepEqual(s.types, [201, 202, 203]);
    assert.deepEqual(s.byeSsrcs, [0xaabbccdd, 0x01020304]);
  });

  test('a BYE built by rtp.js (what another stack sends) is seen as a BYE', { timeout: 10_000 }, () => {
    const bye = new ByePacket();
    bye.setSsrcs([42]);
    bye.setReason('hangup');
    const rr = new RR();
    rr.setSsrc(42);
    const compound = new CompoundPacket();
    compound.addPacket(rr);
    compound.addPacket(bye);
    const buf = Buffer.from(compound.getView().buffer.slice(compound.getView().byteOffset, compound.getView().byteOffset + compound.getByteLength()));
    assert.equal(parseRtcpCompound(buf).bye, true);
  });

  test('an SR with a report block built by rtp.js (another stack) parses into the same fields', { timeout: 10_000 }, () => {
    const sr = new SR();
    sr.setSsrc(0xdeadbeef);
    sr.setNtpSeconds(3_900_000_000);
    sr.setNtpFraction(0x40000000);
    sr.setRtpTimestamp(99);
    sr.setPacketCount(5);
    sr.setOctetCount(800);
    const rep = new ReceptionReport();
    rep.setSsrc(0x01010101);
    rep.setFractionLost(64);
    rep.setTotalLost(7); // positive: rtp.js writes negatives as sign-magnitude, RFC 3550 means two's complement
    rep.setHighestSeqNumber(65540);
    rep.setJitter(1234);
    rep.setLastSRTimestamp(0xabcd1234);
    rep.setDelaySinceLastSR(3 * 65536);
    sr.addReport(rep);
    const compound = new CompoundPacket();
    compound.addPacket(sr);
    const v = compound.getView();
    const s = parseRtcpCompound(Buffer.from(v.buffer, v.byteOffset, compound.getByteLength()));
    assert.equal(s.valid, true);
    assert.deepEqual(s.senderReport, { ssrc: 0xdeadbeef, ntpMiddle: ((3_900_000_000 & 0xffff) * 65536 + 0x4000) >>> 0, rtpTimestamp: 99, packetCount: 5, octetCount: 800 });
    assert.deepEqual(s.reportBlocks, [
      { reporterSsrc: 0xdeadbeef, ssrc: 0x01010101, fractionLost: 64, cumulativeLost: 7, extendedHighestSeq: 65540, jitter: 1234, lsr: 0xabcd1234, dlsr: 3 * 65536 },
    ]);
  });

  test('a report block count that does not fit its packet, or a BYE count past its length, is invalid', { timeout: 10_000 }, () => {
    const rr = buildReport(5, 'c', undefined, [{ ssrc: 6, fractionLost: 0, cumulativeLost: 0, extendedHighestSeq: 1, jitter: 0 }]);
    const lying = Buffer.from(rr);
    lying[0] = 0x80 | 2; // says two blocks, holds one
    assert.equal(parseRtcpCompound(lying).valid, false);
    const bye = buildBye([1]);
    bye[0] = 0x80 | 3;
    assert.equal(parseRtcpCompound(Buffer.concat([buildReport(1, 'c', undefined, []), bye])).valid, false);
  });

  test('caps: a compound of more than 32 packets is refused; 31 report blocks at most are written', { timeout: 10_000 }, () => {
    const one = buildBye([1]);
    assert.equal(parseRtcpCompound(Buffer.concat(Array.from({ length: 32 }, () => one))).valid, true);
    assert.equal(parseRtcpCompound(Buffer.concat(Array.from({ length: 33 }, () => one))).valid, false);
    const blocks = Array.from({ length: 40 }, (_, i) => ({ ssrc: i, fractionLost: 0, cumulativeLost: 0, extendedHighestSeq: i, jitter: 0 }));
    const s = parseRtcpCompound(buildReport(9, 'c', undefined, blocks));
    assert.equal(s.reportBlocks.length, 31);
    assert.equal(parseRtcpCompound(Buffer.alloc(70000, 0x80)).valid, false, 'larger than a UDP payload');
  });

  test('out-of-range block fields are clamped on the wire (lost to 24-bit signed, fraction to 0..255)', { timeout: 10_000 }, () => {
    const b = buildReport(1, 'c', undefined, [{ ssrc: 2, fractionLost: 999, cumulativeLost: -0x1000000, extendedHighestSeq: 3, jitter: 2 ** 40 }]);
    const blk = parseRtcpCompound(b).reportBlocks[0]!;
    assert.deepEqual([blk.fractionLost, blk.cumulativeLost, blk.jitter], [255, -0x800000, 0xffffffff]);
  });

  test('invalid input is reported as invalid, never thrown (seeded fuzz, 50000 mutations)', { timeout: 10_000 }, () => {
    const r = rng(3550);
    const samples = [Buffer.concat([buildReport(1, 'c', undefined, []), buildBye([1], 'r')]), buildReport(7, 'cname', { ntpMs: 1, rtpTimestamp: 2, packetCount: 3, octetCount: 4 }, [])];
    let valid = 0;
    for (let i = 0; i < 50000; i++) {
      const b = Buffer.from(samples[i % samples.length]!);
      const n = 1 + Math.floor(r() * 3);
      for (let k = 0; k < n; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      const cut = r() < 0.3 ? b.subarray(0, Math.floor(r() * b.length)) : b;
      const s = parseRtcpCompound(cut);
      if (s.valid) {
        valid++;
        assert.ok(s.types.length > 0 && s.types.every((t) => t >= 192 && t <= 223));
      } else assert.deepEqual([s.bye, s.senderSsrc, s.reportBlocks.length, s.byeSsrcs.length], [false, undefined, 0, 0]);
    }
    assert.ok(valid > 0);
    assert.equal(parseRtcpCompound(Buffer.alloc(0)).valid, false);
  });
});
