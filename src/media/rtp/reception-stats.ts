import type { ReportBlock } from './rtcp-packets';

/** Per-source reception counters for RTCP report blocks (RFC 3550 A.1, without probation). */
export class ReceptionStats {
  private ssrc = -1;
  private baseSeq = 0;
  private maxSeq = 0;
  private cycles = 0;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;

  /** Called per received RTP packet: a few integer operations. */
  onPacket(ssrc: number, seq: number): void {
    if (ssrc !== this.ssrc) {
      this.ssrc = ssrc;
      this.baseSeq = seq;
      this.maxSeq = seq;
      this.cycles = 0;
      this.received = 1;
      this.expectedPrior = 0;
      this.receivedPrior = 0;
      return;
    }
    this.received++;
    const delta = (seq - this.maxSeq) & 0xffff;
    if (delta > 0 && delta < 0x8000) {
      if (seq < this.maxSeq) this.cycles += 0x10000;
      this.maxSeq = seq;
    }
  }

  block(): ReportBlock | undefined {
    if (this.ssrc < 0) return undefined;
    const extMax = this.cycles + this.maxSeq;
    const expected = extMax - this.baseSeq + 1;
    const lost = expected - this.received;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fraction = expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval << 8) / expectedInterval);
    return { ssrc: this.ssrc, fractionLost: fraction, cumulativeLost: lost, extendedHighestSeq: extMax, jitter: 0 };
  }
}
