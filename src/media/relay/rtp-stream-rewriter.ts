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
  private lastOutSeq = 0;
  private lastOutTs = 0;
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
}
