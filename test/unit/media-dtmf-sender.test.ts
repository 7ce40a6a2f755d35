import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { KurentoError } from '../../src/media/errors/kurento-error';
import { DTMF_QUEUE_MAX, DtmfSender, dtmfEventCode, parseDtmfParams, type DtmfOutput } from '../../src/media/relay/dtmf-sender';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';

/** ferry media's sendDtmf packet schedule on a fake clock, through a real RtpStreamRewriter. */

interface Sent {
  at: number;
  seq: number;
  ts: number;
  marker: boolean;
  pt: number;
  ssrc: number;
  event: number;
  end: boolean;
  duration: number;
}

function harness(pt: () => number | undefined = () => 101) {
  const clock = new FakeClock();
  const rewriter = new RtpStreamRewriter(0x11223344);
  const sent: Sent[] = [];
  const suppress: [number, boolean][] = [];
  const aborted: string[] = [];
  const out: DtmfOutput = {
    payloadType: pt,
    currentTimestamp: (now) => rewriter.currentTimestamp(8000, now),
    send: (packet, p, streamTs, now) => {
      rewriter.stampGenerated(packet, p, streamTs, now);
      sent.push({
        at: now,
        seq: packet.readUInt16BE(2),
        ts: packet.readUInt32BE(4),
        marker: (packet[1]! & 0x80) !== 0,
        pt: packet[1]! & 0x7f,
        ssrc: packet.readUInt32BE(8),
        event: packet[12]!,
        end: (packet[13]! & 0x80) !== 0,
        duration: packet.readUInt16BE(14),
      });
    },
    suppressRelay: (on) => suppress.push([clock.now(), on]),
    aborted: (reason) => aborted.push(reason),
  };
  return { clock, rewriter, sent, suppress, aborted, sender: new DtmfSender(clock, out) };
}

