import { createCipheriv, type Cipher } from 'node:crypto';

/**
 * The prepared counter blocks: enough for the largest UDP datagram (64 KiB of data + E(K, J0)), so no
 * packet a peer can send is too long — a longer one would make `keystream` throw out of a socket listener.
 */
const MAX_BLOCKS = 4098;

/**
 * AES-128-GCM (NIST SP 800-38D) with a 96-bit IV and a 16-byte tag, for SRTP's AEAD_AES_128_GCM
 * (RFC 7714), in place on buffers by offset. node:crypto cannot re-IV a GCM cipher, so its own GCM
 * costs a cipher object (and OpenSSL's per-init work) per packet; here one persistent AES-128-ECB cipher
 * makes the counter-mode keystream (E(K, J0) for the tag and E(K, J0 + i) for the data, one call per
 * packet) and GHASH runs in JavaScript on 32-bit words with Shoup's 8-bit tables for the session's H
 * (4 KiB per key), so a packet creates no cipher object (bench/srtp-profiles.ts measures both).
 */
/**
 * The counter blocks, one buffer for every AesGcm of the thread: `keystream` fills and encrypts them in one
 * synchronous step (each relay worker has its own module), so a key holds only its 4 KiB table.
 */
const COUNTERS = Buffer.alloc(MAX_BLOCKS * 16);
const COUNTER_VIEWS: (Buffer | undefined)[] = new Array<Buffer | undefined>(MAX_BLOCKS + 1);

export class AesGcm {
  private readonly ecb: Cipher;
  /** T[b] = b · H (b's most significant bit is the coefficient of x^0), 4 words per entry. */
  private readonly table = new Int32Array(256 * 4);
  /** The running GHASH value (4 big-endian words). */
  private y0 = 0;
  private y1 = 0;
  private y2 = 0;
  private y3 = 0;

  constructor(key: Buffer) {
    if (key.length !== 16) throw new Error('AES-GCM key must be 16 bytes');
    this.ecb = createCipheriv('aes-128-ecb', key, null);
    this.ecb.setAutoPadding(false);
    const h = this.ecb.update(Buffer.alloc(16));
    buildTable(this.table, h.readInt32BE(0), h.readInt32BE(4), h.readInt32BE(8), h.readInt32BE(12));
  }

  /**
   * Encrypt buf[at, at + length) in place and write the 16-byte tag at `tagAt`. The AAD is
   * aad[aadAt, aadAt + aadLength) followed by aad2[0, aad2Length) (RTCP's E flag + index word).
   */
  seal(iv: Buffer, aad: Buffer, aadAt: number, aadLength: number, aad2: Buffer | undefined, aad2Length: number, buf: Buffer, at: number, length: number, tagAt: number): void {
    const ks = this.keystream(iv, length);
    xorInto(buf, at, ks, 16, length);
    this.tagInto(ks, aad, aadAt, aadLength, aad2, aad2Length, buf, at, length);
    writeTag(buf, tagAt, ks, this.y0, this.y1, this.y2, this.y3);
  }

  /**
   * Check the tag at `tagAt` over the AAD and the ciphertext buf[at, at + length); only when it matches
   * decrypt in place and return true (nothing is changed otherwise).
   */
  open(iv: Buffer, aad: Buffer, aadAt: number, aadLength: number, aad2: Buffer | undefined, aad2Length: number, buf: Buffer, at: number, length: number, tagAt: number): boolean {
    const ks = this.keystream(iv, length);
    this.tagInto(ks, aad, aadAt, aadLength, aad2, aad2Length, buf, at, length);
    const diff =
      (readWord(buf, tagAt) ^ readWord(ks, 0) ^ this.y0) |
      (readWord(buf, tagAt + 4) ^ readWord(ks, 4) ^ this.y1) |
      (readWord(buf, tagAt + 8) ^ readWord(ks, 8) ^ this.y2) |
      (readWord(buf, tagAt + 12) ^ readWord(ks, 12) ^ this.y3);
    if (diff !== 0) return false;
    xorInto(buf, at, ks, 16, length);
    return true;
  }

  /** E(K, J0), E(K, J0 + 1), ... enough for `length` bytes of data (J0 = IV || 0^31 || 1). */
  private keystream(iv: Buffer, length: number): Buffer {
    const blocks = 1 + ((length + 15) >>> 4);
    if (blocks > MAX_BLOCKS) throw new Error('AES-GCM: packet too long');
    const c = COUNTERS;
    // byte stores: a Buffer.copy per block costs more than the 16 stores
    const i0 = iv[0]!, i1 = iv[1]!, i2 = iv[2]!, i3 = iv[3]!, i4 = iv[4]!, i5 = iv[5]!;
    const i6 = iv[6]!, i7 = iv[7]!, i8 = iv[8]!, i9 = iv[9]!, i10 = iv[10]!, i11 = iv[11]!;
    for (let b = 0; b < blocks; b++) {
      const o = b << 4;
      const n = b + 1;
      c[o] = i0; c[o + 1] = i1; c[o + 2] = i2; c[o + 3] = i3; c[o + 4] = i4; c[o + 5] = i5;
      c[o + 6] = i6; c[o + 7] = i7; c[o + 8] = i8; c[o + 9] = i9; c[o + 10] = i10; c[o + 11] = i11;
      c[o + 12] = n >>> 24; c[o + 13] = (n >>> 16) & 0xff; c[o + 14] = (n >>> 8) & 0xff; c[o + 15] = n & 0xff;
    }
    const view = (COUNTER_VIEWS[blocks] ??= c.subarray(0, blocks << 4));
    return this.ecb.update(view);
  }

