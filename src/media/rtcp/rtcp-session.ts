import type { Clock, TimerHandle } from '../../common/clock';
import type { InboundOffloadDelta, OutboundOffloadDelta, ReceptionState } from '../native/offload-types';
import { ReceptionStatistics } from './reception-statistics';
import { randomisedInterval, type IntervalInputs } from './report-interval';
import { buildBye, buildReport, ntpMiddle, parseRtcpCompound, type RtcpSummary, type SenderInfo } from './rtcp-packets';

/** UDP + IPv4 header bytes counted in the average RTCP packet size (RFC 3550 §6.2). */
const UDP_IP_OVERHEAD = 28;
/** Largest round-trip time taken from a peer's report (s). */
const MAX_RTT_S = 60;

export interface RtcpSessionOptions {
  clock: Clock;
  /** Our SSRC: the leg stamps it on every RTP packet it sends, and every report and BYE carries it. */
  ssrc: number;
  cname: string;
  /** RTP clock rate of the stream (8000 for G.711 and telephone-event). */
  clockRate: number;
  /** The minimum report interval Tmin (ms); the mean interval once running (FERRY_MEDIA_RTCP_INTERVAL_MS). */
  minIntervalMs: number;
  /** Sends one clear compound RTCP packet (the leg protects it when it must). */
  send: (compound: Buffer) => void;
  /** [0, 1) random source for the interval (tests seed it). */
  random?: () => number;
  /** RTCP bandwidth in bytes/s (default: unlimited, so the minimum interval decides). */
  rtcpBandwidth?: number;
  /**
   * Called before a report (or the goodbye) is built: a leg whose packets the native relay carries brings
   * the relay's figures in here (OffloadHooks.sync, src/media/native/offload-types.ts).
   */
  beforeReport?: () => void;
}

/** What getStats reports for a leg (all counts since the leg started). */
export interface RtcpStreamStats {
  /** Our SSRC, the one on the wire. */
  ssrc: number;
  /** The SSRC we receive (undefined before the first RTP packet). */
  remoteSsrc: number | undefined;
  packetsReceived: number;
  /** Cumulative packets lost of the received stream (RFC 3550 A.3). */
  packetsLost: number;
  /** Fraction lost (0..1) in the last report interval of the received stream. */
  fractionLost: number;
  /** Interarrival jitter of the received stream, in seconds (RFC 3550 A.8). */
  jitter: number;
  /** Round-trip time from the peer's last report block about our stream (LSR/DLSR), in seconds. */
  roundTripTime: number | undefined;
  /** What the peer last reported about our stream. */
  remoteReport: { fractionLost: number; packetsLost: number; jitter: number } | undefined;
  reportsSent: number;
  reportsReceived: number;
}

/**
 * One RTCP session (RFC 3550 §6) for one media leg, shared by the plain RTP leg and the WebRTC leg. It owns
 * the leg's SSRC, keeps reception statistics for the stream the leg receives (extended highest sequence,
 * loss, jitter, LSR/DLSR), takes RTT from the peer's report blocks, sends SR (when we sent RTP in the last
 * two intervals) or RR, each with SDES CNAME, on the randomised interval of §6.3 with timer
 * reconsideration, and builds the one BYE of the leg. No sockets: the leg hands packets in and sends
 * what `send` gets.
 */
export class RtcpSession {
  readonly ssrc: number;
  private readonly reception: ReceptionStatistics;
  private readonly random: () => number;
  private timer: TimerHandle | undefined;
  private running = false;
  private stopped = false;
  private byeBuilt = false;
  private initial = true;
  private lastReportAt = 0;
  private avgRtcpSize = 100;