describe('media DTMF sender (RFC 4733 schedule)', { timeout: 10_000 }, () => {
  test('event codes', () => {
    assert.deepEqual([...'0123456789*#ABCDabcd'].map(dtmfEventCode), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15]);
    assert.throws(() => dtmfEventCode('E'));
  });

  test('one tone of 100 ms: packets at +20..+100 ms, durations growing, marker first, three end packets, one timestamp, consecutive seq', () => {
    const h = harness();
    const start = h.clock.now();
    assert.equal(h.sender.enqueue({ tones: '7', durationMs: 100, gapMs: 50 }), 100);
    assert.equal(h.sent.length, 0, 'the first packet reports 20 ms of tone, so it goes out at +20');
    h.clock.advance(1000);
    assert.deepEqual(h.sent.map((s) => s.at - start), [20, 40, 60, 80, 100, 100, 100]);
    assert.deepEqual(h.sent.map((s) => s.duration), [160, 320, 480, 640, 800, 800, 800]);
    assert.deepEqual(h.sent.map((s) => s.end), [false, false, false, false, true, true, true]);
    assert.deepEqual(h.sent.map((s) => s.marker), [true, false, false, false, false, false, false]);
    assert.ok(h.sent.every((s) => s.pt === 101 && s.ssrc === 0x11223344 && s.event === 7));
    assert.equal(new Set(h.sent.map((s) => s.ts)).size, 1);
    h.sent.forEach((s, i) => i > 0 && assert.equal(s.seq, (h.sent[i - 1]!.seq + 1) & 0xffff));
    assert.deepEqual(h.suppress, [[start, true], [start + 100, false]], 'relay suppressed for exactly the event');
    assert.equal(h.sender.pending, 0);
    assert.equal(h.sender.eventsSent, 1);
  });

  test('a duration that is not a multiple of 20 ms ends at the exact time; tones follow after the gap with later timestamps', () => {
    const h = harness();
    const start = h.clock.now();
    h.sender.enqueue({ tones: '1#', durationMs: 50, gapMs: 30 });
    h.clock.advance(1000);
    assert.deepEqual(h.sent.map((s) => s.at - start), [20, 40, 50, 50, 50, 100, 120, 130, 130, 130]);
    assert.deepEqual(h.sent.map((s) => s.duration), [160, 320, 400, 400, 400, 160, 320, 400, 400, 400]);
    assert.deepEqual(h.sent.map((s) => s.event), [1, 1, 1, 1, 1, 11, 11, 11, 11, 11]);
    assert.deepEqual(h.sent.map((s) => s.marker), [true, false, false, false, false, true, false, false, false, false]);
    // second event starts 80 ms after the first: 640 samples later
    assert.equal((h.sent[5]!.ts - h.sent[0]!.ts) >>> 0, 640);
    h.sent.forEach((s, i) => i > 0 && assert.equal(s.seq, (h.sent[i - 1]!.seq + 1) & 0xffff));
  });

  test('relayed packets after an event continue the sequence, marked, timestamped after the event', () => {
    const h = harness();
    // relayed audio first (its own SSRC, seq, ts)
    const audio = (seq: number, ts: number): Buffer => {
      const b = Buffer.alloc(172);
      b[0] = 0x80;
      b.writeUInt16BE(seq, 2);
      b.writeUInt32BE(ts, 4);
      b.writeUInt32BE(0xaaaa, 8);
      return b;
    };
    const a1 = audio(500, 9000);
    h.rewriter.rewrite(a1, 0, 8000, h.clock.now());
    const startTs = a1.readUInt32BE(4);
    h.clock.advance(20);
    h.sender.enqueue({ tones: '3', durationMs: 40, gapMs: 0 });
    h.clock.advance(40);
    assert.equal(h.sent.length, 4);
    assert.equal(h.sent[0]!.seq, (a1.readUInt16BE(2) + 1) & 0xffff, 'the event continues the relayed stream');
    assert.equal((h.sent[0]!.ts - startTs) >>> 0, 160, 'its timestamp: where the stream is when it starts');
    h.clock.advance(20);
    const a2 = audio(501, 9160);
    h.rewriter.rewrite(a2, 0, 8000, h.clock.now());
    assert.equal(a2.readUInt16BE(2), (h.sent[3]!.seq + 1) & 0xffff);
    assert.equal(a2[1]! & 0x80, 0x80, 'marked');
    assert.equal((a2.readUInt32BE(4) - h.sent[0]!.ts) >>> 0, 320 + 160, 'after the event (320) + 20 ms');
  });

  test('renegotiated without telephone-event: the rest is dropped and told; stop() ends everything; the queue is capped', () => {
    let pt: number | undefined = 101;
    const h = harness(() => pt);
    h.sender.enqueue({ tones: '12', durationMs: 100, gapMs: 50 });
    h.clock.advance(40);
    assert.equal(h.sent.length, 2);
    pt = undefined;
    h.clock.advance(1000);
    assert.equal(h.sent.length, 2);
    assert.equal(h.aborted.length, 1);
    assert.equal(h.suppress.at(-1)![1], false, 'relaying resumed');
    assert.equal(h.sender.pending, 0);

    const g = harness();
    g.sender.enqueue({ tones: '9'.repeat(64), durationMs: 2000, gapMs: 2000 });
    assert.throws(() => g.sender.enqueue({ tones: '9'.repeat(DTMF_QUEUE_MAX - 63), durationMs: 100, gapMs: 50 }), (e: KurentoError) => e.code === 40009);
    g.clock.advance(60);
    g.sender.stop();
    const n = g.sent.length;
    g.clock.advance(60_000);
    assert.equal(g.sent.length, n, 'nothing after stop');
    assert.equal(g.suppress.at(-1)![1], false);
    assert.throws(() => g.sender.enqueue({ tones: '1', durationMs: 100, gapMs: 50 }), (e: KurentoError) => e.code === 40108);
  });

  test('parameters: defaults, bounds, seeded fuzz never throws anything but a KurentoError 40107', () => {
    assert.deepEqual(parseDtmfParams({ tones: '1' }), { tones: '1', durationMs: 100, gapMs: 50 });
    assert.deepEqual(parseDtmfParams({ tones: '*#', durationMs: 40, gapMs: 0 }), { tones: '*#', durationMs: 40, gapMs: 0 });
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const values: unknown[] = ['', '1', 'x', '1'.repeat(65), '1'.repeat(64), 0, -1, 39, 40, 2000, 2001, 1.5, NaN, null, undefined, {}, [], true, '100'];
    for (let i = 0; i < 3000; i++) {
      const params: Record<string, unknown> = {};
      for (const k of ['tones', 'durationMs', 'gapMs']) if (rnd() < 0.8) params[k] = values[Math.floor(rnd() * values.length)];
      try {
        const r = parseDtmfParams(params);
        assert.match(r.tones, /^[0-9*#A-Da-d]{1,64}$/);
        assert.ok(r.durationMs >= 40 && r.durationMs <= 2000 && r.gapMs >= 0 && r.gapMs <= 2000);
      } catch (e) {
        assert.ok(e instanceof KurentoError && e.code === 40107, String(e));
      }
    }
  });
});
