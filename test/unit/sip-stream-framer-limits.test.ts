import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipStreamFramer } from '../../src/sip/message/sip-stream-framer';

/**
 * The TCP framer's memory bounds: what a peer can make ferry sip hold for one connection is one
 * message of at most the size limit (plus one read chunk), never a 1 MB body or endless headers, and
 * nothing once a message is complete.
 */

const LIMIT = 65_536;

function head(contentLength: number, callId = 'c1'): string {
  return ['INVITE sip:service@127.0.0.1 SIP/2.0', 'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1', 'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1', 'To: <sip:service@127.0.0.1>', `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Content-Length: ${contentLength}`, '', ''].join('\r\n');
}

function message(bodyBytes: number, callId = 'c1'): Buffer {
  return Buffer.concat([Buffer.from(head(bodyBytes, callId)), Buffer.alloc(bodyBytes, 0x61)]);
}

describe('SIP stream framer: size limit and bounded memory', () => {
  test('framer: a body announced above the limit is refused when the headers are complete, before any of it is kept', { timeout: 30_000 }, () => {
    const f = new SipStreamFramer(LIMIT);
    const h = Buffer.from(head(1_048_576));
    const out = f.push(Buffer.concat([h, Buffer.alloc(10_000, 0x61)]));
    assert.match(out.error ?? '', /larger than 65536 bytes/);
    assert.equal(out.tooLarge, true);
    assert.deepEqual(out.refusedHead, h, 'the refused head is handed back for the 413');
    assert.equal(f.bufferedBytes, 0);
    // the rest of the 1 MB body is never buffered
    for (let i = 0; i < 100; i++) {
      const more = f.push(Buffer.alloc(10_000, 0x61));
      assert.ok(more.error);
      assert.equal(f.bufferedBytes, 0);
    }
  });

  test('framer: headers that never end are refused once past the limit; at most the limit plus one chunk is ever held', { timeout: 30_000 }, () => {
    const f = new SipStreamFramer(LIMIT);
    const chunk = 16_384;
    let maxHeld = 0;
    let pushed = 0;
    let error: string | undefined;
    const stream = Buffer.concat([Buffer.from('INVITE sip:x@127.0.0.1 SIP/2.0\r\nX-Filler: '), Buffer.alloc(1_048_576, 0x78)]);
    for (let i = 0; i < stream.length && !error; i += chunk) {
      const out = f.push(stream.subarray(i, i + chunk));
      pushed += chunk;
      maxHeld = Math.max(maxHeld, f.bufferedBytes);
      error = out.error;
      if (!error) assert.equal(f.pending, 'headers');
    }
    assert.match(error ?? '', /headers larger than 65536 bytes/);
    assert.ok(pushed <= LIMIT + chunk, `refused after ${pushed} bytes`);
    assert.ok(maxHeld <= LIMIT + chunk, `held at most ${maxHeld} bytes`);
    assert.equal(f.bufferedBytes, 0, 'the buffer is dropped at the refusal');
  });

  test('framer: a message of exactly the limit is framed, one byte more is refused', { timeout: 30_000 }, () => {
    const fixed = Buffer.byteLength(head(10_000)); // the same header length for any five-digit body size
    const atLimit = message(LIMIT - fixed);
    assert.equal(atLimit.length, LIMIT);
    const ok = new SipStreamFramer(LIMIT).push(atLimit);
    assert.equal(ok.error, undefined);
    assert.equal(ok.messages.length, 1);
    assert.deepEqual(ok.messages[0], atLimit);
    const over = new SipStreamFramer(LIMIT).push(message(LIMIT - fixed + 1));
    assert.equal(over.tooLarge, true);
    assert.equal(over.messages.length, 0);
  });

  test('framer: nothing is held between messages; a pipelined partial message keeps only its own bytes; pending follows headers then body', { timeout: 30_000 }, () => {
    const f = new SipStreamFramer(LIMIT);
    const a = message(1000, 'a');
    const b = message(2000, 'b');
    const bHead = Buffer.byteLength(head(2000, 'b'));
    let out = f.push(Buffer.concat([a, b.subarray(0, 100)]));
    assert.equal(out.messages.length, 1);
    assert.equal(f.pending, 'headers');
    out = f.push(b.subarray(100, bHead + 10));
    assert.equal(out.messages.length, 0);
    assert.equal(f.pending, 'body');
    assert.ok(f.bufferedBytes <= 2 * b.length, `holds ${f.bufferedBytes} bytes for a ${b.length}-byte message`);
    out = f.push(b.subarray(bHead + 10));
    assert.equal(out.messages.length, 1);
    assert.deepEqual(out.messages[0], b);
    assert.equal(f.pending, 'none');
    assert.equal(f.bufferedBytes, 0, 'no buffer kept once the message is complete');
  });

  test('framer: one-byte pushes are framed in linear time: 4 x the bytes costs about 4 x the time, not 16 x (no re-copy or re-scan of what is held)', { timeout: 30_000 }, () => {
    const build = (filler: number, body: number) => Buffer.concat([Buffer.from(['INVITE sip:x@127.0.0.1 SIP/2.0',
      'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1', `X-Filler: ${'y'.repeat(filler)}`, `Content-Length: ${body}`, '', ''].join('\r\n')),
    Buffer.alloc(body, 0x61)]);
    /** best of five runs, in ms, of framing `m` pushed one byte at a time */
    const timeOneBytePushes = (m: Buffer): number => {
      let best = Infinity;
      for (let run = 0; run < 5; run++) {
        const f = new SipStreamFramer(LIMIT);
        let framed = 0;
        const started = process.hrtime.bigint();
        for (let i = 0; i < m.length; i++) framed += f.push(m.subarray(i, i + 1)).messages.length;
        best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
        assert.equal(framed, 1);
      }
      return best;
    };
    const small = build(10_000, 5_000);
    const large = build(40_000, 20_000); // about 60 kB, under the limit
    timeOneBytePushes(small); // warm-up
    const smallMs = timeOneBytePushes(small);
    const largeMs = timeOneBytePushes(large);
    const ratio = largeMs / Math.max(smallMs, 0.5);
    console.log(`# one-byte pushes: ${small.length} bytes in ${smallMs.toFixed(1)} ms, ${large.length} bytes in ${largeMs.toFixed(1)} ms (x${ratio.toFixed(1)})`);
    assert.ok(ratio < 8, `4 x the bytes took ${ratio.toFixed(1)} x the time`);
  });
});
