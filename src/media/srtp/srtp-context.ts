import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { AesCmKeystream } from './aes-cm-keystream';
import { deriveSessionKeys, type SessionKeys } from './key-derivation';
import { ReplayWindow } from './replay-window';

/** AES_CM_128_HMAC_SHA1_80: 80-bit authentication tag. */
export const SRTP_AUTH_TAG_BYTES = 10;
/** SRTCP trailer: E flag + 31-bit index. */
const SRTCP_INDEX_BYTES = 4;
/** A peer rotating SSRCs cannot grow the per-stream state without bound. */
const MAX_STREAMS = 64;

export interface SrtpMaster {
  /** 16 bytes */
  masterKey: Buffer;
  /** 14 bytes */
  masterSalt: Buffer;
}

/** Why the last unprotect refused a packet, counted per context. */
export interface SrtpCounters {
  /** protected packets accepted */
  unprotected: number;
  authFailures: number;
  replays: number;
  malformed: number;
}

/** Per-SSRC receive state: rollover counter and highest sequence number come from the window's highest index. */
interface RtpStream {
  window: ReplayWindow;
}

/** Per-SSRC send state. */
interface SendStream {
  roc: number;
  lastSeq: number;
}

/**
 * One SRTP cryptographic context for AES_CM_128_HMAC_SHA1_80 (RFC 3711), for ONE direction: the
 * context made from the peer's master key unprotects what it sends; the one made from our key
 * protects what we send. Reusable for any leg (SDES keys from SDP, or keys exported from DTLS).
 *
 * - RTP: the payload after the header (CSRCs and extension included) is encrypted; the tag is
 *   HMAC-SHA1(header || payload || ROC) truncated to 80 bits. The rollover counter is tracked per SSRC
 *   (RFC 3711 Appendix A index estimation), starting at 0 as SDES requires.
 * - RTCP: everything after the first 8 bytes is encrypted; E flag and 31-bit SRTCP index follow, then
 *   the tag over all of it. The index is ours to count when sending.
 * - Unprotect checks the replay window, then the tag (constant time), and only then decrypts, in
 *   place: the result is a view of the same buffer without the trailer. A refused packet returns
 *   undefined and is counted; nothing throws on hostile input.
 * - Per packet: no cipher object (see AesCmKeystream); one Hmac and its digest, the cheapest in
 *   node:crypto (measured: a fresh Hmac 2.8 µs against 4.8 µs for copying precomputed SHA-1 states).
 */
export class SrtpContext {
  private readonly rtpKeys: Keys;
  private readonly rtcpKeys: Keys;
  private readonly iv = Buffer.alloc(16);
  private readonly rocBytes = Buffer.alloc(4);
  private readonly receiveStreams = new Map<number, RtpStream>();
  private readonly rtcpWindows = new Map<number, ReplayWindow>();
  private readonly sendStreams = new Map<number, SendStream>();
  private srtcpIndex = 0;
  readonly counters: SrtpCounters = { unprotected: 0, authFailures: 0, replays: 0, malformed: 0 };

  constructor(master: SrtpMaster) {
    const keys = deriveSessionKeys(master.masterKey, master.masterSalt);
    this.rtpKeys = toKeys(keys.rtp);
    this.rtcpKeys = toKeys(keys.rtcp);
  }

  // ---- RTP --------------------------------------------------------------------------------------

  /**
   * `packet` encrypted, with the tag appended, in `out` when given (at least packet.length + 10 bytes;
   * the result is a view of it) or in a new buffer. `packet` itself is left untouched.
   */
  protectRtp(packet: Buffer, out?: Buffer): Buffer {
    const headerLen = rtpHeaderLength(packet, packet.length);
    if (headerLen < 0) throw new Error('not an RTP packet');
    const ssrc = packet.readUInt32BE(8);
    const seq = packet.readUInt16BE(2);
    const roc = this.sendRoc(ssrc, seq);
    const dst = outputBuffer(out, packet.length + SRTP_AUTH_TAG_BYTES);
    packet.copy(dst, 0);
    this.rtpIv(ssrc, roc, seq);
    this.rtpKeys.cipher.xor(this.iv, dst, headerLen, packet.length - headerLen);
    this.rtpTag(dst, packet.length, roc).copy(dst, packet.length, 0, SRTP_AUTH_TAG_BYTES);
    return dst;
  }

