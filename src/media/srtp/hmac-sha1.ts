import { createHash } from 'node:crypto';
import { sha1Compress } from './sha1-compress';

/**
 * HMAC-SHA1 (RFC 2104) for SRTP's authentication tag (RFC 3711 §4.2.1), with the inner and outer
 * SHA-1 states of the key computed once and the compression function in JavaScript on 32-bit words
 * (src/media/srtp/sha1-compress.ts).
 * A packet then costs 3–4 compressions and no object: node:crypto's createHmac per packet costs an Hmac
 * object, OpenSSL's per-init work and a digest Buffer, and its Hash.copy() of precomputed states two
 * Hash objects (bench/srtp-profiles.ts measures all three). The digest stays in `digest` (5 words).
 */
export class HmacSha1 {
  private readonly innerState = new Int32Array(5);
  private readonly outerState = new Int32Array(5);
  /** The last MAC, 5 big-endian words. */
  readonly digest = new Int32Array(5);
  /** one block's 16 message words */
  private readonly w = new Int32Array(16);
  private readonly tail = Buffer.alloc(128);

  constructor(key: Buffer) {
    let k = key;
    if (k.length > 64) k = createHash('sha1').update(k).digest();
    const block = Buffer.alloc(64);
    k.copy(block);
    for (let i = 0; i < 64; i++) block[i] ^= 0x36;
    this.innerState.set(SHA1_INIT);
    this.compress(this.innerState, block, 0);
    for (let i = 0; i < 64; i++) block[i] ^= 0x36 ^ 0x5c;
    this.outerState.set(SHA1_INIT);
    this.compress(this.outerState, block, 0);
  }

  /** MAC of data[0, length) followed, when `word` >= 0, by `word` as 4 big-endian bytes (SRTP's ROC). */
  mac(data: Buffer, length: number, word: number): void {
    const h = this.digest;
    h.set(this.innerState);
    let o = 0;
    for (; o + 64 <= length; o += 64) this.compress(h, data, o);
    // the rest of the message, the word, the 0x80 pad and the bit length (after the key block)
    const t = this.tail;
    t.fill(0);
    const rest = length - o;
    data.copy(t, 0, o, length);
    let n = rest;
    if (word >= 0) {
      t.writeUInt32BE(word >>> 0, n);
      n += 4;
    }
    t[n] = 0x80;
    const blocks = n + 9 <= 64 ? 1 : 2;
    const bits = (64 + length + (word >= 0 ? 4 : 0)) * 8;
    t.writeUInt32BE(Math.floor(bits / 0x100000000), blocks * 64 - 8);
    t.writeUInt32BE(bits >>> 0, blocks * 64 - 4);
    this.compress(h, t, 0);
    if (blocks === 2) this.compress(h, t, 64);
    // outer: H(K ^ opad || inner digest), one block
    const w = this.w;
    w[0] = h[0]!;
    w[1] = h[1]!;
    w[2] = h[2]!;
    w[3] = h[3]!;
    w[4] = h[4]!;
    w[5] = 0x80000000 | 0;
    for (let i = 6; i < 15; i++) w[i] = 0;
    w[15] = (64 + 20) * 8;
    h.set(this.outerState);
    sha1Compress(h, w);
  }

  /** Whether the first `n` bytes of the last MAC equal buf[at, at + n), in constant time. */
  matches(buf: Buffer, at: number, n: number): boolean {
    const h = this.digest;
    let diff = 0;
    for (let i = 0; i < n; i++) diff |= ((h[i >>> 2]! >>> (24 - ((i & 3) << 3))) & 0xff) ^ buf[at + i]!;
    return diff === 0;
  }

  /** Write the first `n` bytes of the last MAC at buf[at]. */
  writeTo(buf: Buffer, at: number, n: number): void {
    const h = this.digest;
    for (let i = 0; i < n; i++) buf[at + i] = (h[i >>> 2]! >>> (24 - ((i & 3) << 3))) & 0xff;
  }

  private compress(h: Int32Array, data: Buffer, o: number): void {
    const w = this.w;
    for (let i = 0; i < 16; i++) {
      const p = o + (i << 2);
      w[i] = (data[p]! << 24) | (data[p + 1]! << 16) | (data[p + 2]! << 8) | data[p + 3]!;
    }
    sha1Compress(h, w);
  }
}

const SHA1_INIT = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0]);
