import type { RewriterState } from '../native/offload-types';

/**
 * Rewrites relayed RTP for one outgoing leg, in place: payload type (mapped by the caller), one SSRC
 * per outgoing leg, and sequence number / timestamp continuity when the incoming stream changes
 * (new source element connected, or the source's SSRC changed). The first packet after a change gets
 * the marker bit. Hot path: no allocation, a handful of integer reads and writes.
 */
export class RtpStreamRewriter {
  private lastInSsrc = -1;
  private seqDelta = 0;
  private tsDelta = 0;
  /** Random until the first packet goes out, so a stream that starts with a generated packet starts at random values (RFC 3550). */
  private lastOutSeq = (Math.random() * 0x10000) & 0xffff;
  private lastOutTs = (Math.random() * 0x100000000) >>> 0;
  private lastOutAtMs = 0;
  private started = false;

  constructor(readonly outSsrc: number) {}

  rewrite(packet: Buffer, payloadType: number, clockRate: number, now: number): void {
    const inSsrc = packet.readUInt32BE(8);
    const inSeq = packet.readUInt16BE(2);
    const inTs = packet.readUInt32BE(4);
    let marker = packet[1]! & 0x80;
    if (inSsrc !== this.lastInSsrc) {
      if (this.started) {
        const elapsedTs = Math.max(1, Math.round(((now - this.lastOutAtMs) * clockRate) / 1000));
        this.seqDelta = (this.lastOutSeq + 1 - inSeq) & 0xffff;
        this.tsDelta = (this.lastOutTs + elapsedTs - inTs) >>> 0;
        marker = 0x80;
      }
      this.lastInSsrc = inSsrc;
      this.started = true;
    }
    const outSeq = (inSeq + this.seqDelta) & 0xffff;
    const outTs = (inTs + this.tsDelta) >>> 0;
    packet[1] = marker | (payloadType & 0x7f);
    packet.writeUInt16BE(outSeq, 2);
    packet.writeUInt32BE(outTs, 4);
    packet.writeUInt32BE(this.outSsrc, 8);
    this.lastOutSeq = outSeq;
    this.lastOutTs = outTs;
    this.lastOutAtMs = now;
  }

  /**
   * The RTP timestamp this outgoing stream is at `now` (the last packet's stream position plus the time
   * since it went out), for a packet the element generates itself (ferry's `sendDtmf`, RFC 4733).
   */
  currentTimestamp(clockRate: number, now: number): number {
    if (!this.started) return this.lastOutTs;
    return (this.lastOutTs + Math.max(0, Math.round(((now - this.lastOutAtMs) * clockRate) / 1000))) >>> 0;
  }

  /**
   * Stamps a packet the element generates itself: the next sequence number of this stream, `payloadType`
   * (the packet's own marker bit and timestamp are kept), the outgoing SSRC. `streamTs` is where the
   * stream is after this packet (for an RFC 4733 event: its timestamp plus its duration so far): the
   * next relayed packet is re-anchored after it (and marked), so sequence and time stay continuous.
   */
  stampGenerated(packet: Buffer, payloadType: number, streamTs: number, now: number): void {
    const outSeq = (this.lastOutSeq + 1) & 0xffff;
    packet[1] = (packet[1]! & 0x80) | (payloadType & 0x7f);
    packet.writeUInt16BE(outSeq, 2);
    packet.writeUInt32BE(this.outSsrc, 8);
    this.lastOutSeq = outSeq;
    this.lastOutTs = streamTs >>> 0;
    this.lastOutAtMs = now;
    this.lastInSsrc = -1;
    this.started = true;
  }

  /** The state, for the native relay to continue this stream (src/media/native/offload-types.ts). */
  exportState(): RewriterState {
    return {
      lastInSsrc: this.lastInSsrc,
      seqDelta: this.seqDelta,
      tsDelta: this.tsDelta,
      lastOutSeq: this.lastOutSeq,
      lastOutTs: this.lastOutTs,
      lastOutAtMs: this.lastOutAtMs,
      started: this.started,
    };
  }

  /** Take the state back from the native relay (same semantics, so the stream continues seamlessly). */
  importState(s: RewriterState): void {
    this.lastInSsrc = s.lastInSsrc;
    this.seqDelta = s.seqDelta;
    this.tsDelta = s.tsDelta;
    this.lastOutSeq = s.lastOutSeq;
    this.lastOutTs = s.lastOutTs;
    this.lastOutAtMs = s.lastOutAtMs;
    this.started = s.started;
  }
}