  /** The decrypted packet (a view of `packet`, decrypted in place), or undefined when refused. */
  unprotectRtp(packet: Buffer): Buffer | undefined {
    const bodyLen = packet.length - SRTP_AUTH_TAG_BYTES;
    const headerLen = bodyLen >= 12 ? rtpHeaderLength(packet, bodyLen) : -1;
    if (headerLen < 0) {
      this.counters.malformed++;
      return undefined;
    }
    const ssrc = packet.readUInt32BE(8);
    const seq = packet.readUInt16BE(2);
    const stream = this.receiveStreams.get(ssrc);
    const highest = stream ? stream.window.highestIndex : -1;
    const index = highest < 0 ? seq : estimateIndex(highest, seq);
    if (index < 0 || (stream && !stream.window.isNew(index))) {
      this.counters.replays++;
      return undefined;
    }
    const roc = Math.floor(index / 0x10000);
    const tag = this.rtpTag(packet, bodyLen, roc);
    if (!timingSafeEqual(tag.subarray(0, SRTP_AUTH_TAG_BYTES), packet.subarray(bodyLen))) {
      this.counters.authFailures++;
      return undefined;
    }
    this.rtpIv(ssrc, roc, seq);
    this.rtpKeys.cipher.xor(this.iv, packet, headerLen, bodyLen - headerLen);
    this.receiveStream(ssrc).window.commit(index);
    this.counters.unprotected++;
    return packet.subarray(0, bodyLen);
  }

  // ---- RTCP -------------------------------------------------------------------------------------

  /** `packet` (a compound RTCP packet) encrypted, with E flag, SRTCP index and tag; in `out` when given (length + 14), else a new buffer. */
  protectRtcp(packet: Buffer, out?: Buffer): Buffer {
    if (packet.length < 8) throw new Error('not an RTCP packet');
    const ssrc = packet.readUInt32BE(4);
    const index = this.srtcpIndex;
    this.srtcpIndex = (this.srtcpIndex + 1) & 0x7fffffff;
    const dst = outputBuffer(out, packet.length + SRTCP_INDEX_BYTES + SRTP_AUTH_TAG_BYTES);
    packet.copy(dst, 0);
    this.rtcpIv(ssrc, index);
    this.rtcpKeys.cipher.xor(this.iv, dst, 8, packet.length - 8);
    dst.writeUInt32BE((0x80000000 | index) >>> 0, packet.length);
    const signed = packet.length + SRTCP_INDEX_BYTES;
    this.tag(this.rtcpKeys, dst, signed, undefined).copy(dst, signed, 0, SRTP_AUTH_TAG_BYTES);
    return dst;
  }

  /** The decrypted compound RTCP packet (a view of `packet`), or undefined when refused. */
  unprotectRtcp(packet: Buffer): Buffer | undefined {
    const signed = packet.length - SRTP_AUTH_TAG_BYTES;
    const bodyLen = signed - SRTCP_INDEX_BYTES;
    if (bodyLen < 8 || packet[0]! >> 6 !== 2) {
      this.counters.malformed++;
      return undefined;
    }
    const ssrc = packet.readUInt32BE(4);
    const word = packet.readUInt32BE(bodyLen);
    const encrypted = word >>> 31 === 1;
    const index = word & 0x7fffffff;
    const window = this.rtcpWindows.get(ssrc);
    if (window && !window.isNew(index)) {
      this.counters.replays++;
      return undefined;
    }
    const tag = this.tag(this.rtcpKeys, packet, signed, undefined);
    if (!timingSafeEqual(tag.subarray(0, SRTP_AUTH_TAG_BYTES), packet.subarray(signed))) {
      this.counters.authFailures++;
      return undefined;
    }
    if (encrypted) {
      this.rtcpIv(ssrc, index);
      this.rtcpKeys.cipher.xor(this.iv, packet, 8, bodyLen - 8);
    }
    this.rtcpWindow(ssrc).commit(index);
    this.counters.unprotected++;
    return packet.subarray(0, bodyLen);
  }

  // ---- internals --------------------------------------------------------------------------------

