/** What the scripted RTP test peers (plain and SRTP) share: telling RTCP apart, RTCP packets, waiting on arrivals. */

/** RTCP by its packet type (192–223 in the second byte), as RFC 5761 demultiplexes it from RTP. */
export function isRtcpPacket(b: Buffer): boolean {
  return b.length >= 8 && b[1]! >= 192 && b[1]! <= 223;
}

/** An 8-byte RTCP packet of `type` that carries only `ssrc` (`count`: its 5-bit count field). */
function rtcpWithSsrcOnly(type: number, count: number, ssrc: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = 0x80 | count;
  b[1] = type;
  b.writeUInt16BE(1, 2);
  b.writeUInt32BE(ssrc, 4);
  return b;
}

/** An RTCP receiver report with no report blocks, from `ssrc`. */
export function rtcpReceiverReport(ssrc: number): Buffer {
  return rtcpWithSsrcOnly(201, 0, ssrc);
}

/** An RR + BYE compound from `ssrc` (how a phone says its stream ends). */
export function rtcpReceiverReportAndBye(ssrc: number): Buffer {
  return Buffer.concat([rtcpReceiverReport(ssrc), rtcpWithSsrcOnly(203, 1, ssrc)]);
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
