import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import { errorForLog } from '../../common/process-faults';
import { DirectListeners } from '../relay/direct-listeners';
import { beginPacketTurn, endPacketTurn, packetNow } from '../relay/packet-clock';
import { mayLatchFrom } from './nat-latch-rule';
import { LegCounters, type LegActivity, type LegEndReason, type MediaLeg, type MediaLegEvents } from '../relay/media-leg';
import { looksLikeRtcp, parseRtcpCompound, type RtcpSummary } from '../rtcp/rtcp-packets';
import { RtcpSession, type RtcpStreamStats } from '../rtcp/rtcp-session';
import type { SrtpContext } from '../srtp/srtp-context';
import { handBackSrtpState, nativeSrtpFrom, type NativeSrtp } from '../native/native-srtp';
import type { InboundOffloadDelta, OffloadableLeg, OffloadBlocked, OffloadHooks, OffloadPath, OutboundOffloadDelta, ReceptionState } from '../native/offload-types';

/** SRTP on this leg: `inbound` unprotects what the peer sends (its key), `outbound` protects ours. */
export interface RtpLegSrtp {
  inbound: SrtpContext;
  outbound: SrtpContext;
}

export interface RemoteRtpAddress {
  address: string;
  rtpPort: number;
  /** Where RTCP goes when not muxed (a=rtcp or port+1). */
  rtcpAddress: string;
  rtcpPort: number;
  rtcpMux: boolean;
}

/** One UDP path (RTP or RTCP) with its latching state. */
interface Path {
  socket: dgram.Socket;
  /** The address the SDP named for this path (authoritative: it always wins the latch). */
  sdpAddress: string | undefined;
  sdpPort: number;
  /** Where we send: the SDP address until latched, then the latched source. */
  targetAddress: string | undefined;
  targetPort: number;
  latched: boolean;
  connecting: boolean;
  connected: boolean;
}

/**
 * The plain RTP leg of a phone call on node:dgram (MediaLeg). Symmetric RTP (RFC 4961): we send from
 * the port we receive on. Latching (see accept()): the SDP-named address always wins and the socket
 * is then connect()ed to it, so the kernel drops strangers and an ICMP port unreachable surfaces as
 * ECONNREFUSED ('icmp-unreachable' signal); a NAT'd phone is latched by its first plausible packet.
 * RTCP on port+1 or muxed (RFC 5761) through an RtcpSession (src/media/rtcp/): SR/RR on the randomised
 * RFC 3550 interval around `rtcpIntervalMs`, reception statistics, one BYE; an incoming BYE is the
 * 'rtcp-bye' end signal. The session's SSRC is stamped on every RTP packet this leg sends (one SSRC
 * on the wire, the one getStats reports). Per-packet path: header checks, counters, one clock read, a
 * direct call of each 'rtp' listener (no EventEmitter dispatch), and a send on the connect()ed socket; no
 * allocation in ferry's own code (docs/benchmarks.md, "The relay's per-packet path").
 * With SRTP (setSrtp, SDES keys): every datagram is authenticated and decrypted before it counts, latches
 * or is relayed, and everything we send (RTP, SR/RR, BYE) is protected; an unauthenticated packet is
 * dropped and counted (srtpRefused).
 */
