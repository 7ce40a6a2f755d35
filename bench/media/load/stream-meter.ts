import { LogHistogram } from './log-histogram';
import { type Direction, hasStampAt, rtpPayloadOffset } from './stream-stamp';

/** What one worker saw during one measurement epoch (sent by it, received by it). */
export interface EpochReport {
  epoch: number;
  /** Packets sent, indexed by direction (0 = a-to-b, 1 = b-to-a). */
  sent: [number, number];
  /** Packets received that were sent in this epoch, by direction. */
  received: [number, number];
  /** Sends skipped because the pacer fell more than one period behind (generator overload). */
  skipped: number;
  /** Distinct streams that received at least one packet of this epoch. */
  streamsHeard: number;
  /** Their stream ids (to name the silent ones). */
  heardIds: number[];
  /** Per stream: [streamId, packets sent in this epoch] (for loss among the streams that work at all). */
  sentByStream: [number, number][];
  /** Per stream: [streamId, packets of this epoch received]. */
  receivedByStream: [number, number][];
  /** One-way latency histogram counts (us, LogHistogram buckets). */
  latencyCounts: number[];
}

class EpochCounters {
  readonly sent: [number, number] = [0, 0];
  readonly received: [number, number] = [0, 0];
  skipped = 0;
  readonly streamsHeard = new Set<number>();
  readonly sentByStream = new Map<number, number>();
  readonly receivedByStream = new Map<number, number>();
  readonly latency = new LogHistogram();
}

/** Counts stamped packets per epoch on the sending and receiving side of a load worker. */
export class StreamMeter {
  private readonly epochs = new Map<number, EpochCounters>();
  /** Unstamped or foreign packets received (RTCP is counted separately by the caller). */
  foreign = 0;

  private counters(epoch: number): EpochCounters {
    let c = this.epochs.get(epoch);
    if (!c) {
      c = new EpochCounters();
      this.epochs.set(epoch, c);
    }
    return c;
  }

  onSent(epoch: number, direction: Direction, streamId: number): void {
    if (epoch === 0) return;
    const c = this.counters(epoch);
    c.sent[direction] += 1;
    c.sentByStream.set(streamId, (c.sentByStream.get(streamId) ?? 0) + 1);
  }

  onSkipped(epoch: number, count: number): void {
    if (epoch !== 0) this.counters(epoch).skipped += count;
  }

  /** Account a received RTP payload; returns false if it carried no stamp of ours. */
  onReceived(payload: Buffer, nowNs: bigint): boolean {
    return this.onReceivedAt(payload, 0, nowNs);
  }

  /** Account a received plain RTP packet (its payload found in place); false if it is not stamped RTP of ours. */
  onReceivedRtp(packet: Buffer, nowNs: bigint): boolean {
    return this.onReceivedAt(packet, rtpPayloadOffset(packet), nowNs);
  }

  /** Account the stamp at `offset` of `buf` (read in place: no payload view, no stamp object per packet). */
  onReceivedAt(buf: Buffer, offset: number, nowNs: bigint): boolean {
    if (!hasStampAt(buf, offset)) {
      this.foreign += 1;
      return false;
    }
    const epoch = buf[offset + 8]!;
    if (epoch === 0) return true;
    const direction = buf[offset + 9] as Direction;
    const streamId = buf.readUInt32BE(offset + 4);
    const c = this.counters(epoch);
    c.received[direction] += 1;
    c.streamsHeard.add(streamId);
    c.receivedByStream.set(streamId, (c.receivedByStream.get(streamId) ?? 0) + 1);
    c.latency.record(Number(nowNs - buf.readBigInt64BE(offset + 10)) / 1000);
    return true;
  }

  report(epoch: number): EpochReport {
    const c = this.counters(epoch);
    return {
      epoch,
      sent: [c.sent[0], c.sent[1]],
      received: [c.received[0], c.received[1]],
      skipped: c.skipped,
      streamsHeard: c.streamsHeard.size,
      heardIds: [...c.streamsHeard],
      sentByStream: [...c.sentByStream.entries()],
      receivedByStream: [...c.receivedByStream.entries()],
      latencyCounts: [...c.latency.counts],
    };
  }

  forget(epoch: number): void {
    this.epochs.delete(epoch);
  }
}
