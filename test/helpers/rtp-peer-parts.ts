/** What the scripted RTP test peers (plain and SRTP) share: telling RTCP apart, RTCP packets, waiting on arrivals. */

/** RTCP by its packet type (192–223 in the second byte), as RFC 5761 demultiplexes it from RTP. */
export function isRtcpPacket(b: Buffer): boolean {
  return b.length >= 8 && b[1]! >= 192 && b[1]! <= 223;
}

/** An RTCP receiver report with no report blocks, from `ssrc`. */
export function rtcpReceiverReport(ssrc: number): Buffer {
  const rr = Buffer.alloc(8);
  rr[0] = 0x80;
  rr[1] = 201;
  rr.writeUInt16BE(1, 2);
  rr.writeUInt32BE(ssrc, 4);
  return rr;
}

/** An RR + BYE compound from `ssrc` (how a phone says its stream ends). */
export function rtcpReceiverReportAndBye(ssrc: number): Buffer {
  const bye = Buffer.alloc(8);
  bye[0] = 0x81;
  bye[1] = 203;
  bye.writeUInt16BE(1, 2);
  bye.writeUInt32BE(ssrc, 4);
  return Buffer.concat([rtcpReceiverReport(ssrc), bye]);
}

/** Waiters woken on every received datagram; waitFor re-checks its condition then (or every 50 ms). */
export class ArrivalWaiters {
  private waiters: (() => void)[] = [];

  /** Wakes every waiter (call on each datagram). */
  arrived(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  async waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
