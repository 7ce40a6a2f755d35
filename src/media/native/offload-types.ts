import type { Socket } from 'node:dgram';
import type { CodecTable } from '../relay/codec-table';

/**
 * The contract between ferry media's offload controller (src/media/native/offload-controller.ts) and the
 * media legs and elements whose packets the native forwarder (FERRY_MEDIA_RELAY=native, docs/native-relay.md)
 * may carry instead of JavaScript.
 *
 * A call between two elements A and B, each with a leg, is forwarded natively as two routes, one per
 * direction: the route A->B watches A's leg's socket, takes RTP from A's peer, maps its payload type by
 * codec (A's receive table -> B's send table), rewrites sequence / timestamp / SSRC with B's rewriter and
 * B's leg's SSRC, and sends it from B's leg's socket to B's peer. Everything else that arrives on a watched
 * socket (RTCP, STUN, DTLS, strangers, anything that is not plain RTP v2 of the route) is handed to the
 * socket's own 'message' listeners exactly as before, so the leg's JavaScript still sees it.
 *
 * While a route exists its figures live in the native route (the leg's and element's JavaScript counters
 * stand still); the controller brings them back into the JavaScript objects whenever someone reads them
 * (`OffloadHooks.sync`) and when the route is removed. Whatever the leg or element would do differently
 * from now on (a new peer address, hold, new codecs, new keys, closing, DTMF) must be announced through
 * `OffloadHooks.changed` BEFORE the leg or element handles another packet itself: the controller then
 * removes the routes at once (state synced back) and installs them again later if the call is still simple.
 *
 * Times are ms since the epoch as doubles (Date.now()'s clock); NaN means "never".
 */

/** An opaque native SRTP context (made by src/media/native/srtp glue from a leg's session keys); null = plain RTP. */
export type NativeSrtpHandle = object;

/** A UDP address: an IP literal (v4 or v6, the socket's family) and a port. */
export interface OffloadAddress {
  address: string;
  port: number;
}

/** What the controller needs from a leg to forward its RTP natively, as it is right now. */
export interface OffloadPath {
  /**
   * The one node:dgram socket this leg receives its peer's RTP on and sends RTP to the peer from (the RTP
   * socket of a phone leg; the nominated ICE pair's local socket of a WebRTC leg). It stays owned and
   * bound by the leg; the controller only stops Node's reading of it while a route takes it in, and always
   * gives it back (unwatch) before the leg closes it (the leg calls `changed('closing')` first).
   */
  socket: Socket;
  /**
   * The peer's exact source address for the receive filter, or null when `socket` is connect()ed to the
   * peer (the kernel filters then). A datagram from anyone else is passed up to the leg's JavaScript.
   */
  peer: OffloadAddress | null;
  /** Where RTP to the peer goes, or null when `socket` is connect()ed (then send() without an address). */
  dest: OffloadAddress | null;
  /**
   * True when RTP may be sent to the peer now (negotiated, connected, not on hold / recvonly / inactive,
   * not closing). A route INTO this leg is installed only while true.
   */
  canSend: boolean;
  /**
   * True when RTP from the peer is taken now (negotiated, connected, keys present when SRTP is on, not
   * closing). A route FROM this leg is installed only while true.
   */
  canReceive: boolean;
  /** The SSRC this leg stamps on every RTP packet it sends (the one its RTCP and getStats name). */
  ssrc: number;
  /**
   * Native SRTP context that unprotects what the peer sends, or null for plain RTP. A leg that runs SRTP
   * but has no native context yet must report `blocked` instead (see `OffloadableLeg.offloadPath`).
   */
  srtpIn: NativeSrtpHandle | null;
  /** Native SRTP context that protects what we send to the peer, or null for plain RTP. */
  srtpOut: NativeSrtpHandle | null;
  /** Clock rate of the received stream for the reception statistics' jitter (the RtcpSession's clockRate). */
  receiveClockRate: number;
}

/**
 * RFC 3550 A.1/A.3/A.8 state of src/media/rtcp/reception-statistics.ts (the fields the native copy keeps;
 * LSR/DLSR and the last fraction stay in JavaScript). `ssrc` -1 = no packet yet.
 */
