import { deriveSessionKeys, type SessionKeys } from './key-derivation';
import { ReplayWindow } from './replay-window';
import { AES_CM_128_HMAC_SHA1_80, srtpProfile, type SrtpProfileName, type SrtpProfileSpec } from './srtp-profile';
import { AesCmHmacTransform, AesGcmTransform, type SrtpTransform } from './srtp-transforms';

/** AES_CM_128_HMAC_SHA1_80: 80-bit authentication tag. */
export const SRTP_AUTH_TAG_BYTES = 10;
/** A peer rotating SSRCs cannot grow the per-stream state without bound. */
const MAX_STREAMS = 64;

export interface SrtpMaster {
  /** 16 bytes */
  masterKey: Buffer;
  /** 14 bytes (AES-CM) or 12 (GCM) */
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

export interface SrtpContextOptions {
  /** The SRTCP index of the first RTCP packet this context protects (RFC 7714 test vectors start at 0x5d4). */
  srtcpIndex?: number;
}

/** Per-SSRC send state (RFC 3711 §3.3.1: the sender's ROC and highest sequence number). */
interface SendStream {
  roc: number;
  lastSeq: number;
}

/**
 * The per-SSRC RTP state of a context, to hand a stream between this context and a native one
 * (src/media/native/native-srtp.ts) mid-call: receive = the highest accepted 48-bit index and the replay
 * window below it (ReplayWindow.exportBits' form), send = the sender's ROC and highest sequence number.
 * SRTCP state is not part of it (SRTCP stays in JavaScript).
 */
export interface SrtpRtpState {
  receive: { ssrc: number; highestIndex: number; window: Uint8Array }[];
  send: { ssrc: number; roc: number; lastSeq: number }[];
}

/**
 * One SRTP cryptographic context (RFC 3711 §3.2) for ONE direction, for either profile browsers
 * negotiate: AES_CM_128_HMAC_SHA1_80 (the default, and SDES on the phone leg) or AEAD_AES_128_GCM
 * (RFC 7714). The context made from the peer's master key unprotects what it sends; the one made from
 * ours protects what we send. Reusable for any leg (SDES keys from SDP, or keys exported from DTLS).
 *
 * - State is ferry's own: per-SSRC rollover counter and replay window (RFC 3711 §3.3.1, §3.3.2 and
 *   Appendix A index estimation; ROC starts at 0 as SDES and DTLS-SRTP require), the SRTCP index we send,
 *   a replay window per SSRC for SRTCP.
 * - Unprotect checks the replay window, then the tag (constant time), and only then decrypts, in place:
 *   the result is a view of the same buffer without the trailer. A refused packet returns undefined and
 *   is counted; nothing throws on hostile input. A forged packet never moves the window.
 * - The RTP header is read by offsets (no packet objects); per packet the only new objects are those
 *   node:crypto makes (srtp-transforms.ts) and, for protect, the output buffer unless one is passed in.
 */
export class SrtpContext {
  readonly profile: SrtpProfileSpec;
  private readonly transform: SrtpTransform;
  private readonly receiveStreams = new Map<number, ReplayWindow>();
  private readonly rtcpWindows = new Map<number, ReplayWindow>();
  private readonly sendStreams = new Map<number, SendStream>();
  /** The last stream each way and its SSRC (always also in its Map, until the Map is cleared). */
  private lastReceivedSsrc = -1;
  private lastReceived: ReplayWindow | undefined;
  private lastSentSsrc = -1;
  private lastSent: SendStream | undefined;
  private srtcpIndex: number;
  private lastIndex = -1;
  private readonly rtpKeys: SessionKeys;
  readonly counters: SrtpCounters = { unprotected: 0, authFailures: 0, replays: 0, malformed: 0 };

  /** From a master key and salt (SDES, DTLS-SRTP), deriving the session keys (RFC 3711 §4.3). */
  constructor(master: SrtpMaster, profile: SrtpProfileName | SrtpProfileSpec = AES_CM_128_HMAC_SHA1_80, options: SrtpContextOptions & { sessionKeys?: { rtp: SessionKeys; rtcp: SessionKeys } } = {}) {
    this.profile = typeof profile === 'string' ? srtpProfile(profile) : profile;
    const keys = options.sessionKeys ?? deriveSessionKeys(master.masterKey, master.masterSalt, this.profile);
    this.transform = this.profile.aead ? new AesGcmTransform(keys.rtp, keys.rtcp) : new AesCmHmacTransform(keys.rtp, keys.rtcp);
    this.rtpKeys = keys.rtp;
    this.srtcpIndex = (options.srtcpIndex ?? 0) & 0x7fffffff;
  }

  /** From session keys directly (the RFC 7714 test vectors give those, not a master key). */
  static fromSessionKeys(keys: { rtp: SessionKeys; rtcp: SessionKeys }, profile: SrtpProfileName | SrtpProfileSpec, options: SrtpContextOptions = {}): SrtpContext {
    return new SrtpContext({ masterKey: Buffer.alloc(0), masterSalt: Buffer.alloc(0) }, profile, { ...options, sessionKeys: keys });
  }

