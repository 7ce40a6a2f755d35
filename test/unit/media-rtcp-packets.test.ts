import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as RtpJsPackets from 'rtp.js/lib/packets/public';
import type { ReceiverReportPacket, SdesPacket, SenderReportPacket, ByePacket as ByePacketType } from 'rtp.js/lib/packets/public';

// Runtime path is the package export 'rtp.js/packets'; the types come from its file (tsconfig uses node resolution).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ByePacket, CompoundPacket, ReceiverReportPacket: RR } = require('rtp.js/packets') as typeof RtpJsPackets;

const RtcpPacketType = { SR: 200, RR: 201, SDES: 202, BYE: 203 } as const;
import { buildByeCompound, buildReport, looksLikeRtcp, parseRtcpCompound } from '../../src/media/rtp/rtcp-packets';
import { rng } from '../helpers/seeded-random';

const view = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);

/** ferry's hand-rolled RTCP checked against rtp.js (an independent implementation), plus fuzz. */
describe('media: RTCP packets', () => {
  test('SR + report block + SDES parses in rtp.js with the same fields', () => {
    const b = buildReport(0x11223344, 'ferry-x', { ntpMs: 1_700_000_000_500, rtpTimestamp: 123456, packetCount: 50, octetCount: 8000 }, [
      { ssrc: 0x55667788, fractionLost: 12, cumulativeLost: 3, extendedHighestSeq: 70000, jitter: 0 },
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
    const sdes = packets[1] as SdesPacket;
    assert.equal(sdes.getPacketType(), RtcpPacketType.SDES);
    assert.equal(sdes.getChunks()[0]!.getItems()[0]!.text, 'ferry-x');
    assert.deepEqual(parseRtcpCompound(b), { valid: true, types: [200, 202], bye: false, senderSsrc: 0x11223344 });
  });

  test('RR + SDES + BYE with reason parses in rtp.js; ferry sees the BYE', () => {
    const b = buildByeCompound([0xaabbccdd, 0x01020304], 'ferry-y', 'ferry: call ended');
    const packets = new CompoundPacket(view(b)).getPackets();
    assert.deepEqual(packets.map((p) => p.getPacketType()), [RtcpPacketType.RR, RtcpPacketType.SDES, RtcpPacketType.BYE]);
    assert.equal((packets[0] as ReceiverReportPacket).getSsrc(), 0xaabbccdd);
    const bye = packets[2] as ByePacketType;
    assert.deepEqual(bye.getSsrcs(), [0xaabbccdd, 0x01020304]);
    assert.equal(bye.getReason(), 'ferry: call ended');
    const s = parseRtcpCompound(b);
    assert.equal(s.bye, true);
    assert.deepEqual(s.types, [201, 202, 203]);
  });

  test('a BYE built by rtp.js (what another stack sends) is seen as a BYE', () => {
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

  test('invalid input is reported as invalid, never thrown (seeded fuzz, 50000 mutations)', () => {
    const r = rng(3550);
    const samples = [buildByeCompound([1], 'c', 'r'), buildReport(7, 'cname', { ntpMs: 1, rtpTimestamp: 2, packetCount: 3, octetCount: 4 }, [])];
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
      } else assert.equal(s.bye, false);
    }
    assert.ok(valid > 0);
    assert.equal(parseRtcpCompound(Buffer.alloc(0)).valid, false);
  });
});
