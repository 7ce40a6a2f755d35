import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ReceptionStatistics } from '../../src/media/rtcp/reception-statistics';

const T0 = 1_700_000_000_000;
const SSRC = 0x0a0b0c0d;

/** Feed [seq, timestamp, arrival ms after T0] triples; return the jitter after each packet. */
function feed(stats: ReceptionStatistics, packets: [number, number, number][]): number[] {
  return packets.map(([seq, ts, at]) => {
    stats.onPacket(SSRC, seq, ts, T0 + at);
    return stats.jitter;
  });
}

/**
 * RFC 3550 A.8 by hand, 8 kHz clock (8 timestamp units per ms), 20 ms packets (160 units):
 * D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in timestamp units, J_i = J_{i-1} + (|D| - J_{i-1}) / 16.
 */
describe('media RTCP: reception statistics (RFC 3550 A.1, A.3, A.8)', () => {
  test('jitter vector: on-time, late, early, on-time, very late packets', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    const j = feed(s, [
      [100, 1000, 0], //   first packet: no D yet, J = 0
      [101, 1160, 20], //  D = 20*8 - 160 = 0                    J = 0
      [102, 1320, 45], //  D = 25*8 - 160 = 40                   J = 0 + 40/16 = 2.5
      [103, 1480, 60], //  D = 15*8 - 160 = -40, |D| = 40        J = 2.5 + 37.5/16 = 4.84375
      [104, 1640, 80], //  D = 0                                 J = 4.84375 - 4.84375/16 = 4.541015625
      [105, 1800, 130], // D = 50*8 - 160 = 240                  J = 4.541015625 + 235.458984375/16 = 19.2572021484375
    ]);
    assert.deepEqual(j, [0, 0, 2.5, 4.84375, 4.541015625, 19.2572021484375]);
    const block = s.block(T0 + 200)!;
    assert.equal(block.jitter, 19, 'the report block carries floor(J) in timestamp units');
    assert.deepEqual([block.ssrc, block.extendedHighestSeq, block.cumulativeLost, block.fractionLost], [SSRC, 105, 0, 0]);
  });

  test('jitter vector: a reordered packet counts in arrival order', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    const j = feed(s, [
      [10, 0, 0],
      [12, 320, 40], // D = 40*8 - 320 = 0                          J = 0
      [11, 160, 45], // D = 5*8 - (160 - 320) = 200                  J = 200/16 = 12.5
      [13, 480, 60], // D = 15*8 - (480 - 160) = -200, |D| = 200      J = 12.5 + 187.5/16 = 24.21875
    ]);
    assert.deepEqual(j, [0, 0, 12.5, 24.21875]);
    const block = s.block(T0 + 100)!;
    assert.deepEqual([block.extendedHighestSeq, block.cumulativeLost, block.jitter], [13, 0, 24]);
  });

  test('jitter: a constant network delay and the 32-bit timestamp wrap give 0', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    const start = 0xffffffff - 3 * 160 + 1;
    for (let i = 0; i < 10; i++) s.onPacket(SSRC, (65534 + i) % 65536, (start + i * 160) >>> 0, T0 + 73 + i * 20);
    assert.equal(s.jitter, 0);
    assert.equal(s.block(T0 + 500)!.extendedHighestSeq, 65536 + 7, 'sequence wrapped once: cycles counted');
  });

  test('loss: a gap across the sequence wrap, then a clean interval, then a duplicate (A.3 fraction and cumulative)', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    const seqs = [65530, 65531, 65532, 65534, 65535, 0, 1, 3, 4, 5]; // 65533 and 2 lost
    seqs.forEach((q, i) => s.onPacket(SSRC, q, i * 160, T0 + i * 20));
    let b = s.block(T0 + 1000)!;
    // expected = 65536 + 5 - 65530 + 1 = 12, received 10: lost 2, fraction floor(2 * 256 / 12) = 42
    assert.deepEqual([b.extendedHighestSeq, b.cumulativeLost, b.fractionLost], [65541, 2, 42]);
    assert.equal(s.fractionLost, 42 / 256);
    for (let q = 6; q <= 15; q++) s.onPacket(SSRC, q, q * 160, T0 + 1000 + q * 20);
    b = s.block(T0 + 2000)!;
    assert.deepEqual([b.extendedHighestSeq, b.cumulativeLost, b.fractionLost], [65536 + 15, 2, 0]);
    s.onPacket(SSRC, 15, 15 * 160, T0 + 2100); // duplicate
    b = s.block(T0 + 3000)!;
    assert.deepEqual([b.cumulativeLost, b.fractionLost], [1, 0], 'a duplicate lowers the cumulative count; the fraction never goes negative');
  });

  test('a jump of more than MAX_DROPOUT is ignored once, and two sequential packets there restart the counts', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    for (let q = 0; q < 5; q++) s.onPacket(SSRC, q, q * 160, T0 + q * 20);
    s.onPacket(SSRC, 20000, 0, T0 + 120); // stray: not counted
    assert.equal(s.packetsReceived, 5);
    s.onPacket(SSRC, 5, 800, T0 + 140);
    assert.equal(s.packetsReceived, 6, 'the stream goes on');
    s.onPacket(SSRC, 30000, 0, T0 + 160);
    s.onPacket(SSRC, 30001, 160, T0 + 180); // sequential after the jump: the sender restarted
    const b = s.block(T0 + 200)!;
    assert.deepEqual([s.packetsReceived, b.extendedHighestSeq, b.cumulativeLost], [1, 30001, 0]);
  });

  test('a new SSRC starts afresh; LSR/DLSR echo the source\'s last SR', { timeout: 5000 }, () => {
    const s = new ReceptionStatistics(8000);
    feed(s, [[1, 0, 0], [2, 160, 25]]);
    assert.ok(s.jitter > 0);
    s.onSenderReport(SSRC, 0x12345678, T0 + 30);
    assert.deepEqual([s.block(T0 + 1530)!.lsr, s.block(T0 + 1530)!.dlsr], [0x12345678, 98304], 'DLSR = 1.5 s in 1/65536 s');
    s.onSenderReport(0x999, 0x1111, T0 + 40);
    assert.equal(s.block(T0 + 50)!.lsr, 0x12345678, 'an SR from another source is not ours to echo');
    s.onPacket(0x777, 500, 9, T0 + 60);
    const b = s.block(T0 + 70)!;
    assert.deepEqual([b.ssrc, b.extendedHighestSeq, b.cumulativeLost, b.jitter, b.lsr, b.dlsr], [0x777, 500, 0, 0, 0, 0]);
    assert.equal(s.sourceSsrc, 0x777);
  });

  test('nothing received: no block', { timeout: 5000 }, () => {
    assert.equal(new ReceptionStatistics(8000).block(T0), undefined);
  });
});