  /** Bytes protectRtp adds (10 for AES-CM, 16 for GCM). */
  get rtpOverhead(): number {
    return this.transform.rtpTrailer;
  }

  /** Bytes protectRtcp adds (14 for AES-CM, 20 for GCM). */
  get rtcpOverhead(): number {
    return this.transform.rtcpTrailer;
  }

  /** The 48-bit packet index (ROC * 65536 + SEQ) of the last RTP packet unprotectRtp accepted; -1 before any. */
  get lastRtpIndex(): number {
    return this.lastIndex;
  }

  /** The receiver's rollover counter for `ssrc` (from the highest index accepted), undefined before its first packet. */
  receiveRoc(ssrc: number): number | undefined {
    const w = this.receiveStreams.get(ssrc >>> 0);
    return w ? Math.floor(w.highestIndex / 0x10000) : undefined;
  }

  /** The sender's rollover counter for `ssrc`, undefined before its first packet. */
  sendRoc(ssrc: number): number | undefined {
    return this.sendStreams.get(ssrc >>> 0)?.roc;
  }

  /** This direction's RTP session keys (for a native context doing the same work: native-srtp.ts). Not for logs. */
  get rtpSessionKeys(): SessionKeys {
    return this.rtpKeys;
  }

  /** The per-SSRC RTP state (receive windows, send ROCs): see SrtpRtpState. */
  exportRtpState(): SrtpRtpState {
    const receive: SrtpRtpState['receive'] = [];
    for (const [ssrc, w] of this.receiveStreams) if (w.highestIndex >= 0) receive.push({ ssrc, highestIndex: w.highestIndex, window: w.exportBits() });
    const send: SrtpRtpState['send'] = [];
    for (const [ssrc, s] of this.sendStreams) send.push({ ssrc, roc: s.roc, lastSeq: s.lastSeq });
    return { receive, send };
  }

  /**
   * Take over per-SSRC RTP state (from a native context that carried the stream meanwhile): each entry
   * replaces that SSRC's state, other SSRCs are kept; the 64-stream bound applies as for new packets.
   * Everything is validated before anything changes (throws on a bad entry).
   */
  importRtpState(state: SrtpRtpState): void {
    const receive = state.receive.map((r) => ({ ssrc: checkSsrc(r.ssrc), window: ReplayWindow.fromBits(r.highestIndex, r.window) }));
    const send = state.send.map((s) => {
      if (!Number.isInteger(s.roc) || s.roc < 0 || s.roc > 0xffffffff) throw new Error(`SRTP state: ROC ${s.roc} out of range`);
      if (!Number.isInteger(s.lastSeq) || s.lastSeq < 0 || s.lastSeq > 0xffff) throw new Error(`SRTP state: sequence number ${s.lastSeq} out of range`);
      return { ssrc: checkSsrc(s.ssrc), stream: { roc: s.roc, lastSeq: s.lastSeq } };
    });
    for (const r of receive) {
      if (!this.receiveStreams.has(r.ssrc) && this.receiveStreams.size >= MAX_STREAMS) this.receiveStreams.clear();
      this.receiveStreams.set(r.ssrc, r.window);
    }
    for (const s of send) {
      if (!this.sendStreams.has(s.ssrc) && this.sendStreams.size >= MAX_STREAMS) this.sendStreams.clear();
      this.sendStreams.set(s.ssrc, s.stream);
    }
    this.lastReceivedSsrc = -1;
    this.lastReceived = undefined;
    this.lastSentSsrc = -1;
    this.lastSent = undefined;
  }

  // ---- RTP --------------------------------------------------------------------------------------

  /**
   * `packet` protected (trailer appended), in `out` when given (at least packet.length + rtpOverhead
   * bytes; the result is a view of it) or in a new buffer. `packet` itself is left untouched. With
   * `ssrc`, that SSRC is written into the copy and used (a leg stamping its signalled SSRC).
   */
  protectRtp(packet: Buffer, out?: Buffer, ssrc?: number): Buffer {
    const length = packet.length;
    const headerLen = rtpHeaderLength(packet, length);
    if (headerLen < 0) throw new Error('not an RTP packet');
    const dst = outputBuffer(out, length + this.transform.rtpTrailer);
    packet.copy(dst, 0, 0, length);
    if (ssrc !== undefined) dst.writeUInt32BE(ssrc >>> 0, 8);
    const s = dst.readUInt32BE(8);
    const seq = dst.readUInt16BE(2);
    const roc = this.nextSendRoc(s, seq);
    this.transform.protectRtp(dst, headerLen, length, s, roc, seq);
    return dst;
  }