export interface ReceptionState {
  ssrc: number;
  baseSeq: number;
  maxSeq: number;
  badSeq: number;
  cycles: number;
  received: number;
  expectedPrior: number;
  receivedPrior: number;
  transit: number;
  jitterUnits: number;
  haveTransit: boolean;
}

/**
 * What a route FROM a leg did since the last sync (counters are increments; state is absolute).
 * The leg adds the increments to its own counters and takes the state as it is.
 */
export interface InboundOffloadDelta {
  /** RTP packets from the peer forwarded or dropped for their payload type (LegCounters.packetsIn). */
  packets: number;
  /** Their bytes (clear RTP length, as the leg counts them). */
  bytes: number;
  /** When the last one arrived (LegCounters.lastRtpInAt), NaN when none since the last sync. */
  lastAt: number;
  /** The RtcpSession's RTP-received count increment (rtpReceived; any SSRC). */
  rtpReceived: number;
  /** The reception statistics now (absolute). */
  reception: ReceptionState;
  /** How many times the source SSRC changed (the leg's RtcpSession then forgets the source's LSR and last fraction). */
  sourceChanges: number;
  /** SRTP datagrams refused (bad tag, replay, malformed) since the last sync. */
  srtpRefused: number;
}

/** What a route INTO a leg sent since the last sync. */
export interface OutboundOffloadDelta {
  /** RTP packets sent to the peer (LegCounters.packetsOut, RtcpSession packetsSent). */
  packets: number;
  /** Their clear length in bytes (LegCounters.bytesOut). */
  bytes: number;
  /** Their payload octets (clear length - 12 each, RtcpSession octetsSent). */
  payloadOctets: number;
  /** When the last one went out (LegCounters.lastRtpOutAt and RtcpSession lastRtpSentAt), NaN when none. */
  lastAt: number;
  /** RTP timestamp of the last one sent (RtcpSession lastRtpTimestamp), meaningful only when lastAt is not NaN. */
  lastRtpTimestamp: number;
}

/** The controller's side, given to a leg (and element) that takes part in offloading. */
export interface OffloadHooks {
  /**
   * Anything `offloadPath()` returns is about to change or just changed (re-latch, connect(), retarget,
   * hold, keys, renegotiation, closing). Call it synchronously, before the leg handles another packet in
   * JavaScript: the controller removes the routes touching this leg at once (their figures come back
   * through applyInbound / applyOutbound) and reconsiders later. `reason` is for the log ('relatch', ...).
   */
  changed(reason: string): void;
  /**
   * Bring the routes' current figures into this leg now (synchronously, through applyInbound /
   * applyOutbound). Call it first thing in every reader of the figures: activity(), rtcpStats(), before
   * the RtcpSession builds a report (RtcpSessionOptions.beforeReport), /stats and getStats helpers.
   */
  sync(): void;
}

/** Why a leg cannot be offloaded now (for the log and tests), instead of an OffloadPath. */
export interface OffloadBlocked {
  blocked: string;
}

/**
 * Implemented by a MediaLeg that can be offloaded (RtpLeg, WeriftLeg). Every member is called by the
 * controller only, on the JavaScript thread of the leg.
 */
export interface OffloadableLeg {
  /**
   * The leg's current offload view, or why there is none (not negotiated, peer not latched / ICE not
   * nominated, SRTP without a native context, closing). Cheap; called on every (re)install attempt.
   */
  offloadPath(): OffloadPath | OffloadBlocked;
  /** Give (or with undefined take back) the controller's hooks; at most one controller per leg. */
  setOffloadHooks(hooks: OffloadHooks | undefined): void;
  /** The reception statistics now, for a route from this leg to start from (RtcpSession.exportReception()). */
  exportReception(): ReceptionState;
  /**
   * Take what a route from this leg did: add the counters to LegCounters (packetsIn, bytesIn, lastRtpInAt
   * when not NaN), the RtcpSession's (RtcpSession.applyOffloadedReceive), and srtpRefused to the leg's count.
   */
  applyInbound(delta: InboundOffloadDelta): void;
  /** Take what a route into this leg sent (LegCounters packetsOut, bytesOut, lastRtpOutAt; RtcpSession.applyOffloadedSend). */
  applyOutbound(delta: OutboundOffloadDelta): void;
  /**
   * Optional: a route from ('in') or into ('out') this leg was just installed with the srtpIn / srtpOut of
   * the last offloadPath(): the native context owns that direction's SRTP stream state (ROC, replay
   * window) from now on. A leg whose native contexts take the JavaScript context's state in
   * offloadPath() itself needs nothing here.
   */
  offloadRouted?(direction: 'in' | 'out'): void;
  /**
   * Optional: that route was removed (its figures already applied): the leg takes the SRTP stream state
   * back into its JavaScript context (native-srtp.ts handBackSrtpState) before it handles that direction
   * itself again.
   */
  offloadUnrouted?(direction: 'in' | 'out'): void;
}

