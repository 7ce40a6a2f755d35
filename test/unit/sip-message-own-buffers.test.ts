/**
 * What a transaction keeps for up to 32 s (the request it serves, the last message it sends, for
 * retransmission) must not keep more memory alive than its own bytes. `Buffer.from` of a short string or
 * buffer returns a slice of Node's shared 8 kB pool, and a view of a received chunk keeps the whole chunk:
 * either way one kept message held an 8 kB slab (measured: 5.6 kB of ArrayBuffers per server transaction
 * in a flood of challenged INVITEs, 1.1 kB after). The parser's body and the serializer's output are
 * therefore buffers of their own.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { serializeSipMessage } from '../../src/sip/message/sip-serializer';

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
const INVITE = ['INVITE sip:alice@127.0.0.1 SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKown1', 'Max-Forwards: 70',
  'From: <sip:x@127.0.0.1>;tag=1', 'To: <sip:alice@127.0.0.1>', 'Call-ID: own-buffers', 'CSeq: 1 INVITE', 'Content-Type: application/sdp',
  `Content-Length: ${SDP.length}`, '', SDP].join('\r\n');

/** a buffer that is the whole of its ArrayBuffer (not a view into a larger one) */
const own = (b: Buffer): boolean => b.byteOffset === 0 && b.buffer.byteLength === b.length;

describe('SIP messages kept by transactions hold only their own bytes', () => {
  test('a parsed body is a buffer of its own, from a datagram and from a chunk of a stream', { timeout: 10_000 }, () => {
    const datagram = parseSipMessage(Buffer.from(INVITE), true);
    assert.equal(datagram.body.toString(), SDP);
    assert.ok(own(datagram.body), `the body of a datagram is a view of ${datagram.body.buffer.byteLength} bytes`);
    // a stream read: the message inside a 64 kB chunk
    const chunk = Buffer.alloc(65536);
    chunk.write(INVITE);
    const framed = parseSipMessage(chunk.subarray(0, Buffer.byteLength(INVITE)), false);
    assert.ok(own(framed.body), `the body of a framed message is a view of ${framed.body.buffer.byteLength} bytes`);
    // positive control of the check itself: Buffer.from of a short buffer is a pool slice
    assert.equal(own(Buffer.from(Buffer.from(SDP))), false);
  });

  test('a serialized message is a buffer of its own, with and without a body, and reads back the same', { timeout: 10_000 }, () => {
    const msg = parseSipMessage(Buffer.from(INVITE), true);
    const out = serializeSipMessage(msg);
    assert.ok(own(out), `serialized into a view of ${out.buffer.byteLength} bytes`);
    assert.equal(parseSipMessage(out, true).body.toString(), SDP);
    const empty = serializeSipMessage({ ...msg, body: Buffer.alloc(0) });
    assert.ok(own(empty));
    assert.match(empty.toString(), /Content-Length: 0\r\n\r\n$/);
    // UTF-8 keeps its bytes: Content-Length counts them
    const utf8 = parseSipMessage(Buffer.from(INVITE.replace('s=-', 's=Grüße ☎').replace(`Content-Length: ${SDP.length}`, `Content-Length: ${Buffer.byteLength(SDP) + 8}`)), true);
    const back = parseSipMessage(serializeSipMessage(utf8), true);
    assert.match(back.body.toString(), /s=Grüße ☎/);
  });
});