  private packetsSent = 0;
  private octetsSent = 0;
  private lastRtpTimestamp = 0;
  /** NaN until the first packet (a double field: no HeapNumber boxed per packet) */
  private lastRtpSentAt = NaN;
  /** Packets sent when the previous two reports went out (we_sent: sent since either). */
  private packetsSentAtReport = [0, 0];
  /** RTP packets received from the peer (any SSRC), and that count at our last report. */
  private rtpReceived = 0;
  private receivedAtReport = 0;
  private peerHeard = false;
  private peerSentAtReport = [0, 0];

  private rttSeconds: number | undefined;
  private remoteReport: RtcpStreamStats['remoteReport'];
  private reportsSent = 0;
  private reportsReceived = 0;

  constructor(private readonly options: RtcpSessionOptions) {
    this.ssrc = options.ssrc >>> 0;
    this.reception = new ReceptionStatistics(options.clockRate);
    this.random = options.random ?? Math.random;
  }

  /** Start sending reports (idempotent; no effect after stop()). The first comes after about half the minimum. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.lastReportAt = this.options.clock.now();
    this.arm(this.lastReportAt + this.nextInterval());
  }

  /** Stop sending reports (idempotent). */
  stop(): void {
    this.stopped = true;
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** An RTP packet we sent (already carrying our SSRC); `now` from the leg's clock when it has it at hand. */
  onRtpSent(packet: Buffer, now = this.options.clock.now()): void {
    this.packetsSent++;
    this.octetsSent += packet.length - 12;
    this.lastRtpTimestamp = packet.readUInt32BE(4);
    this.lastRtpSentAt = now;
  }

  /** An RTP packet from the peer (plain, at least 12 bytes) that arrived at `now` (the leg's clock). */
  onRtpReceived(packet: Buffer, now = this.options.clock.now()): void {
    this.peerHeard = true;
    this.rtpReceived++;
    this.reception.onPacket(packet.readUInt32BE(8), packet.readUInt16BE(2), packet.readUInt32BE(4), now);
  }

  /** A (clear) compound RTCP packet from the peer: parsed once here, for the leg too. */
  onRtcpReceived(compound: Buffer): RtcpSummary {
    const summary = parseRtcpCompound(compound);
    if (!summary.valid) return summary;
    const now = this.options.clock.now();
    this.peerHeard = true;
    this.reportsReceived++;
    this.avgRtcpSize = (compound.length + UDP_IP_OVERHEAD) / 16 + (15 / 16) * this.avgRtcpSize;
    const sr = summary.senderReport;
    if (sr) this.reception.onSenderReport(sr.ssrc, sr.ntpMiddle, now);
    for (const b of summary.reportBlocks) {
      if (b.ssrc !== this.ssrc) continue;
      this.remoteReport = { fractionLost: b.fractionLost / 256, packetsLost: b.cumulativeLost, jitter: b.jitter / this.options.clockRate };
      if (b.lsr !== 0) {
        // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s of our own NTP clock.
        // A value outside 0..MAX_RTT_S is a peer's clock or arithmetic error and is not kept.
        const rtt = (ntpMiddle(now) - b.lsr - b.dlsr) | 0;
        if (rtt >= 0 && rtt <= MAX_RTT_S * 65536) this.rttSeconds = rtt / 65536;
      }
    }
    return summary;
  }

  /**
   * The goodbye compound (SR/RR + SDES + BYE with `reason`), once: later calls return undefined, so a leg
   * closed twice (or concurrently) sends one BYE. Stops the reports.
   */
  goodbye(reason: string): Buffer | undefined {
    this.stop();
    if (this.byeBuilt) return undefined;
    this.byeBuilt = true;
    return Buffer.concat([this.report(this.options.clock.now()), buildBye([this.ssrc], reason)]);
  }

  /** The reception statistics' state (for a native route to start from). */
  exportReception(): ReceptionState {
    return this.reception.exportState();
  }

  /** What a native route counted of the peer's RTP since the last sync (src/media/native/offload-types.ts). */
  applyOffloadedReceive(d: InboundOffloadDelta): void {
    if (d.rtpReceived > 0) {
      this.rtpReceived += d.rtpReceived;
      this.peerHeard = true;
    }
    this.reception.importState(d.reception, d.sourceChanges > 0);
  }

  /** What a native route sent with our SSRC since the last sync. */
  applyOffloadedSend(d: OutboundOffloadDelta): void {
    if (d.packets <= 0) return;
    this.packetsSent += d.packets;
    this.octetsSent += d.payloadOctets;
    if (!Number.isNaN(d.lastAt)) {
      this.lastRtpTimestamp = d.lastRtpTimestamp >>> 0;
      this.lastRtpSentAt = d.lastAt;
    }
  }

  stats(): RtcpStreamStats {
    const r = this.reception;
    return {
      ssrc: this.ssrc,
      remoteSsrc: r.sourceSsrc,
      packetsReceived: r.packetsReceived,
      packetsLost: r.cumulativeLost,
      fractionLost: r.fractionLost,
      jitter: r.jitter / this.options.clockRate,
      roundTripTime: this.rttSeconds,
      remoteReport: this.remoteReport,
      reportsSent: this.reportsSent,
      reportsReceived: this.reportsReceived,
    };
  }

  // ---- schedule (RFC 3550 A.7: OnExpire with timer reconsideration) --------------------------------

  private arm(at: number): void {
    this.timer = this.options.clock.setTimeout(() => this.onExpire(), Math.max(0, at - this.options.clock.now()));
  }

  private onExpire(): void {
    this.timer = undefined;
    if (!this.running) return;
    this.options.beforeReport?.();
    const now = this.options.clock.now();
    const t = this.nextInterval();
    if (this.lastReportAt + t <= now) {
      this.sendReport(now);
      this.arm(now + this.nextInterval());
    } else {
      this.arm(this.lastReportAt + t);
    }
  }

  private nextInterval(): number {
    const weSent = this.packetsSent > this.packetsSentAtReport[0]!;
    const peerSent = this.rtpReceived > this.peerSentAtReport[0]!;
    const inputs: IntervalInputs = {
      members: this.peerHeard ? 2 : 1,
      senders: (weSent ? 1 : 0) + (peerSent ? 1 : 0),
      weSent,
      rtcpBandwidth: this.options.rtcpBandwidth ?? Infinity,
      avgRtcpSize: this.avgRtcpSize,
      initial: this.initial,
      minIntervalMs: this.options.minIntervalMs,
    };
    return randomisedInterval(inputs, this.random);
  }

  private sendReport(now: number): void {
    const compound = this.report(now);
    this.lastReportAt = now;
    this.initial = false;
    this.reportsSent++;
    this.avgRtcpSize = (compound.length + UDP_IP_OVERHEAD) / 16 + (15 / 16) * this.avgRtcpSize;
    this.options.send(compound);
  }

  /** SR when we sent RTP since the report before last (RFC 3550 §6.4), else RR; a block when the peer sent since our last report. */
  private report(now: number): Buffer {
    this.options.beforeReport?.();
    const weSent = this.packetsSent > this.packetsSentAtReport[0]!;
    this.packetsSentAtReport = [this.packetsSentAtReport[1]!, this.packetsSent];
    this.peerSentAtReport = [this.peerSentAtReport[1]!, this.rtpReceived];
    const sender: SenderInfo | undefined = weSent
      ? {
          ntpMs: now,
          rtpTimestamp: (this.lastRtpTimestamp + Math.round(((now - (Number.isNaN(this.lastRtpSentAt) ? now : this.lastRtpSentAt)) * this.options.clockRate) / 1000)) >>> 0,
          packetCount: this.packetsSent,
          octetCount: this.octetsSent,
        }
      : undefined;
    const heard = this.rtpReceived !== this.receivedAtReport;
    this.receivedAtReport = this.rtpReceived;
    const block = heard ? this.reception.block(now) : undefined;
    return buildReport(this.ssrc, this.options.cname, sender, block ? [block] : []);
  }
}