export class RtpLeg extends EventEmitter<MediaLegEvents> implements MediaLeg, OffloadableLeg {
  readonly kind = 'rtp' as const;
  private readonly rtp: Path;
  private rtcp: Path | undefined;
  private remote: RemoteRtpAddress | undefined;
  private sendAllowed = true;
  /** close() was called: nothing more is sent but the goodbye. */
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  /** setRemote() ran once: reports are on, 'connected' was emitted. */
  private started = false;
  private readonly rtcpSession: RtcpSession;
  private strangersDropped = 0;
  /** times a NAT-latched path moved to another port of the same address */
  private relatches = 0;
  /** The SSRC of the peer's stream as last accepted (RTP, or the sender of its RTCP): a re-latch must continue it. */
  private peerSsrc: number | undefined;
  private strangerLogged = false;
  private implausibleLogged = false;
  /** Payload types negotiated for this leg (1 = accepted), for deciding whether a packet may latch. */
  private acceptedPts = new Uint8Array(128);
  private readonly counters = new LegCounters();
  private srtp: RtpLegSrtp | undefined;
  private srtpDropped = 0;
  /** A consumer's direct per-packet callback (setRtpHandler), called before any 'rtp' listener. */
  private rtpHandler: ((packet: Buffer) => void) | undefined;
  /** The 'rtp' listeners, called directly per packet instead of through emit(). */
  private readonly rtpListeners = new DirectListeners<Buffer>(this as EventEmitter, 'rtp');
  /** The native relay's offload controller, while it may carry this leg's RTP (src/media/native/). */
  private offloadHooks: OffloadHooks | undefined;
  /** Native SRTP contexts mirroring `srtp` for the native relay (made on first offload), and which directions it holds. */
  private nativeSrtp: { srtp: RtpLegSrtp; inbound: NativeSrtp; outbound: NativeSrtp } | undefined;
  private readonly nativeSrtpHeld = { in: false, out: false };

  constructor(
    sockets: { rtp: dgram.Socket; rtcp: dgram.Socket | undefined },
    private readonly clock: Clock,
    rtcpIntervalMs: number,
    cname: string,
    private readonly logger: Logger,
  ) {
    super();
    this.rtcpSession = new RtcpSession({
      clock,
      ssrc: (Math.random() * 0xffffffff) >>> 0 || 1,
      cname,
      clockRate: 8000,
      minIntervalMs: rtcpIntervalMs,
      send: (compound) => this.sendRtcp(compound),
      beforeReport: () => this.offloadHooks?.sync(),
    });
    this.rtp = newPath(sockets.rtp);
    this.rtcp = sockets.rtcp ? newPath(sockets.rtcp) : undefined;
    sockets.rtp.on('message', (msg, rinfo) => this.onRtpSocket(msg, rinfo));
    sockets.rtp.on('error', (err) => this.onSocketError(err, 'rtp'));
    if (sockets.rtcp) {
      sockets.rtcp.on('message', (msg, rinfo) => this.onRtcpSocket(msg, rinfo));
      sockets.rtcp.on('error', (err) => this.onSocketError(err, 'rtcp'));
    }
  }

  /** The SSRC of everything this leg sends (RTP and RTCP). */
  get localSsrc(): number {
    return this.rtcpSession.ssrc;
  }

  rtcpStats(): RtcpStreamStats {
    this.offloadHooks?.sync();
    return this.rtcpSession.stats();
  }

  get localRtpPort(): number {
    return this.rtp.socket.address().port;
  }

  /** Local RTCP port, or undefined when muxed / not bound. */
  get localRtcpPort(): number | undefined {
    return this.rtcp ? this.rtcp.socket.address().port : undefined;
  }

  /** Remove the separate RTCP socket (the answer accepted rtcp-mux). */
  useRtcpMux(): void {
    if (!this.rtcp) return;
    this.offloadHooks?.changed('rtcp-mux');
    closeQuietly(this.rtcp.socket);
    this.rtcp = undefined;
  }

