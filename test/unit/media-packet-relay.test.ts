import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codecTableFrom } from '../../src/media/relay/codec-table';
import type { MediaLeg } from '../../src/media/relay/media-leg';
import { fanOut, incomingCodec, OutgoingRtp, type PipelineSink } from '../../src/media/relay/packet-relay';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';

/** The per-packet relay (src/media/relay/packet-relay.ts): codec by payload type, fan-out copies, payload type and SSRC per outgoing peer. */

function rtp(pt: number, seq: number, ssrc = 0x11111111): Buffer {
  const b = Buffer.alloc(12 + 160, 0xd5);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 160, 4);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

test('incomingCodec: the negotiated payload type names its codec, anything else is undefined', { timeout: 5_000 }, () => {
  const codecs = codecTableFrom([[0, 'pcmu/8000'], [101, 'telephone-event/8000']]);
  assert.equal(incomingCodec(rtp(0, 1), codecs), 'pcmu/8000');
  assert.equal(incomingCodec(rtp(0x80 | 101, 1), codecs), 'telephone-event/8000', 'the marker bit is ignored');
  assert.equal(incomingCodec(rtp(8, 1), codecs), undefined);
});

test('fanOut: every sink gets the packet once; all but the last get a copy, the last the original', { timeout: 5_000 }, () => {
  const got: { sink: number; buf: Buffer; key: string }[] = [];
  const sinks: PipelineSink[] = [0, 1, 2].map((sink) => ({ deliverFromPipeline: (buf, key) => got.push({ sink, buf, key }) }));
  const packet = rtp(0, 7);
  fanOut(packet, 'pcmu/8000', sinks);
  assert.deepEqual(got.map((g) => g.sink), [0, 1, 2]);
  assert.ok(got.every((g) => g.key === 'pcmu/8000' && g.buf.equals(packet)));
  assert.notEqual(got[0]!.buf, packet);
  assert.notEqual(got[1]!.buf, got[0]!.buf);
  assert.equal(got[2]!.buf, packet, 'no copy for the last sink');
  got.length = 0;
  fanOut(packet, 'pcmu/8000', []);
  assert.equal(got.length, 0);
});

test('OutgoingRtp: maps the codec to the peer\'s payload type, stamps its SSRC, keeps sequence continuity; an unnegotiated codec is not sent', { timeout: 5_000 }, () => {
  const sent: Buffer[] = [];
  const leg = { sendRtp: (p: Buffer) => sent.push(p) } as unknown as MediaLeg;
  const peer = codecTableFrom([[8, 'pcma/8000'], [96, 'telephone-event/8000']]);
  const out = new OutgoingRtp(new RtpStreamRewriter(0xabcdef01));
  assert.equal(out.send(rtp(101, 1), 'telephone-event/8000', peer, leg, 1000), true);
  assert.equal(sent[0]![1]! & 0x7f, 96, 'payload type of the peer');
  assert.equal(sent[0]!.readUInt32BE(8), 0xabcdef01);
  assert.equal(out.send(rtp(0, 2), 'pcmu/8000', peer, leg, 1020), false);
  assert.equal(sent.length, 1, 'PCMU is not negotiated by this peer: dropped');
  assert.equal(out.send(rtp(8, 3), 'pcma/8000', peer, leg, 1040), true);
  assert.equal(sent[1]!.readUInt16BE(2), ((sent[0]!.readUInt16BE(2) + 2) & 0xffff), 'same source: its sequence numbers carried through');
});
