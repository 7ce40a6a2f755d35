import type { AesCmKeystream } from './aes-cm-keystream';

/** Packets whose keystream one AES call makes. */
export const PACKETS_AHEAD = 8;
/** The longest payload kept ahead (bytes, a multiple of 16); a longer one gets its keystream alone. */
const MAX_SLOT = 256;
/** Counter blocks of one run, shared by every instance of the thread (filled and encrypted in one synchronous step). */
const COUNTERS = Buffer.alloc(PACKETS_AHEAD * MAX_SLOT);
const COUNTER_VIEWS = new Map<number, Buffer>();

/**
 * The SRTP keystream (AES-CM, RFC 3711 §4.1.1) of one RTP stream made for several packets at once. A
 * stream's packet indices (ROC || SEQ) follow each other, so when a packet's keystream is needed the
 * next PACKETS_AHEAD - 1 packets' are made in the same AES call and kept: node:crypto's per-call cost
 * (about 1 µs on Node 20, against ~50 ns for the AES of one packet) is paid once per 8 packets. The
 * keystream of an index is the same however often it is made, so a lost, repeated or reordered packet
 * only costs a new run; another SSRC (a context that sees two streams) is served one packet at a time,
 * without a run, so interleaved streams cost what they did before. Memory: one buffer of 8 × 176 bytes
 * per stream for G.711 at 20 ms, allocated once (grown if the packets grow).
 */
export class RtpKeystreamAhead {
  private run: Buffer | undefined;
  /** Bytes of keystream per packet in `run` (a multiple of 16). */
  private slot = 0;
  private runSsrc = -1;
  /** Index (ROC × 65536 + SEQ) of the run's first packet. */
  private runFirst = -1;
  /** The SSRC of the packet before, to tell a stream from interleaved streams. */
  private lastSsrc = -1;

  constructor(
    private readonly cipher: AesCmKeystream,
    private readonly salt: Buffer,
  ) {
    if (salt.length !== 14) throw new Error('AES-CM session salt must be 14 bytes');
  }

  /** XOR data[offset, offset + length) with the keystream of packet (ssrc, roc, seq); `iv` is scratch (16 bytes). */
  xor(data: Buffer, offset: number, length: number, ssrc: number, roc: number, seq: number, iv: Buffer): void {
    const index = roc * 0x10000 + seq;
    let k = index - this.runFirst;
    if (ssrc !== this.runSsrc || k < 0 || k >= PACKETS_AHEAD || length > this.slot) {
      const sameStream = ssrc === this.lastSsrc;
      this.lastSsrc = ssrc;
      if (!sameStream || length > MAX_SLOT) {
        writeIv(iv, this.salt, ssrc, roc, seq);
        this.cipher.xor(iv, data, offset, length);
        return;
      }
      this.fill(ssrc, index, length);
      k = 0;
    }
    this.lastSsrc = ssrc;
    const run = this.run!;
    const at = k * this.slot;
    for (let i = 0; i < length; i++) data[offset + i] ^= run[at + i]!;
  }

  private fill(ssrc: number, first: number, length: number): void {
    const slot = Math.max((length + 15) & ~15, this.slot === 0 ? 0 : Math.min(this.slot, MAX_SLOT));
    const blocks = slot >>> 4;
    const c = COUNTERS;
    const salt = this.salt;
    // salt ^ SSRC in bytes 0..7, the same for the whole run
    const s0 = salt[0]!, s1 = salt[1]!, s2 = salt[2]!, s3 = salt[3]!;
    const s4 = salt[4]! ^ (ssrc >>> 24), s5 = salt[5]! ^ ((ssrc >>> 16) & 0xff);
    const s6 = salt[6]! ^ ((ssrc >>> 8) & 0xff), s7 = salt[7]! ^ (ssrc & 0xff);
    for (let p = 0; p < PACKETS_AHEAD; p++) {
      const index = first + p;
      const roc = Math.floor(index / 0x10000) >>> 0;
      const seq = index & 0xffff;
      const b8 = salt[8]! ^ (roc >>> 24), b9 = salt[9]! ^ ((roc >>> 16) & 0xff);
      const b10 = salt[10]! ^ ((roc >>> 8) & 0xff), b11 = salt[11]! ^ (roc & 0xff);
      const b12 = salt[12]! ^ (seq >>> 8), b13 = salt[13]! ^ (seq & 0xff);
      for (let j = 0; j < blocks; j++) {
        const o = (p * blocks + j) << 4;
        c[o] = s0; c[o + 1] = s1; c[o + 2] = s2; c[o + 3] = s3; c[o + 4] = s4; c[o + 5] = s5; c[o + 6] = s6; c[o + 7] = s7;
        c[o + 8] = b8; c[o + 9] = b9; c[o + 10] = b10; c[o + 11] = b11; c[o + 12] = b12; c[o + 13] = b13;
        c[o + 14] = j >>> 8; c[o + 15] = j & 0xff;
      }
    }
    const bytes = PACKETS_AHEAD * slot;
    let view = COUNTER_VIEWS.get(bytes);
    if (view === undefined) COUNTER_VIEWS.set(bytes, (view = c.subarray(0, bytes)));
    // node:crypto returns a new Buffer: copied into the stream's own and dropped at once, so it dies young.
    // Kept for the next 8 packets instead, each one would outlive a scavenge and be promoted: thousands of
    // small ArrayBuffers a second into the old generation, and with ferry media's small heap growing step
    // (FERRY_MEDIA_HEAP_GROWING_PERCENT) that many more full collections.
    if (this.run === undefined || this.run.length < bytes) this.run = Buffer.alloc(bytes);
    this.cipher.encryptBlocks(view).copy(this.run, 0, 0, bytes);
    this.slot = slot;
    this.runSsrc = ssrc;
    this.runFirst = first;
  }
}

/** IV = (k_s << 16) XOR (SSRC << 64) XOR (index << 16), index = ROC || SEQ (RFC 3711 §4.1.1). */
export function writeIv(iv: Buffer, salt: Buffer, ssrc: number, roc: number, seq: number): void {
  salt.copy(iv, 0);
  iv[14] = 0;
  iv[15] = 0;
  iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
  iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
  iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
}
