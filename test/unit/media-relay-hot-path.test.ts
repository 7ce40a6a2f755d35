import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../../src/common/clock';
import { codecTableFrom } from '../../src/media/relay/codec-table';
import type { MediaLeg } from '../../src/media/relay/media-leg';
import { beginPacketTurn, endPacketTurn, packetNow } from '../../src/media/relay/packet-clock';
import { fanOut, OutgoingRtp, type PipelineSink } from '../../src/media/relay/packet-relay';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';

/**
 * The per-packet relay's shortcuts (src/media/relay/): copies only where a second rewriting sink needs
 * one, the payload-type cache that must follow a renegotiation, and the one clock read per packet.
 */

function rtp(pt: number, seq: number): Buffer {
  const b = Buffer.alloc(12 + 160, 0xd5);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 160, 4);
  b.writeUInt32BE(0x11111111, 8);
  return b;
}

describe('media relay: fan-out copies', () => {
  test('one sink gets the very Buffer (no copy)', { timeout: 5_000 }, () => {
    const got: Buffer[] = [];
    const packet = rtp(0, 1);
    fanOut(packet, 'pcmu/8000', [{ deliverFromPipeline: (b) => got.push(b) }]);
    assert.equal(got.length, 1);
    assert.equal(got[0], packet);
  });

  test('read-only sinks get the original before any rewriting sink; n rewriting sinks cost n-1 copies', { timeout: 5_000 }, () => {
    const order: string[] = [];
    const seen = new Map<string, Buffer>();
    const headerAtDelivery = new Map<string, number>();
    const rewriting = (name: string): PipelineSink => ({
      deliverFromPipeline: (b) => {
        order.push(name);
        seen.set(name, b);
        headerAtDelivery.set(name, b[1]!);
        b[1] = 99; // rewrites in place, as OutgoingRtp does
      },
    });
    const reader = (name: string): PipelineSink => ({
      readsPacketOnly: true,
      deliverFromPipeline: (b) => {
        order.push(name);
        seen.set(name, b);
        headerAtDelivery.set(name, b[1]!);
      },
    });
    const packet = rtp(0, 2);
    fanOut(packet, 'pcmu/8000', [rewriting('w1'), reader('r1'), rewriting('w2'), reader('r2')]);
    assert.deepEqual(order, ['r1', 'r2', 'w1', 'w2'], 'readers first, then rewriters in order');
    assert.equal(seen.get('r1'), packet);
    assert.equal(seen.get('r2'), packet);
    assert.notEqual(seen.get('w1'), packet, 'the first rewriter gets a copy');
    assert.equal(seen.get('w2'), packet, 'the last rewriter gets the original');
    for (const name of ['r1', 'r2', 'w1', 'w2']) assert.equal(headerAtDelivery.get(name), 0, `${name} saw the header unrewritten`);

    order.length = 0;
    seen.clear();
    const packet2 = rtp(0, 3);
    fanOut(packet2, 'pcmu/8000', [reader('r1'), reader('r2')]);
    assert.deepEqual(order, ['r1', 'r2']);
    assert.ok([...seen.values()].every((b) => b === packet2), 'only readers: nobody gets a copy');
  });
});

describe('media relay: OutgoingRtp payload-type cache', () => {
  test('a renegotiated table (new payload type) and a codec change both take effect on the next packet', { timeout: 5_000 }, () => {
    const sent: Buffer[] = [];
    const leg = { sendRtp: (p: Buffer) => sent.push(p) } as unknown as MediaLeg;
    const out = new OutgoingRtp(new RtpStreamRewriter(0x01020304));
    const first = codecTableFrom([[0, 'pcmu/8000'], [101, 'telephone-event/8000']]);
    assert.equal(out.send(rtp(0, 1), 'pcmu/8000', first, leg, 0), true);
    assert.equal(out.send(rtp(101, 2), 'telephone-event/8000', first, leg, 20), true);
    assert.equal(out.send(rtp(0, 3), 'pcmu/8000', first, leg, 40), true);
    assert.deepEqual(sent.map((p) => p[1]! & 0x7f), [0, 101, 0]);
    // Re-INVITE: the peer now wants telephone-event on 96 and no longer takes PCMU.
    const second = codecTableFrom([[8, 'pcma/8000'], [96, 'telephone-event/8000']]);
    assert.equal(out.send(rtp(0, 4), 'pcmu/8000', second, leg, 60), false, 'PCMU no longer negotiated: dropped');
    assert.equal(out.send(rtp(101, 5), 'telephone-event/8000', second, leg, 80), true);
    assert.equal(sent.at(-1)![1]! & 0x7f, 96);
    assert.equal(sent.length, 4);
    // A codec key from another table (another string object, same text) hits the same entry.
    const key = codecTableFrom([[101, 'telephone-event/8000']]).receive[101]!;
    assert.equal(out.send(rtp(101, 6), key, second, leg, 100), true);
    assert.equal(sent.at(-1)![1]! & 0x7f, 96);
  });
});

describe('media relay: one clock read per packet', () => {
  test('inside a packet turn packetNow returns the turn time for that clock only; nested turns keep the outer one', { timeout: 5_000 }, () => {
    const fake = new FakeClock(1000);
    assert.equal(packetNow(fake), 1000, 'outside a turn: the clock');
    beginPacketTurn(fake, 1000);
    try {
      fake.advance(50);
      assert.equal(packetNow(fake), 1000, 'the turn time, not a second read');
      const other = new FakeClock(7);
      assert.equal(packetNow(other), 7, 'another clock is read as usual');
      beginPacketTurn(fake, 1050);
      try {
        assert.equal(packetNow(fake), 1000, 'a nested turn keeps the outer time');
      } finally {
        endPacketTurn();
      }
      assert.equal(packetNow(fake), 1000);
    } finally {
      endPacketTurn();
    }
    assert.equal(packetNow(fake), 1050, 'after the turn: the clock again');
    const t = packetNow(systemClock);
    assert.ok(Math.abs(t - Date.now()) < 1000);
  });
});
