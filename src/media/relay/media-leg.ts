import type { EventEmitter } from 'node:events';
import type { RtcpStreamStats } from '../rtcp/rtcp-session';

/**
 * The contract between a media element (RtpEndpoint, WebRtcEndpoint in src/media/objects/) and the
 * transport that carries its packets to the outside world (a plain RTP/RTCP socket pair in
 * src/media/rtp/, or a werift PeerConnection in src/media/webrtc/). Elements relay between legs;
 * legs know sockets, SRTP, ICE and RTCP. Anything replacing werift (node-datachannel) implements this.
 *
 * Packets crossing this boundary are plain (decrypted) RTP as Buffers. A leg never rewrites payload
 * bytes; the element that forwards a packet rewrites payload type / SSRC / sequence / timestamp for
 * the leg it sends on (see the relay in this folder).
 */
export type LegEndReason =
  | 'rtcp-bye'
  | 'dtls-close'
  | 'icmp-unreachable'
  | 'ice-failed'
  | 'media-timeout'
  | 'hold-timeout'
  | 'control-release'
  | 'session-expired'
  | 'sip-bye'
  | 'sip-cancel';

/** What the leg has seen from its peer, for liveness decisions (docs/lifecycle.md). Times are ms since epoch (or of the injected clock). */
export interface LegActivity {
  lastRtpInAt: number | undefined;
  lastRtcpInAt: number | undefined;
  lastRtpOutAt: number | undefined;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** A fresh LegActivity with nothing seen yet (no packets, no times). */
export function emptyLegActivity(): LegActivity {
  return {
    lastRtpInAt: undefined,
    lastRtcpInAt: undefined,
    lastRtpOutAt: undefined,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

/**
 * A leg's activity counters as it keeps them per packet: times start as NaN ("not yet") rather than
 * undefined, so V8 keeps them as unboxed doubles and a packet's `lastRtpInAt = now` stores in place — with
 * `number | undefined` fields every such store boxed a new HeapNumber (an allocation and a write barrier
 * per packet). `snapshot()` gives the LegActivity the rest of ferry reads (undefined for "not yet").
 */
export class LegCounters {
  lastRtpInAt = NaN;
  lastRtcpInAt = NaN;
  lastRtpOutAt = NaN;
  packetsIn = 0;
  packetsOut = 0;
  bytesIn = 0;
  bytesOut = 0;

  snapshot(): LegActivity {
    return {
      lastRtpInAt: timeOrUndefined(this.lastRtpInAt),
      lastRtcpInAt: timeOrUndefined(this.lastRtcpInAt),
      lastRtpOutAt: timeOrUndefined(this.lastRtpOutAt),
      packetsIn: this.packetsIn,
      packetsOut: this.packetsOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    };
  }
}

function timeOrUndefined(t: number): number | undefined {
  return Number.isNaN(t) ? undefined : t;
}

export interface MediaLegEvents {
  /**
   * A plain RTP packet arrived from the peer (after SRTP decryption for WebRTC). Legs emit only packets
   * of at least 12 bytes with RTP version 2 (the relay reads the fixed header without checking), and the
   * receiver may rewrite the header in place and send the same Buffer on (media-core note, h1).
   */
  rtp: [packet: Buffer];
  /** A (decrypted) RTCP compound packet arrived from the peer; `bye` is true when it contains a BYE. */
  rtcp: [packet: Buffer, info: { bye: boolean }];
  /** The transport is up (ICE+DTLS connected for WebRTC; first packet / SDP applied for RTP). */
  connected: [];
  /**
   * An explicit end signal seen by the transport (RTCP BYE, DTLS close_notify, ICMP unreachable, ICE failure).
   * Only the RTP (phone) leg signals 'rtcp-bye'; a WebRTC leg reports a browser's BYE through `rtcp` with
   * `bye: true` and never as a signal (a browser's BYE means one track stopped; docs/lifecycle.md).
   */
  signal: [reason: LegEndReason];
  /** The leg closed (after close()); no more events follow. */
  closed: [];
}

export interface MediaLeg extends EventEmitter {
  readonly kind: 'rtp' | 'webrtc';
  /** Send a plain RTP packet to the peer (the leg encrypts when it must). Dropped silently before connect or after close. */
  sendRtp(packet: Buffer): void;
  /**
   * Optional: take every RTP packet from the peer through one direct callback instead of an 'rtp'
   * listener (no EventEmitter dispatch per packet). Called before any 'rtp' listener, with the same
   * packet and the same rules (header checked, may be rewritten in place and sent on); undefined
   * removes it. A leg without it emits 'rtp' only: consumers use
   * `leg.setRtpHandler ? leg.setRtpHandler(fn) : leg.on('rtp', fn)`.
   */
  setRtpHandler?(handler: ((packet: Buffer) => void) | undefined): void;
  /** Counters for liveness and /stats. */
  activity(): LegActivity;
  /** Number of local UDP ports this leg holds right now (for /stats boundPorts; 0 after close). */
  boundPorts(): number;
  /**
   * The SSRC of everything this leg sends (it stamps it on every RTP packet and uses it in its RTCP), the
   * one getStats reports; undefined while the leg does not know it yet (WebRTC before negotiation).
   */
  readonly localSsrc: number | undefined;
  /** The leg's RTCP session statistics (src/media/rtcp/rtcp-session.ts), undefined before it runs. */
  rtcpStats(): RtcpStreamStats | undefined;
  /**
   * Tell the peer goodbye (RTCP BYE on RTP; RTCP BYE + DTLS close_notify on WebRTC), then free every socket
   * and timer. Idempotent: every call returns the first call's promise (its `notifyPeer` decides), so
   * concurrent closes send one goodbye.
   */
  close(options?: { notifyPeer?: boolean }): Promise<void>;
}
