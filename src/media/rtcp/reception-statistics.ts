import type { ReceptionState } from '../native/offload-types';
import type { ReportBlock } from './rtcp-packets';

const SEQ_MOD = 0x10000;
/** RFC 3550 A.1: a jump forward of up to this many is loss; farther (or far back) is a restart or a stray. */
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;

/**
 * Reception statistics for the stream a leg receives (RFC 3550 A.1, A.3, A.8): extended highest sequence
 * number, cumulative and interval (fraction) loss, and interarrival jitter. One source at a time: a new
 * SSRC starts the counters afresh (the peer restarted its stream or the call was transferred). No
 * probation: the leg has already checked the packet's source (latching, SRTP) before it counts here.
 *
 * Jitter (A.8): with S the RTP timestamp and R the arrival time in the same units,
 *   D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}),   J += (|D| - J) / 16.
 * Arrival times come from the caller (the leg's clock), converted with `clockRate`.
 */
export class ReceptionStatistics {
  private ssrc = -1;
  private baseSeq = 0;
  private maxSeq = 0;
  private badSeq = SEQ_MOD + 1;
  private cycles = 0;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private transit = 0;
  private jitterUnits = 0;
  private haveTransit = false;
  private lastFraction = 0;
  /** Middle 32 bits of the NTP time of the source's last SR, and when it arrived (ms). */
  private lsr = 0;
  private lsrArrivalMs = 0;

  constructor(private readonly clockRate: number) {}

  /** The SSRC being received (undefined before the first packet). */
  get sourceSsrc(): number | undefined {
    return this.ssrc < 0 ? undefined : this.ssrc;
  }

  /** Packets counted (duplicates included, as in RFC 3550 A.3). */
  get packetsReceived(): number {
    return this.received;
  }

  /** Interarrival jitter in RTP timestamp units (not rounded). */
  get jitter(): number {
    return this.jitterUnits;
  }

  /** Per received RTP packet: a few integer operations, no allocation. `arrivalMs` from the leg's clock. */
  onPacket(ssrc: number, seq: number, rtpTimestamp: number, arrivalMs: number): void {
    if (ssrc !== this.ssrc) {
      this.ssrc = ssrc;
      this.restart(seq);
      this.lsr = 0;
      this.haveTransit = false;
      this.jitterUnits = 0;
      this.lastFraction = 0;
    } else if (!this.updateSeq(seq)) {
      return;
    }
    this.received++;
    // A.8, with the 32-bit wrap of both clocks taken care of by signed 32-bit arithmetic.
    const arrival = Math.floor((arrivalMs * this.clockRate) / 1000) % 0x100000000;
    const transit = (arrival - rtpTimestamp) | 0;
    if (this.haveTransit) {
      const d = Math.abs((transit - this.transit) | 0);
      this.jitterUnits += (d - this.jitterUnits) / 16;
    }
    this.transit = transit;
    this.haveTransit = true;
  }

  /** The source's SR arrived (for LSR/DLSR in our next report block). */
  onSenderReport(ssrc: number, ntpMiddle: number, arrivalMs: number): void {
    if (ssrc !== this.ssrc) return;
    this.lsr = ntpMiddle;
    this.lsrArrivalMs = arrivalMs;
  }

  /** Cumulative lost (expected - received; negative with duplicates). */
  get cumulativeLost(): number {
    if (this.ssrc < 0) return 0;
    return this.extendedMax() - this.baseSeq + 1 - this.received;
  }

  /** Loss fraction (0..1) reported in the last block. */
  get fractionLost(): number {
    return this.lastFraction / 256;
  }

  /**
   * A report block for the source (undefined before the first packet). Closes the loss interval (A.3):
   * the fraction is over the packets expected since the previous block.
   */
  block(nowMs: number): ReportBlock | undefined {
    if (this.ssrc < 0) return undefined;
    const extMax = this.extendedMax();
    const expected = extMax - this.baseSeq + 1;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    this.lastFraction = expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    return {
      ssrc: this.ssrc,
      fractionLost: this.lastFraction,
      cumulativeLost: expected - this.received,
      extendedHighestSeq: extMax >>> 0,
      jitter: Math.floor(this.jitterUnits),
      lsr: this.lsr,
      dlsr: this.lsr === 0 ? 0 : Math.max(0, Math.round(((nowMs - this.lsrArrivalMs) * 65536) / 1000)),
    };
  }

  /** The A.1/A.3/A.8 state, for the native relay to continue counting (src/media/native/offload-types.ts). */
  exportState(): ReceptionState {
    return {
      ssrc: this.ssrc,
      baseSeq: this.baseSeq,
      maxSeq: this.maxSeq,
      badSeq: this.badSeq,
      cycles: this.cycles,
      received: this.received,
      expectedPrior: this.expectedPrior,
      receivedPrior: this.receivedPrior,
      transit: this.transit,
      jitterUnits: this.jitterUnits,
      haveTransit: this.haveTransit,
    };
  }

  /**
   * Take the state the native relay counted on; `sourceChanged`: it saw a new SSRC meanwhile (the source's
   * LSR and the last fraction are forgotten, as onPacket does on a new SSRC).
   */
  importState(s: ReceptionState, sourceChanged: boolean): void {
    this.ssrc = s.ssrc;
    this.baseSeq = s.baseSeq;
    this.maxSeq = s.maxSeq;
    this.badSeq = s.badSeq;
    this.cycles = s.cycles;
    this.received = s.received;
    this.expectedPrior = s.expectedPrior;
    this.receivedPrior = s.receivedPrior;
    this.transit = s.transit;
    this.jitterUnits = s.jitterUnits;
    this.haveTransit = s.haveTransit;
    if (sourceChanged) {
      this.lsr = 0;
      this.lastFraction = 0;
    }
  }

  private extendedMax(): number {
    return this.cycles + this.maxSeq;
  }

  private restart(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = SEQ_MOD + 1;
    this.cycles = 0;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
  }

  /** RFC 3550 A.1 update_seq (without probation). False: the packet is not counted. */
  private updateSeq(seq: number): boolean {
    const udelta = (seq - this.maxSeq + SEQ_MOD) % SEQ_MOD;
    if (udelta < MAX_DROPOUT) {
      if (seq < this.maxSeq) this.cycles += SEQ_MOD; // wrapped
      this.maxSeq = seq;
    } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
      // A very large jump: two sequential packets mean the sender restarted its sequence.
      if (seq === this.badSeq) {
        this.restart(seq);
      } else {
        this.badSeq = (seq + 1) % SEQ_MOD;
        return false;
      }
    }
    // else: a duplicate or a reordered packet; counted, max unchanged.
    return true;
  }
}