  /**
   * Apply the peer's address from SDP. A changed address (re-INVITE moving media) resets latching.
   * `peerReceives` false (peer is sendonly/inactive) stops RTP to it; RTCP continues.
   */
  setRemote(remote: RemoteRtpAddress, peerReceives: boolean, payloadTypes: readonly number[] = []): void {
    if (this.closing) return;
    this.offloadHooks?.changed('remote');
    this.acceptedPts = new Uint8Array(128);
    for (const pt of payloadTypes) if (pt >= 0 && pt < 128) this.acceptedPts[pt] = 1;
    const changed =
      !this.remote || this.remote.address !== remote.address || this.remote.rtpPort !== remote.rtpPort || this.remote.rtcpPort !== remote.rtcpPort;
    this.remote = remote;
    this.sendAllowed = peerReceives;
    if (remote.rtcpMux) this.useRtcpMux();
    if (changed) {
      this.retarget(this.rtp, remote.address, remote.rtpPort);
      if (this.rtcp) this.retarget(this.rtcp, remote.rtcpAddress, remote.rtcpPort);
    }
    if (!this.started) {
      this.started = true;
      this.rtcpSession.start();
      this.emit('connected');
    }
  }

  /**
   * The consumer's per-packet callback, called directly for every RTP packet from the peer (before any
   * 'rtp' listener); undefined removes it. The cheapest way to take packets (MediaLeg.setRtpHandler).
   */
  setRtpHandler(handler: ((packet: Buffer) => void) | undefined): void {
    this.rtpHandler = handler;
  }

  /** Turn SRTP on (or off with undefined); takes effect on the next packet either way. */
  setSrtp(srtp: RtpLegSrtp | undefined): void {
    this.offloadHooks?.changed('srtp');
    this.srtp = srtp;
  }

  /** Datagrams dropped because they failed SRTP/SRTCP authentication, replay or format checks. */
  get srtpRefused(): number {
    this.offloadHooks?.sync();
    return this.srtpDropped;
  }

  private retarget(path: Path, address: string, port: number): void {
    // A connected socket cannot be re-pointed: disconnect it and send unconnected to the new SDP address
    // until a packet from there (or a NAT'd source) latches again; a packet from the new SDP address
    // connect()s the socket to it (latchConnected).
    if (path.connected || path.connecting) disconnectQuietly(path.socket);
    path.connected = false;
    path.connecting = false;
    path.latched = false;
    // c=0.0.0.0 (RFC 2543 hold) names no one: on Linux it would reach this very host, so send nothing.
    path.targetAddress = port > 0 && address !== '0.0.0.0' && address !== '::' ? address : undefined;
    path.targetPort = port;
    path.sdpAddress = path.targetAddress;
    path.sdpPort = port;
  }

  sendRtp(packet: Buffer): void {
    if (this.closing || !this.sendAllowed) return;
    const p = this.rtp;
    if (p.targetAddress === undefined || p.connecting) return;
    packet.writeUInt32BE(this.rtcpSession.ssrc, 8);
    const now = packetNow(this.clock);
    this.rtcpSession.onRtpSent(packet, now);
    const c = this.counters;
    c.packetsOut++;
    c.bytesOut += packet.length;
    c.lastRtpOutAt = now;
    const wire = this.srtp ? this.srtp.outbound.protectRtp(packet) : packet;
    if (p.connected) p.socket.send(wire);
    else p.socket.send(wire, p.targetPort, p.targetAddress);
  }

  activity(): LegActivity {
    this.offloadHooks?.sync();
    return this.counters.snapshot();
  }

  boundPorts(): number {
    if (this.closed) return 0;
    return 1 + (this.rtcp ? 1 : 0);
  }

  /** Packets dropped because they came from an address other than the latched peer. */
  get strangerPackets(): number {
    return this.strangersDropped;
  }

  /**
   * Idempotent: every call returns the same promise, so concurrent closes send one RTCP BYE (when the
   * first asked for it) and close the sockets once.
   */
  close(options: { notifyPeer?: boolean } = {}): Promise<void> {
    this.closePromise ??= this.teardown(options.notifyPeer ?? false);
    return this.closePromise;
  }

