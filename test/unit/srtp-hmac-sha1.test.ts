import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { HmacSha1 } from '../../src/media/srtp/hmac-sha1';
import { sha1Compress } from '../../src/media/srtp/sha1-compress';
import { rng } from '../helpers/seeded-random';

function bytes(random: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
  return b;
}

function macOf(h: HmacSha1): Buffer {
  const out = Buffer.alloc(20);
  h.writeTo(out, 0, 20);
  return out;
}

describe('SRTP HMAC-SHA1 (JavaScript SHA-1 compression)', { timeout: 30_000 }, () => {
  test('one compression of a padded one-block message is SHA-1 of that message (FIPS 180 "abc")', () => {
    const h = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0]);
    const block = Buffer.alloc(64);
    block.write('abc', 0, 'latin1');
    block[3] = 0x80;
    block.writeUInt32BE(24, 60);
    const m = new Int32Array(16);
    for (let i = 0; i < 16; i++) m[i] = block.readInt32BE(i * 4);
    const before = Int32Array.from(m);
    sha1Compress(h, m);
    const digest = Buffer.alloc(20);
    for (let i = 0; i < 5; i++) digest.writeInt32BE(h[i]!, i * 4);
    assert.equal(digest.toString('hex'), 'a9993e364706816aba3e25717850c26c9cd0d89d');
    assert.equal(digest.toString('hex'), createHash('sha1').update('abc').digest('hex'));
    assert.deepEqual(m, before, 'the message words are left unchanged');
  });

  test('equals node:crypto HMAC-SHA1 for keys of 0–100 bytes and messages across every block boundary, with and without the ROC word', () => {
    const random = rng(0x5ca1ab1e);
    let checked = 0;
    for (const keyLength of [0, 1, 16, 20, 63, 64, 65, 100]) {
      const key = bytes(random, keyLength);
      const h = new HmacSha1(key);
      for (let length = 0; length <= 200; length++) {
        const data = bytes(random, length + 7); // a longer buffer: only the first `length` bytes count
        const word = length % 3 === 0 ? -1 : Math.floor(random() * 0x100000000);
        const roc = Buffer.alloc(4);
        if (word >= 0) roc.writeUInt32BE(word >>> 0);
        const expected = createHmac('sha1', key)
          .update(data.subarray(0, length))
          .update(word >= 0 ? roc : Buffer.alloc(0))
          .digest();
        h.mac(data, length, word);
        assert.deepEqual(macOf(h), expected, `key ${keyLength} B, message ${length} B, word ${word}`);
        checked++;
      }
    }
    assert.equal(checked, 8 * 201);
  });

  test('matches() accepts the tag and refuses any one changed byte; writeTo() writes only n bytes', () => {
    const h = new HmacSha1(Buffer.alloc(20, 9));
    const packet = Buffer.alloc(172 + 10, 0x42);
    h.mac(packet, 172, 7);
    h.writeTo(packet, 172, 10);
    assert.ok(h.matches(packet, 172, 10));
    for (let i = 0; i < 10; i++) {
      packet[172 + i] ^= 1;
      assert.equal(h.matches(packet, 172, 10), false, `byte ${i} changed`);
      packet[172 + i] ^= 1;
    }
    const out = Buffer.alloc(12, 0xee);
    h.writeTo(out, 0, 10);
    assert.deepEqual(out.subarray(10), Buffer.from([0xee, 0xee]));
  });
});