  /** The decrypted packet (a view of `packet`, decrypted in place), or undefined when refused. */
  unprotectRtp(packet: Buffer): Buffer | undefined {
    const bodyLen = packet.length - this.transform.rtpTrailer;
    const headerLen = bodyLen >= 12 ? rtpHeaderLength(packet, bodyLen) : -1;
    if (headerLen < 0) {
      this.counters.malformed++;
      return undefined;
    }
    const ssrc = packet.readUInt32BE(8);
    const seq = packet.readUInt16BE(2);
    const window = this.lastReceived !== undefined && this.lastReceivedSsrc === ssrc ? this.lastReceived : this.receiveStreams.get(ssrc);
    const index = window === undefined || window.highestIndex < 0 ? seq : estimateIndex(window.highestIndex, seq);
    if (index < 0 || (window !== undefined && !window.isNew(index))) {
      this.counters.replays++;
      return undefined;
    }
    const roc = Math.floor(index / 0x10000);
    if (!this.transform.unprotectRtp(packet, headerLen, bodyLen, ssrc, roc, seq)) {
      this.counters.authFailures++;
      return undefined;
    }
    const committed = window ?? this.window(this.receiveStreams, ssrc);
    committed.commit(index);
    // the stream of the next packet, most likely: no Map lookup (keyed by a number above 2^31 for half of all SSRCs)
    this.lastReceivedSsrc = ssrc;
    this.lastReceived = committed;
    this.lastIndex = index;
    this.counters.unprotected++;
    return packet.subarray(0, bodyLen);
  }

  // ---- RTCP -------------------------------------------------------------------------------------

  /** `packet` (a compound RTCP packet) encrypted, with E flag, SRTCP index and tag; in `out` when given (length + rtcpOverhead), else a new buffer. */
  protectRtcp(packet: Buffer, out?: Buffer): Buffer {
    const length = packet.length;
    if (length < 8) throw new Error('not an RTCP packet');
    const index = this.srtcpIndex;
    this.srtcpIndex = (this.srtcpIndex + 1) & 0x7fffffff;
    const dst = outputBuffer(out, length + this.transform.rtcpTrailer);
    packet.copy(dst, 0, 0, length);
    this.transform.protectRtcp(dst, length, dst.readUInt32BE(4), (0x80000000 | index) >>> 0);
    return dst;
  }

  /** The decrypted compound RTCP packet (a view of `packet`), or undefined when refused. */
  unprotectRtcp(packet: Buffer): Buffer | undefined {
    const bodyLen = packet.length - this.transform.rtcpTrailer;
    if (bodyLen < 8 || packet[0]! >> 6 !== 2) {
      this.counters.malformed++;
      return undefined;
    }
    const ssrc = packet.readUInt32BE(4);
    const word = packet.readUInt32BE(packet.length - this.transform.rtcpIndexFromEnd);
    const index = word & 0x7fffffff;
    const window = this.rtcpWindows.get(ssrc);
    if (window !== undefined && !window.isNew(index)) {
      this.counters.replays++;
      return undefined;
    }
    if (!this.transform.unprotectRtcp(packet, bodyLen, ssrc, word)) {
      this.counters.authFailures++;
      return undefined;
    }
    this.window(this.rtcpWindows, ssrc).commit(index);
    this.counters.unprotected++;
    return packet.subarray(0, bodyLen);
  }

  // ---- internals --------------------------------------------------------------------------------

  /** The sender's ROC for this packet: it increments when SEQ wraps (RFC 3711 §3.3.1); a late retransmission keeps the older ROC. */
  private nextSendRoc(ssrc: number, seq: number): number {
    let s = this.lastSent !== undefined && this.lastSentSsrc === ssrc ? this.lastSent : this.sendStreams.get(ssrc);
    if (s === undefined) {
      if (this.sendStreams.size >= MAX_STREAMS) this.sendStreams.clear();
      s = { roc: 0, lastSeq: seq };
      this.sendStreams.set(ssrc, s);
      this.lastSentSsrc = ssrc;
      this.lastSent = s;
      return 0;
    }
    this.lastSentSsrc = ssrc;
    this.lastSent = s;
    const highest = s.roc * 0x10000 + s.lastSeq;
    const index = estimateIndex(highest, seq);
    if (index < 0) return 0;
    if (index > highest) {
      s.roc = Math.floor(index / 0x10000);
      s.lastSeq = seq;
    }
    return Math.floor(index / 0x10000);
  }

  private window(map: Map<number, ReplayWindow>, ssrc: number): ReplayWindow {
    let w = map.get(ssrc);
    if (w === undefined) {
      if (map.size >= MAX_STREAMS) {
        map.clear();
        if (map === this.receiveStreams) this.lastReceived = undefined;
      }
      w = new ReplayWindow();
      map.set(ssrc, w);
    }
    return w;
  }
}

function checkSsrc(ssrc: number): number {
  if (!Number.isInteger(ssrc) || ssrc < 0 || ssrc > 0xffffffff) throw new Error(`SRTP state: SSRC ${ssrc} out of range`);
  return ssrc;
}

function outputBuffer(out: Buffer | undefined, length: number): Buffer {
  if (out === undefined) return Buffer.allocUnsafe(length);
  if (out.length < length) throw new Error(`SRTP output buffer of ${out.length} bytes is shorter than ${length}`);
  return out.subarray(0, length);
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
