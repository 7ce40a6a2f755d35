import { AesGcm } from './aes-gcm';
import { AesCmKeystream } from './aes-cm-keystream';
import { HmacSha1 } from './hmac-sha1';
import { RtpKeystreamAhead } from './rtp-keystream-ahead';
import type { SessionKeys } from './key-derivation';

/**
 * The per-packet cryptography of one SRTP profile for one direction, on buffers by offset. The
 * context (srtp-context.ts) owns everything else: header parsing, replay windows, rollover counters,
 * the SRTCP index. Every method works in place on `buf` (protect: the plain packet is already there,
 * with room for the trailer behind it; unprotect: nothing is changed unless authentication passed).
 */
export interface SrtpTransform {
  /** Bytes protectRtp adds to an RTP packet. */
  readonly rtpTrailer: number;
  /** Bytes protectRtcp adds to an RTCP packet (tag plus E flag and SRTCP index). */
  readonly rtcpTrailer: number;
  /** Where the E flag + SRTCP index word sits, counted back from the end of the SRTCP packet. */
  readonly rtcpIndexFromEnd: number;
  protectRtp(buf: Buffer, headerLen: number, length: number, ssrc: number, roc: number, seq: number): void;
  unprotectRtp(buf: Buffer, headerLen: number, bodyLen: number, ssrc: number, roc: number, seq: number): boolean;
  /** `word` is the E flag + SRTCP index as it goes on the wire. */
  protectRtcp(buf: Buffer, length: number, ssrc: number, word: number): void;
  unprotectRtcp(buf: Buffer, bodyLen: number, ssrc: number, word: number): boolean;
}

const HMAC_TAG = 10;

/**
 * AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2.1). One persistent AES-ECB keystream cipher per key;
 * an RTP stream's keystream is made 8 packets at a time (rtp-keystream-ahead.ts).
 * The tag is ferry's HMAC-SHA1 (hmac-sha1.ts: the key's inner/outer SHA-1 states computed once, the
 * compression in JavaScript): measured on Node 20 (bench/srtp-profiles.ts) cheaper than a node:crypto
 * Hmac per packet, which in turn beat copying precomputed node:crypto Hash states with `hash.copy()`.
 */
export class AesCmHmacTransform implements SrtpTransform {
  readonly rtpTrailer = HMAC_TAG;
  readonly rtcpTrailer = 4 + HMAC_TAG;
  readonly rtcpIndexFromEnd = 4 + HMAC_TAG;
  private readonly rtpKeystream: RtpKeystreamAhead;
  private readonly rtcpCipher: AesCmKeystream;
  private readonly iv = Buffer.alloc(16);
  private readonly rtpMac: HmacSha1;
  private readonly rtcpMac: HmacSha1;

  constructor(
    private readonly rtp: SessionKeys,
    private readonly rtcp: SessionKeys,
  ) {
    if (rtp.salt.length !== 14 || rtcp.salt.length !== 14) throw new Error('AES-CM session salt must be 14 bytes');
    if (rtp.authKey.length !== 20 || rtcp.authKey.length !== 20) throw new Error('HMAC-SHA1 session key must be 20 bytes');
    this.rtpKeystream = new RtpKeystreamAhead(new AesCmKeystream(rtp.encryptionKey), rtp.salt);
    this.rtcpCipher = new AesCmKeystream(rtcp.encryptionKey);
    this.rtpMac = new HmacSha1(rtp.authKey);
    this.rtcpMac = new HmacSha1(rtcp.authKey);
  }

  protectRtp(buf: Buffer, headerLen: number, length: number, ssrc: number, roc: number, seq: number): void {
    this.rtpKeystream.xor(buf, headerLen, length - headerLen, ssrc, roc, seq, this.iv);
    this.rtpMac.mac(buf, length, roc);
    this.rtpMac.writeTo(buf, length, HMAC_TAG);
  }

  unprotectRtp(buf: Buffer, headerLen: number, bodyLen: number, ssrc: number, roc: number, seq: number): boolean {
    this.rtpMac.mac(buf, bodyLen, roc);
    if (!this.rtpMac.matches(buf, bodyLen, HMAC_TAG)) return false;
    this.rtpKeystream.xor(buf, headerLen, bodyLen - headerLen, ssrc, roc, seq, this.iv);
    return true;
  }

  protectRtcp(buf: Buffer, length: number, ssrc: number, word: number): void {
    this.setRtcpIv(ssrc, word & 0x7fffffff);
    this.rtcpCipher.xor(this.iv, buf, 8, length - 8);
    buf.writeUInt32BE(word >>> 0, length);
    this.rtcpMac.mac(buf, length + 4, -1);
    this.rtcpMac.writeTo(buf, length + 4, HMAC_TAG);
  }

  unprotectRtcp(buf: Buffer, bodyLen: number, ssrc: number, word: number): boolean {
    this.rtcpMac.mac(buf, bodyLen + 4, -1);
    if (!this.rtcpMac.matches(buf, bodyLen + 4, HMAC_TAG)) return false;
    if (word >>> 31 === 1) {
      this.setRtcpIv(ssrc, word & 0x7fffffff);
      this.rtcpCipher.xor(this.iv, buf, 8, bodyLen - 8);
    }
    return true;
  }