  /** GHASH(H, A, C) into y0..y3 (A = the two AAD pieces, C = the ciphertext). */
  private tagInto(_ks: Buffer, aad: Buffer, aadAt: number, aadLength: number, aad2: Buffer | undefined, aad2Length: number, buf: Buffer, at: number, length: number): void {
    this.y0 = this.y1 = this.y2 = this.y3 = 0;
    if (aad2 === undefined || aad2Length === 0) {
      this.absorb(aad, aadAt, aadLength);
    } else {
      // the two AAD pieces form one padded string: whole blocks of the first, then the seam
      const whole = aadLength & ~15;
      this.absorb(aad, aadAt, whole);
      const rest = aadLength - whole;
      const seam = SEAM;
      seam.fill(0);
      aad.copy(seam, 0, aadAt + whole, aadAt + aadLength);
      aad2.copy(seam, rest, 0, aad2Length);
      this.absorb(seam, 0, rest + aad2Length);
    }
    this.absorb(buf, at, length);
    const aBits = (aadLength + aad2Length) * 8;
    const cBits = length * 8;
    this.mix(0, aBits | 0, 0, cBits | 0);
  }

  /** GHASH over data[at, at + length), the last partial block padded with zeros. */
  private absorb(data: Buffer, at: number, length: number): void {
    const end = at + length;
    let o = at;
    for (; o + 16 <= end; o += 16) this.mix(readWord(data, o), readWord(data, o + 4), readWord(data, o + 8), readWord(data, o + 12));
    if (o < end) {
      const p = PAD;
      p.fill(0);
      data.copy(p, 0, o, end);
      this.mix(readWord(p, 0), readWord(p, 4), readWord(p, 8), readWord(p, 12));
    }
  }

  /** Y = (Y ^ X) · H, with X given as four big-endian words. */
  private mix(x0: number, x1: number, x2: number, x3: number): void {
    const t = this.table;
    x0 ^= this.y0;
    x1 ^= this.y1;
    x2 ^= this.y2;
    x3 ^= this.y3;
    // Horner over the bytes, from byte 15 to byte 0: Z = Z · x^8 ^ T[byte]
    let i = (x3 & 0xff) << 2;
    let z0 = t[i]!;
    let z1 = t[i + 1]!;
    let z2 = t[i + 2]!;
    let z3 = t[i + 3]!;
    for (let k = 1; k < 16; k++) {
      const w = k < 4 ? x3 : k < 8 ? x2 : k < 12 ? x1 : x0;
      const b = (w >>> ((k & 3) << 3)) & 0xff;
      const r = z3 & 0xff;
      z3 = (z3 >>> 8) | (z2 << 24);
      z2 = (z2 >>> 8) | (z1 << 24);
      z1 = (z1 >>> 8) | (z0 << 24);
      z0 = (z0 >>> 8) ^ REM8[r]!;
      i = b << 2;
      z0 ^= t[i]!;
      z1 ^= t[i + 1]!;
      z2 ^= t[i + 2]!;
      z3 ^= t[i + 3]!;
    }
    this.y0 = z0;
    this.y1 = z1;
    this.y2 = z2;
    this.y3 = z3;
  }
}

const PAD = Buffer.alloc(16);
const SEAM = Buffer.alloc(32);

/** What shifting the byte r out of the low end (multiplying by x^8) adds to the top word. */
const REM8 = (() => {
  const rem = new Int32Array(256);
  for (let r = 0; r < 256; r++) {
    let z0 = 0;
    let z3 = r;
    for (let k = 0; k < 8; k++) {
      const lsb = z3 & 1;
      z3 >>>= 1;
      // the reduction bits stay within z0's top 15 bits over 8 shifts: z1..z3 end up 0
      z0 >>>= 1;
      if (lsb) z0 ^= 0xe1000000;
    }
    rem[r] = z0 | 0;
  }
  return rem;
})();

function buildTable(t: Int32Array, h0: number, h1: number, h2: number, h3: number): void {
  // T[0x80] = H, T[0x40] = H · x, ..., T[0x01] = H · x^7
  let v0 = h0;
  let v1 = h1;
  let v2 = h2;
  let v3 = h3;
  for (let bit = 0x80; bit >= 1; bit >>= 1) {
    const o = bit << 2;
    t[o] = v0;
    t[o + 1] = v1;
    t[o + 2] = v2;
    t[o + 3] = v3;
    const lsb = v3 & 1;
    v3 = (v3 >>> 1) | (v2 << 31);
    v2 = (v2 >>> 1) | (v1 << 31);
    v1 = (v1 >>> 1) | (v0 << 31);
    v0 = (v0 >>> 1) ^ (lsb ? 0xe1000000 : 0);
  }
  for (let b = 2; b < 256; b <<= 1) {
    for (let j = 1; j < b; j++) {
      const o = (b + j) << 2;
      const p = b << 2;
      const q = j << 2;
      t[o] = t[p]! ^ t[q]!;
      t[o + 1] = t[p + 1]! ^ t[q + 1]!;
      t[o + 2] = t[p + 2]! ^ t[q + 2]!;
      t[o + 3] = t[p + 3]! ^ t[q + 3]!;
    }
  }
}

function readWord(b: Buffer, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

function xorInto(buf: Buffer, at: number, ks: Buffer, from: number, length: number): void {
  for (let i = 0; i < length; i++) buf[at + i] ^= ks[from + i]!;
}

function writeTag(buf: Buffer, at: number, ks: Buffer, y0: number, y1: number, y2: number, y3: number): void {
  buf.writeInt32BE(readWord(ks, 0) ^ y0, at);
  buf.writeInt32BE(readWord(ks, 4) ^ y1, at + 4);
  buf.writeInt32BE(readWord(ks, 8) ^ y2, at + 8);
  buf.writeInt32BE(readWord(ks, 12) ^ y3, at + 12);
}