  private sendRoc(ssrc: number, seq: number): number {
    let s = this.sendStreams.get(ssrc);
    if (!s) {
      if (this.sendStreams.size >= MAX_STREAMS) this.sendStreams.clear();
      s = { roc: 0, lastSeq: seq };
      this.sendStreams.set(ssrc, s);
      return 0;
    }
    const index = estimateIndex(s.roc * 0x10000 + s.lastSeq, seq);
    const roc = Math.max(0, Math.floor(index / 0x10000));
    if (index > s.roc * 0x10000 + s.lastSeq) {
      s.roc = roc;
      s.lastSeq = seq;
    }
    return roc;
  }

  private receiveStream(ssrc: number): RtpStream {
    let s = this.receiveStreams.get(ssrc);
    if (!s) {
      if (this.receiveStreams.size >= MAX_STREAMS) this.receiveStreams.clear();
      s = { window: new ReplayWindow() };
      this.receiveStreams.set(ssrc, s);
    }
    return s;
  }

  private rtcpWindow(ssrc: number): ReplayWindow {
    let w = this.rtcpWindows.get(ssrc);
    if (!w) {
      if (this.rtcpWindows.size >= MAX_STREAMS) this.rtcpWindows.clear();
      w = new ReplayWindow();
      this.rtcpWindows.set(ssrc, w);
    }
    return w;
  }

  /** IV = (k_s << 16) XOR (SSRC << 64) XOR (index << 16), index = ROC || SEQ (RFC 3711 §4.1.1). */
  private rtpIv(ssrc: number, roc: number, seq: number): void {
    const iv = this.iv;
    const salt = this.rtpKeys.salt;
    salt.copy(iv, 0);
    iv[14] = 0;
    iv[15] = 0;
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
    iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
  }

  /** SRTCP: the same layout with the 31-bit SRTCP index in place of ROC || SEQ. */
  private rtcpIv(ssrc: number, index: number): void {
    const iv = this.iv;
    this.rtcpKeys.salt.copy(iv, 0);
    iv[14] = 0;
    iv[15] = 0;
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    // index << 16 occupies bytes 8..13; a 31-bit index fits bytes 10..13
    iv.writeUInt32BE((iv.readUInt32BE(10) ^ index) >>> 0, 10);
  }

  private rtpTag(packet: Buffer, length: number, roc: number): Buffer {
    return this.tag(this.rtpKeys, packet, length, roc);
  }

  private tag(keys: Keys, packet: Buffer, length: number, roc: number | undefined): Buffer {
    const h = createHmac('sha1', keys.auth);
    h.update(packet.subarray(0, length));
    if (roc !== undefined) {
      this.rocBytes.writeUInt32BE(roc >>> 0, 0);
      h.update(this.rocBytes);
    }
    return h.digest();
  }
}

function outputBuffer(out: Buffer | undefined, length: number): Buffer {
  if (out === undefined) return Buffer.allocUnsafe(length);
  if (out.length < length) throw new Error(`SRTP output buffer of ${out.length} bytes is shorter than ${length}`);
  return out.subarray(0, length);
}

interface Keys {
  cipher: AesCmKeystream;
  auth: KeyObject;
  salt: Buffer;
}

function toKeys(k: SessionKeys): Keys {
  return { cipher: new AesCmKeystream(k.encryptionKey), auth: createSecretKey(k.authKey), salt: k.salt };
}

/**
 * The packet index a sequence number most likely has, given the highest index seen (RFC 3711
 * Appendix A): the one of ROC-1, ROC, ROC+1 that puts `seq` nearest to the highest sequence number.
 * -1 when it would lie before index 0.
 */
export function estimateIndex(highest: number, seq: number): number {
  const roc = Math.floor(highest / 0x10000);
  const sl = highest % 0x10000;
  let v = roc;
  if (sl < 0x8000) {
    if (seq - sl > 0x8000) v = roc - 1;
  } else if (sl - 0x8000 > seq) {
    v = roc + 1;
  }
  if (v < 0) return -1;
  return v * 0x10000 + seq;
}

/** Length of the RTP header (fixed part, CSRCs, extension) within `length` bytes, or -1 if it does not fit. */
export function rtpHeaderLength(packet: Buffer, length: number): number {
  if (length < 12 || packet[0]! >> 6 !== 2) return -1;
  let len = 12 + 4 * (packet[0]! & 0x0f);
  if (len > length) return -1;
  if (packet[0]! & 0x10) {
    if (len + 4 > length) return -1;
    len += 4 + 4 * packet.readUInt16BE(len + 2);
    if (len > length) return -1;
  }
  return len;
}