  /** SRTCP: the same layout with the 31-bit SRTCP index in place of ROC || SEQ. */
  private setRtcpIv(ssrc: number, index: number): void {
    const iv = this.iv;
    this.rtcp.salt.copy(iv, 0);
    iv[14] = 0;
    iv[15] = 0;
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    // index << 16 occupies bytes 8..13; a 31-bit index fits bytes 10..13
    iv.writeUInt32BE((iv.readUInt32BE(10) ^ index) >>> 0, 10);
  }
}

const GCM_TAG = 16;

/**
 * AEAD_AES_128_GCM (RFC 7714) on ferry's own GCM (aes-gcm.ts: one persistent AES-ECB cipher per key for
 * the keystream, GHASH in JavaScript), so no cipher object is created per packet; node:crypto's GCM cannot
 * be re-IVed and cost a createCipheriv per packet (bench/srtp-profiles.ts compares both).
 * - RTP (§8): IV = (00 00 || SSRC || ROC || SEQ) XOR salt; AAD = the header (CSRCs, extension); the
 *   16-byte tag follows the ciphertext.
 * - RTCP (§9): IV = (00 00 || SSRC || 00 00 || index) XOR salt; AAD = the first 8 bytes and the E flag +
 *   index word (the whole packet and the word when E = 0); the packet ends ciphertext || tag || word.
 * Unprotect decrypts in place only after the tag verified.
 */
export class AesGcmTransform implements SrtpTransform {
  readonly rtpTrailer = GCM_TAG;
  readonly rtcpTrailer = GCM_TAG + 4;
  readonly rtcpIndexFromEnd = 4;
  private readonly iv = Buffer.alloc(12);
  private readonly rtpGcm: AesGcm;
  private readonly rtcpGcm: AesGcm;
  private readonly word = Buffer.alloc(4);

  constructor(
    private readonly rtp: SessionKeys,
    private readonly rtcp: SessionKeys,
  ) {
    if (rtp.salt.length !== 12 || rtcp.salt.length !== 12) throw new Error('AES-GCM session salt must be 12 bytes');
    this.rtpGcm = new AesGcm(rtp.encryptionKey);
    this.rtcpGcm = new AesGcm(rtcp.encryptionKey);
  }

  protectRtp(buf: Buffer, headerLen: number, length: number, ssrc: number, roc: number, seq: number): void {
    this.setIv(this.rtp.salt, ssrc, roc, seq);
    this.rtpGcm.seal(this.iv, buf, 0, headerLen, undefined, 0, buf, headerLen, length - headerLen, length);
  }

  unprotectRtp(buf: Buffer, headerLen: number, bodyLen: number, ssrc: number, roc: number, seq: number): boolean {
    this.setIv(this.rtp.salt, ssrc, roc, seq);
    return this.rtpGcm.open(this.iv, buf, 0, headerLen, undefined, 0, buf, headerLen, bodyLen - headerLen, bodyLen);
  }

  protectRtcp(buf: Buffer, length: number, ssrc: number, word: number): void {
    this.setRtcpIv(ssrc, word & 0x7fffffff);
    buf.writeUInt32BE(word >>> 0, length + GCM_TAG);
    const w = this.word;
    w.writeUInt32BE(word >>> 0, 0);
    this.rtcpGcm.seal(this.iv, buf, 0, 8, w, 4, buf, 8, length - 8, length);
  }

  unprotectRtcp(buf: Buffer, bodyLen: number, ssrc: number, word: number): boolean {
    const encrypted = word >>> 31 === 1;
    this.setRtcpIv(ssrc, word & 0x7fffffff);
    const w = this.word;
    w.writeUInt32BE(word >>> 0, 0);
    return encrypted
      ? this.rtcpGcm.open(this.iv, buf, 0, 8, w, 4, buf, 8, bodyLen - 8, bodyLen)
      : this.rtcpGcm.open(this.iv, buf, 0, bodyLen, w, 4, buf, bodyLen, 0, bodyLen);
  }

  private setIv(salt: Buffer, ssrc: number, roc: number, seq: number): void {
    const iv = this.iv;
    iv.writeUInt16BE(salt.readUInt16BE(0), 0);
    iv.writeUInt32BE((salt.readUInt32BE(2) ^ ssrc) >>> 0, 2);
    iv.writeUInt32BE((salt.readUInt32BE(6) ^ roc) >>> 0, 6);
    iv.writeUInt16BE(salt.readUInt16BE(10) ^ seq, 10);
  }

  private setRtcpIv(ssrc: number, index: number): void {
    const iv = this.iv;
    const salt = this.rtcp.salt;
    iv.writeUInt16BE(salt.readUInt16BE(0), 0);
    iv.writeUInt32BE((salt.readUInt32BE(2) ^ ssrc) >>> 0, 2);
    iv.writeUInt16BE(salt.readUInt16BE(6), 6);
    iv.writeUInt32BE((salt.readUInt32BE(8) ^ index) >>> 0, 8);
  }
}