/** State of src/media/relay/rtp-stream-rewriter.ts, exported and imported around a route. */
export interface RewriterState {
  /** SSRC of the last relayed incoming stream, -1 = none (a generated packet resets it too). */
  lastInSsrc: number;
  seqDelta: number;
  tsDelta: number;
  lastOutSeq: number;
  lastOutTs: number;
  lastOutAtMs: number;
  started: boolean;
}

/** What a route changed on the two elements since the last sync (increments). */
export interface ElementOffloadDelta {
  /** Packets that left the source element into the pipeline (its flowOutCount). */
  flowOut: number;
  /** Packets that entered the sink element from the pipeline (its flowInCount). */
  flowIn: number;
  /** Packets the sink dropped because its peer did not negotiate their codec (droppedNoCodec). */
  droppedNoCodec: number;
}

/**
 * Implemented by MediaElement for the controller: the element's side of a route (its codec table, its
 * outgoing rewriter, its flow counters). Not for legs.
 */
export interface OffloadableElement {
  /** The element's codec table (replaced, never mutated, on renegotiation). */
  readonly offloadCodecs: CodecTable;
  /** Give (or take back) the controller's hooks (`changed` on connect/disconnect/codecs/DTMF/release, `sync` before flow checks and stats). */
  setOffloadHooks(hooks: OffloadHooks | undefined): void;
  /** Its outgoing rewriter's state (for a route into its leg). */
  exportRewriter(): RewriterState;
  importRewriter(state: RewriterState): void;
  /** Add a route's element figures: `asSource` for the element the route reads from, else the sink. */
  applyFlow(delta: ElementOffloadDelta, asSource: boolean): void;
}

/** Payload type map value for "the source did not negotiate this payload type": dropped after the in-leg counters and the source element's flowOut counted it (as the JavaScript relay does). */
export const PT_UNKNOWN = 255;
/** Payload type map value for "the sink did not negotiate this codec": dropped after flowOut and the sink's flowIn counted it, counted as the sink's droppedNoCodec. */
export const PT_NOT_NEGOTIATED = 254;

/**
 * The payload type map of a route from `source`'s table to `sink`'s: index = payload type from the
 * source's peer, value = payload type towards the sink's peer, PT_UNKNOWN or PT_NOT_NEGOTIATED; and the
 * clock rate by outgoing payload type (for the rewriter's step across a source change).
 */
export function payloadTypeMap(source: CodecTable, sink: CodecTable): { ptMap: Uint8Array; clockRates: Uint32Array } {
  const ptMap = new Uint8Array(128).fill(PT_UNKNOWN);
  const clockRates = new Uint32Array(128).fill(8000);
  for (let pt = 0; pt < 128; pt++) {
    const key = source.receive[pt];
    if (key === undefined) continue;
    const out = sink.send.get(key);
    if (out === undefined || out < 0 || out > 127) {
      ptMap[pt] = PT_NOT_NEGOTIATED;
      continue;
    }
    ptMap[pt] = out;
    clockRates[out] = sink.clockRates.get(key) ?? 8000;
  }
  return { ptMap, clockRates };
}

export function isOffloadBlocked(v: OffloadPath | OffloadBlocked): v is OffloadBlocked {
  return 'blocked' in v;
}
