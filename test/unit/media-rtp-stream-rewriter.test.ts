import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';
import { codecTableFrom } from '../../src/media/relay/codec-table';

function packet(ssrc: number, seq: number, ts: number, pt: number, marker = false): Buffer {
  const b = Buffer.alloc(12 + 4);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  b.write('data', 12);
  return b;
}

const read = (b: Buffer) => ({ pt: b[1]! & 0x7f, marker: (b[1]! & 0x80) !== 0, seq: b.readUInt16BE(2), ts: b.readUInt32BE(4), ssrc: b.readUInt32BE(8), payload: b.subarray(12).toString() });

describe('media: RTP stream rewriter (one outgoing SSRC, continuity across sources)', () => {
  test('payload type rewritten, SSRC replaced, payload untouched, marker kept', { timeout: 30_000 }, () => {
    const w = new RtpStreamRewriter(0xdeadbeef);
    const b = packet(1, 10, 1000, 101, true);
    w.rewrite(b, 96, 8000, 0);
    assert.deepEqual(read(b), { pt: 96, marker: true, seq: 10, ts: 1000, ssrc: 0xdeadbeef, payload: 'data' });
  });

  test('a source switch continues seq by one and ts by the elapsed time, with the marker set; wrap-around is clean', { timeout: 30_000 }, () => {
    const w = new RtpStreamRewriter(7);
    let now = 1000;
    const outs: ReturnType<typeof read>[] = [];
    for (let i = 0; i < 3; i++) {
      const b = packet(111, 65534 + i, 0xfffffe00 + i * 160, 0);
      w.rewrite(b, 0, 8000, (now += 20));
      outs.push(read(b));
    }
    // a new source with unrelated numbering, 100 ms later
    now += 100;
    for (let i = 0; i < 3; i++) {
      const b = packet(222, 5000 + i, 123456 + i * 160, 0);
      w.rewrite(b, 0, 8000, now);
      outs.push(read(b));
      now += 20;
    }
    assert.deepEqual(outs.map((o) => o.seq), [65534, 65535, 0, 1, 2, 3]);
    assert.ok(outs.every((o) => o.ssrc === 7));
    assert.equal(outs[3]!.marker, true);
    assert.equal(outs[4]!.marker, false);
    assert.equal((outs[3]!.ts - outs[2]!.ts) >>> 0, 800, '100 ms at 8 kHz');
    assert.equal((outs[4]!.ts - outs[3]!.ts) >>> 0, 160);
  });

  test('codec table maps payload types by codec name', { timeout: 30_000 }, () => {
    const t = codecTableFrom([
      [0, 'pcmu/8000'],
      [101, 'telephone-event/8000'],
    ]);
    assert.equal(t.receive[101], 'telephone-event/8000');
    assert.equal(t.receive[8], undefined);
    assert.equal(t.send.get('pcmu/8000'), 0);
    assert.equal(t.clockRates.get('telephone-event/8000'), 8000);
  });
});