  private async teardown(notifyPeer: boolean): Promise<void> {
    // the native relay gives the sockets back (and its figures) before anything closes
    this.offloadHooks?.changed('closing');
    this.closing = true;
    const bye = this.rtcpSession.goodbye('ferry: call ended');
    if (notifyPeer && bye) await new Promise<void>((resolve) => this.sendRtcp(bye, resolve));
    this.closed = true;
    const sockets = [this.rtp.socket, ...(this.rtcp ? [this.rtcp.socket] : [])];
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => closeQuietly(s, resolve))));
    this.emit('closed');
    this.removeAllListeners();
  }

  // ---- native relay (src/media/native/offload-types.ts) ------------------------------------------

  offloadPath(): OffloadPath | OffloadBlocked {
    if (this.closing || this.closed) return { blocked: 'closing' };
    if (!this.started) return { blocked: 'no remote address yet' };
    const p = this.rtp;
    if (p.connecting) return { blocked: 'connect() under way' };
    const canSend = this.sendAllowed && p.targetAddress !== undefined;
    const canReceive = p.connected || p.latched;
    return {
      socket: p.socket,
      peer: p.connected || !p.latched || p.targetAddress === undefined ? null : { address: p.targetAddress, port: p.targetPort },
      dest: p.connected || p.targetAddress === undefined ? null : { address: p.targetAddress, port: p.targetPort },
      canSend,
      canReceive,
      ssrc: this.rtcpSession.ssrc,
      srtpIn: this.srtp ? this.nativeContexts(this.srtp).inbound.handle : null,
      srtpOut: this.srtp ? this.nativeContexts(this.srtp).outbound.handle : null,
      receiveClockRate: 8000,
    };
  }

  /** The native mirrors of the SDES contexts (remade when the keys change). */
  private nativeContexts(srtp: RtpLegSrtp): { inbound: NativeSrtp; outbound: NativeSrtp } {
    if (this.nativeSrtp?.srtp !== srtp || this.nativeSrtp.inbound === undefined) {
      this.nativeSrtp = { srtp, inbound: nativeSrtpFrom(srtp.inbound, undefined, { state: false }), outbound: nativeSrtpFrom(srtp.outbound, undefined, { state: false }) };
    }
    return this.nativeSrtp;
  }

  /** A route took a direction: its native SRTP context continues the JavaScript context's streams. */
  offloadRouted(direction: 'in' | 'out'): void {
    const n = this.nativeSrtp;
    if (!n || n.srtp !== this.srtp) return;
    if (direction === 'in') n.inbound.importRtpState(n.srtp.inbound.exportRtpState());
    else n.outbound.importRtpState(n.srtp.outbound.exportRtpState());
    this.nativeSrtpHeld[direction] = true;
  }

  /** The route gave the direction back: the JavaScript context continues the native context's streams. */
  offloadUnrouted(direction: 'in' | 'out'): void {
    const n = this.nativeSrtp;
    if (!n || !this.nativeSrtpHeld[direction]) return;
    this.nativeSrtpHeld[direction] = false;
    if (direction === 'in') handBackSrtpState(n.inbound, n.srtp.inbound);
    else handBackSrtpState(n.outbound, n.srtp.outbound);
  }

  setOffloadHooks(hooks: OffloadHooks | undefined): void {
    this.offloadHooks = hooks;
  }

  exportReception(): ReceptionState {
    return this.rtcpSession.exportReception();
  }

  applyInbound(d: InboundOffloadDelta): void {
    const c = this.counters;
    c.packetsIn += d.packets;
    c.bytesIn += d.bytes;
    if (!Number.isNaN(d.lastAt)) c.lastRtpInAt = d.lastAt;
    this.rtcpSession.applyOffloadedReceive(d);
    this.srtpDropped += d.srtpRefused;
    // the peer's stream as the relay last counted it: a re-latch must continue it
    if (d.packets > 0 && d.reception.ssrc >= 0) this.peerSsrc = d.reception.ssrc;
  }

  applyOutbound(d: OutboundOffloadDelta): void {
    const c = this.counters;
    c.packetsOut += d.packets;
    c.bytesOut += d.bytes;
    if (!Number.isNaN(d.lastAt)) c.lastRtpOutAt = d.lastAt;
    this.rtcpSession.applyOffloadedSend(d);
  }

  // ---- receive ------------------------------------------------------------------------------

  private onRtpSocket(datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || datagram.length < 8 || datagram[0]! >> 6 !== 2) return;
    if (looksLikeRtcp(datagram)) {
      const rtcp = this.unprotectRtcp(datagram);
      if (!rtcp) return;
      const plausible = parseRtcpCompound(rtcp).valid;
      if (this.accept(this.rtp, rinfo, plausible, rtcp.readUInt32BE(4))) this.onRtcp(rtcp);
      return;
    }
    let msg = datagram;
    if (this.srtp) {
      const clear = this.srtp.inbound.unprotectRtp(datagram);
      if (!clear) {
        this.onSrtpRefused();
        return;
      }
      msg = clear;
    }
    const path = this.rtp;
    // a connected path is latched (the kernel filters the sender): the payload-type table is not read then
    if (msg.length < 12 || (!path.connected && !path.connecting && !this.accept(path, rinfo, this.acceptedPts[msg[1]! & 0x7f] === 1, msg.readUInt32BE(8)))) {
      if (msg.length >= 12 && !this.implausibleLogged && rinfo.address === this.rtp.sdpAddress && rinfo.port === this.rtp.sdpPort) {
        // the peer's own address sends a payload type the offer/answer did not agree: a peer that plays
        // another codec than it offered is silent through ferry; say so once, it is otherwise invisible
        this.implausibleLogged = true;
        this.logger.info('RTP from the peer dropped: payload type not negotiated', {
          payloadType: msg[1]! & 0x7f,
          negotiated: [...this.acceptedPts.keys()].filter((pt) => this.acceptedPts[pt] === 1),
        });
      }
      return;
    }
    const c = this.counters;
    c.packetsIn++;
    c.bytesIn += msg.length;
    const now = this.clock.now();
    c.lastRtpInAt = now;
    this.rtcpSession.onRtpReceived(msg, now);
    beginPacketTurn(this.clock, now);
    try {
      this.dispatchRtp(msg);
    } catch (err) {
      // A bug downstream must cost one packet, never the process (and never other calls).
      this.reportHandlerError(err);
    } finally {
      endPacketTurn();
    }
  }

  /** The handler, then what emit('rtp', msg) would do, without its per-call argument array: each listener, in order. */
  private dispatchRtp(msg: Buffer): void {
    const h = this.rtpHandler;
    if (h !== undefined) h(msg);
    if (this.rtpListeners.size > 0) this.rtpListeners.call(msg);
  }

  private handlerErrors = 0;

  private reportHandlerError(err: unknown): void {
    if (this.handlerErrors++ < 3) this.logger.error('error while relaying a packet', errorForLog(err));
  }

  /** The clear compound RTCP packet: `datagram` itself without SRTP, else its authenticated, decrypted form. */
  private unprotectRtcp(datagram: Buffer): Buffer | undefined {
    if (!this.srtp) return datagram;
    const clear = this.srtp.inbound.unprotectRtcp(datagram);
    if (!clear) this.onSrtpRefused();
    return clear;
  }

  /** Count a refused SRTP/SRTCP datagram; the first one of the leg is logged (with why, so far). */
  private onSrtpRefused(): void {
    if (this.srtpDropped++ === 0) {
      const c = this.srtp!.inbound.counters;
      this.logger.info('SRTP datagram refused on phone leg', { authFailures: c.authFailures, replays: c.replays, malformed: c.malformed });
    }
  }

  private onRtcpSocket(datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || !this.rtcp) return;
    const msg = this.unprotectRtcp(datagram);
    if (!msg) return;
    if (!this.accept(this.rtcp, rinfo, parseRtcpCompound(msg).valid, msg.length >= 8 ? msg.readUInt32BE(4) : undefined)) return;
    this.onRtcp(msg);
  }

  private onRtcp(msg: Buffer): void {
    const summary: RtcpSummary = this.rtcpSession.onRtcpReceived(msg);
    if (!summary.valid) return;
    this.counters.lastRtcpInAt = this.clock.now();
    try {
      this.emit('rtcp', msg, { bye: summary.bye });
      if (summary.bye) this.signal('rtcp-bye');
    } catch (err) {
      this.reportHandlerError(err);
    }
  }

  /**
   * Latching (symmetric RTP, RFC 4961). The address the SDP named always wins: a packet from it latches
   * there and connect()s the socket (the kernel then drops strangers and reports ICMP unreachable).
   * Before that, the first *plausible* packet (valid RTP of a negotiated payload type, or valid RTCP)
   * from elsewhere latches to its source without connecting (a phone behind NAT), so the SDP address
   * can still take over; once latched, a plausible packet from the latched address on another port that
   * continues the peer's stream (its SSRC) moves the latch there (the NAT mapped the phone again after
   * forgetting its mapping: another subscriber of the same carrier NAT does not know the SSRC), and any
   * other source is a stranger and is dropped (the first one logged per leg). Only where NAT
   * can be at work: from the SDP's own IP, or when the SDP names a private, shared or link-local
   * address (mayLatchFrom); an SDP with a public or loopback address is latched by that address alone.
   */
  private accept(path: Path, rinfo: dgram.RemoteInfo, plausible: boolean, ssrc: number | undefined): boolean {
    if (path.connected || path.connecting) return true; // latched to the SDP address; the kernel filters
    if (this.remote === undefined) {
      // No SDP yet: nothing to latch against; accept nothing (the peer cannot know our port anyway).
      this.strangersDropped++;
      return false;
    }
    const fromSdp = rinfo.address === path.sdpAddress && rinfo.port === path.sdpPort;
    if (fromSdp) {
      if (!plausible) return false;
      this.offloadHooks?.changed('latch');
      this.latchConnected(path, rinfo.address, rinfo.port);
      this.peerSsrc = ssrc;
      return true;
    }
    if (path.latched) {
      if (rinfo.address === path.targetAddress && rinfo.port === path.targetPort) {
        if (plausible && ssrc !== undefined) this.peerSsrc = ssrc;
        return true;
      }
      // the same NAT on another port: the router forgot the phone's mapping (an idle timeout, a reboot) and
      // mapped it again; its packets come from there now, and only that new mapping reaches the phone
      if (plausible && ssrc !== undefined && ssrc === this.peerSsrc && rinfo.address === path.targetAddress && mayLatchFrom(path.sdpAddress, rinfo.address)) {
        // a few lines per leg: two sources of one NAT address taking turns must not flood the log
        this.offloadHooks?.changed('relatch');
        if (this.relatches++ < 3) this.logger.info('phone leg re-latched: its NAT mapped it to another port', { which: path === this.rtp ? 'rtp' : 'rtcp', address: rinfo.address, from: path.targetPort, to: rinfo.port });
        path.targetPort = rinfo.port;
        return true;
      }
      this.onStranger(path, rinfo, 'the leg is latched to another source');
      return false;
    }
    if (!plausible || !mayLatchFrom(path.sdpAddress, rinfo.address)) {
      this.onStranger(path, rinfo, plausible ? 'the SDP names an address that is not behind NAT' : 'not a packet of the negotiated stream');
      return false;
    }
    this.offloadHooks?.changed('latch');
    path.latched = true;
    path.targetAddress = rinfo.address;
    path.targetPort = rinfo.port;
    this.peerSsrc = ssrc;
    return true;
  }

  /**
   * Count a stranger's packet; the first one of the leg is logged with where it came from and what the
   * SDP named: a phone whose packets come from elsewhere than its SDP says (a wrong address in its SDP,
   * a NAT ferry cannot see) is otherwise silent through ferry with nothing to show why.
   */
  private onStranger(path: Path, rinfo: dgram.RemoteInfo, why: string): void {
    this.strangersDropped++;
    if (this.strangerLogged) return;
    this.strangerLogged = true;
    this.logger.info('phone leg dropped a packet from an address its SDP did not name', {
      which: path === this.rtp ? 'rtp' : 'rtcp',
      source: `${rinfo.address}:${rinfo.port}`,
      sdp: `${path.sdpAddress ?? '-'}:${path.sdpPort}`,
      why,
    });
  }

  /**
   * Latch to the SDP address and connect() the socket to it: from then on `send` names no address (no
   * lookup per packet) and the kernel drops datagrams from anyone else. With the synchronous lookup
   * of PortAllocator's sockets the socket is connected when connect() returns; otherwise sends wait
   * for the callback. A connect that completes after the path moved on (a re-INVITE retargeted it
   * meanwhile) is undone; one that fails leaves the path latched and sending unconnected.
   */
  private latchConnected(path: Path, address: string, port: number): void {
    path.latched = true;
    path.targetAddress = address;
    path.targetPort = port;
    path.connecting = true;
    const current = (): boolean => path.targetAddress === address && path.targetPort === port && path.latched && !this.closed;
    try {
      path.socket.connect(port, address, (err?: Error) => {
        if (!current()) {
          if (!err && !this.closed) disconnectQuietly(path.socket);
          return;
        }
        if (!path.connecting) return; // connected synchronously (below)
        this.offloadHooks?.changed('connected');
        path.connecting = false;
        if (err) {
          this.logger.warn('could not connect() RTP socket to the latched peer; sending unconnected', { address, port, message: err.message });
          return;
        }
        path.connected = true;
      });
    } catch (err) {
      // Already connected (should not happen: retarget disconnects) or closed: keep sending unconnected.
      path.connecting = false;
      this.logger.warn('connect() of RTP socket refused', { address, port, message: (err as Error).message });
      return;
    }
    if (isConnected(path.socket)) {
      path.connecting = false;
      path.connected = true;
    }
  }

  private onSocketError(err: NodeJS.ErrnoException, which: 'rtp' | 'rtcp'): void {
    if (this.closed) return;
    if (err.code === 'ECONNREFUSED') {
      this.logger.info('ICMP port unreachable from media peer', { which });
      this.signal('icmp-unreachable');
      return;
    }
    this.logger.warn('RTP socket error', { which, code: err.code, message: err.message });
  }

  private signal(reason: LegEndReason): void {
    this.emit('signal', reason);
  }

  // ---- RTCP out -------------------------------------------------------------------------------

  private sendRtcp(clear: Buffer, done?: () => void): void {
    const p = this.rtcp ?? this.rtp;
    if (this.closed || p.targetAddress === undefined || p.connecting) {
      done?.();
      return;
    }
    const buf = this.srtp ? this.srtp.outbound.protectRtcp(clear) : clear;
    if (p.connected) p.socket.send(buf, done);
    else p.socket.send(buf, p.targetPort, p.targetAddress, done);
  }
}

function newPath(socket: dgram.Socket): Path {
  return { socket, sdpAddress: undefined, sdpPort: 0, targetAddress: undefined, targetPort: 0, latched: false, connecting: false, connected: false };
}

function disconnectQuietly(s: dgram.Socket): void {
  try {
    s.disconnect();
  } catch {
    // not connected (yet, or any more): nothing to undo
  }
}

/** Whether the kernel socket is connected now (dgram has no flag for it; remoteAddress throws when not). */
function isConnected(s: dgram.Socket): boolean {
  try {
    s.remoteAddress();
    return true;
  } catch {
    return false;
  }
}

function closeQuietly(s: dgram.Socket, done?: () => void): void {
  try {
    s.close(done);
  } catch {
    done?.();
  }
}
