/**
 * The RTCP transmission interval of RFC 3550 §6.2/§6.3 (the `rtcp_interval()` of its appendix A.7):
 * a deterministic interval from the members, senders and RTCP bandwidth, never below the minimum
 * (halved before our first report), then multiplied by a random factor in [0.5, 1.5) and divided by
 * e − 3/2 — the compensation for timer reconsideration (see RtcpSession), which on its own converges
 * below the intended rate. With reconsideration the mean interval is the deterministic one; the spread
 * is 0.41..1.23 of it.
 */
export const RECONSIDERATION_COMPENSATION = Math.E - 1.5;
/** Shares of the RTCP bandwidth for senders and receivers when senders are few (RFC 3550 §6.2). */
const SENDER_BW_FRACTION = 0.25;
const RECEIVER_BW_FRACTION = 1 - SENDER_BW_FRACTION;
/** No configuration may make reports more frequent than this (a floor on the minimum interval). */
export const RTCP_INTERVAL_FLOOR_MS = 100;

export interface IntervalInputs {
  /** Session members, ourselves included. */
  members: number;
  /** Members that sent RTP recently, ourselves included when `weSent`. */
  senders: number;
  /** Whether we sent RTP in the last two report intervals. */
  weSent: boolean;
  /** RTCP bandwidth in bytes per second (Infinity: no bandwidth limit, the minimum decides). */
  rtcpBandwidth: number;
  /** Average size of the compound RTCP packets sent and received, in bytes with UDP/IP headers. */
  avgRtcpSize: number;
  /** True until we sent our first report: the minimum is halved. */
  initial: boolean;
  /** The minimum interval Tmin in ms (RFC 3550 recommends 5 s). */
  minIntervalMs: number;
}

/** The deterministic interval Td in ms (before randomisation). */
export function deterministicInterval(i: IntervalInputs): number {
  const tmin = Math.max(RTCP_INTERVAL_FLOOR_MS, i.minIntervalMs) / (i.initial ? 2 : 1);
  let n = Math.max(1, i.members);
  let bw = i.rtcpBandwidth;
  if (i.senders > 0 && i.senders <= i.members * SENDER_BW_FRACTION) {
    if (i.weSent) {
      bw *= SENDER_BW_FRACTION;
      n = i.senders;
    } else {
      bw *= RECEIVER_BW_FRACTION;
      n -= i.senders;
    }
  }
  const byBandwidth = bw > 0 && Number.isFinite(bw) ? ((i.avgRtcpSize * n) / bw) * 1000 : 0;
  return Math.max(tmin, byBandwidth);
}

/** One randomised interval in ms: Td × [0.5, 1.5) / (e − 3/2). `random` returns [0, 1). */
export function randomisedInterval(i: IntervalInputs, random: () => number): number {
  return (deterministicInterval(i) * (0.5 + random())) / RECONSIDERATION_COMPENSATION;
}
