/**
 * The lean packet path of a benchmark browser (a werift RTCPeerConnection played by the load generator):
 * werift still does ICE (checks, RFC 7675 consent) and DTLS, but media bypasses it both ways, through the
 * same pieces ferry's own WebRTC leg uses:
 *
 * - received: the RFC 7983 demultiplexer on the ICE sockets (`demultiplexIceSockets`) hands SRTP/SRTCP from
 *   the selected pair straight to ferry's SRTP context (src/media/srtp/), keyed from werift's DTLS session
 *   (`srtpFromDtls`); werift's event chain (ICE → DTLS transport → SRTP session → RtpPacket → receiver)
 *   never runs for media. A packet that does not authenticate, or a replay, is refused and counted.
 * - sent: the plain packet is protected by ferry's context into one wire buffer per stream (no per-packet
 *   cipher objects, packet objects or promises) and sent on the nominated pair's socket (`sendOnSelectedPair`:
 *   nothing while consent is not fresh, as werift's own send).
 *
 * RTP is protected and unprotected by the native SRTP contexts of ferry's native relay (src/media/native/native-srtp.ts,
 * made from the same session keys: the same bytes as the JavaScript SrtpContext) when the addon loads, by the
 * JavaScript contexts otherwise: the generator's own packet cost, not the server's. SRTCP stays in JavaScript.
 *
 * On the wire nothing changes: the same SRTP (the profile and keys DTLS negotiated), the same ICE pair. werift's
 * sender and receiver start their RTCP only on RTP that goes through werift, so on this path they send none (the
 * worker therefore lets werift key no SRTP session: skipWeriftSrtp); RTCP from the far end is authenticated and
 * counted here instead of going to werift's receiver (which, without media, has nothing to report on).
 */
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { nativeSrtpFrom, type NativeSrtp } from '../../../src/media/native/native-srtp';
import { srtpFromDtls, type DtlsSrtpSession } from '../../../src/media/webrtc/dtls-srtp-session';
import { isRtcp } from '../../../src/media/webrtc/rfc7983';
import { demultiplexIceSockets, sendOnSelectedPair, type IceSocketCounters } from '../../../src/media/webrtc/werift-internals';

export interface LeanPathCounters {
  /** RTP packets protected and handed to the socket. */
  sent: number;
  /** Sends not made: consent not fresh, or no keys yet. */
  unsent: number;
  /** SRTP packets that authenticated (handed to `onRtp`). */
  received: number;
  /** SRTCP packets that authenticated. */
  rtcpReceived: number;
  /** SRTP/SRTCP refused: authentication failed, replay, malformed. */
  refused: number;
  /** Media from the selected pair before DTLS had keyed our contexts. */
  beforeKeys: number;
}

export class LeanBrowserPath {
  readonly counters: LeanPathCounters = { sent: 0, unsent: 0, received: 0, rtcpReceived: 0, refused: 0, beforeKeys: 0 };
  /** The demultiplexer's own counters (strangers, media off the selected pair...). */
  readonly demux: IceSocketCounters;
  private srtp: DtlsSrtpSession | undefined;
  /** Native RTP contexts with the session's keys (undefined: the addon did not load, the JavaScript contexts do it). */
  private native: { inbound: NativeSrtp; outbound: NativeSrtp } | undefined;
  private transport: RTCDtlsTransport | undefined;
  private wire: Buffer | undefined;

  /**
   * Install the demultiplexer on `pc`'s ICE sockets: call once gathering is complete (the sockets exist then).
   * `onRtp` gets each authenticated RTP packet, decrypted in place (a view of the received datagram, valid
   * only during the call).
   */
  constructor(
    pc: RTCPeerConnection,
    private readonly onRtp: (packet: Buffer) => void,
    /** RTP through the native SRTP contexts when the addon loads (the default); false: always the JavaScript ones. */
    private readonly useNativeSrtp = true,
  ) {
    this.demux = demultiplexIceSockets(pc, (data) => this.onDatagram(data));
  }

  /** Key ferry's SRTP contexts from the connected DTLS transport; sending and receiving start now. */
  start(transport: RTCDtlsTransport, packetBytes: number): void {
    const srtp = srtpFromDtls(transport);
    this.native = this.useNativeSrtp ? nativeContextsOf(srtp) : undefined;
    this.wire = Buffer.allocUnsafe(packetBytes + srtp.outbound.rtpOverhead);
    this.transport = transport;
    this.srtp = srtp;
  }

  /** Whether RTP goes through the native SRTP contexts (once started). */
  get nativeSrtp(): boolean {
    return this.native !== undefined;
  }

  get started(): boolean {
    return this.srtp !== undefined;
  }

  /** The SRTP profile DTLS negotiated, once started. */
  get profile(): string | undefined {
    return this.srtp?.profile.name;
  }

  /**
   * Protect the plain RTP `packet` into this path's wire buffer and send it on the selected pair. The buffer is
   * reused by the next send: dgram hands a datagram to the kernel within `send` when the socket can take it
   * (loopback, 20 ms between a stream's packets), and queues it (by reference) only when the kernel buffer is full.
   */
  send(packet: Buffer): boolean {
    const srtp = this.srtp;
    const transport = this.transport;
    if (!srtp || !transport) {
      this.counters.unsent++;
      return false;
    }
    const wire = this.native ? this.native.outbound.protectRtp(packet, this.wire) : srtp.outbound.protectRtp(packet, this.wire);
    if (!sendOnSelectedPair(transport, wire)) {
      this.counters.unsent++;
      return false;
    }
    this.counters.sent++;
    return true;
  }

  /** What the demultiplexer hands over: an SRTP or SRTCP datagram from the selected pair (or another valid one). */
  onDatagram(data: Buffer): void {
    const srtp = this.srtp;
    if (!srtp) {
      this.counters.beforeKeys++;
      return;
    }
    if (isRtcp(data)) {
      if (srtp.inbound.unprotectRtcp(data)) this.counters.rtcpReceived++;
      else this.counters.refused++;
      return;
    }
    const plain = this.native ? this.native.inbound.unprotectRtp(data) : srtp.inbound.unprotectRtp(data);
    if (!plain) {
      this.counters.refused++;
      return;
    }
    this.counters.received++;
    this.onRtp(plain);
  }
}

/** The native mirrors of a session's RTP contexts, or undefined when the addon cannot be loaded (no compiler, no headers). */
function nativeContextsOf(srtp: DtlsSrtpSession): { inbound: NativeSrtp; outbound: NativeSrtp } | undefined {
  try {
    return { inbound: nativeSrtpFrom(srtp.inbound), outbound: nativeSrtpFrom(srtp.outbound) };
  } catch {
    return undefined;
  }
}
