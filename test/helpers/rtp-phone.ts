import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parse as parseSdp } from 'sdp-transform';
import { encodeG711 } from '../../src/media/media-files/g711';
import { sineSamples } from './audio-tone';

/**
 * A scripted IP phone's media side, on real UDP sockets (node:dgram): what no packaged phone does
 * exactly on cue. It sends PCMU at 50 packets/s, an RTCP SR every `rtcpIntervalMs`,
 * can mute (RTP stops, RTCP continues), send an RTCP BYE, stop everything, or close its sockets so
 * the far end's next send draws ICMP port unreachable. It counts what it receives (RTP, RTCP,
 * RTCP BYE) and keeps RTP arrival times so a test can measure the largest gap.
 *
 * The SIP side is not here: a test hands `sdp()` to whoever negotiates (kurento-client's
 * RtpEndpoint.processOffer, or a SIP UA) and gives the answer back to `applyRemoteSdp()`.
 * For a phone inside a network namespace, see rtp-phone-process.ts (same API, in a child process).
 */
export interface RtpPhoneOptions {
  /** Local address to bind and to put in the SDP (default 127.0.0.1). */
  address?: string;
  /** Send RTCP on the RTP port and offer a=rtcp-mux (default false: RTCP on RTP port + 1). */
  rtcpMux?: boolean;
  /** Interval between RTCP SRs (default 2000 ms; RFC 3550 phones send every ~5 s, baresip exactly 5 s). */
  rtcpIntervalMs?: number;
  /** RTP payload type to send (default 0, PCMU). */
  payloadType?: number;
  /** Send a PCMU sine tone of this frequency (Hz) instead of the changing one-byte fill (recording tests). */
  toneHz?: number;
}

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** Counters a test asserts on. Times are Date.now() values. */
export interface RtpPhoneStats {
  rtpPort: number;
  rtcpPort: number;
  rtpSent: number;
  rtcpSent: number;
  rtpReceived: number;
  rtcpReceived: number;
  /** RTCP BYE packets received (inside compound RTCP). */
  byeReceived: number;
  firstByeAt: number | undefined;
  firstRtpAt: number | undefined;
  lastRtpAt: number | undefined;
  lastRtcpAt: number | undefined;
  /** Payload bytes of the last RTP packet received, hex (to check the relay left payload intact). */
  lastPayloadHex: string | undefined;
  /** Send errors seen (e.g. ENETUNREACH after a cable pull, ECONNREFUSED). */
  sendErrors: number;
  sending: boolean;
  muted: boolean;
  closed: boolean;
}

/** One RFC 4733 packet as received by the phone. */
export interface ReceivedTelephoneEvent {
  at: number;
  marker: boolean;
  seq: number;
  ts: number;
  ssrc: number;
  event: number;
  end: boolean;
  duration: number;
}

const TELEPHONE_EVENT_PT = 101;
const TELEPHONE_EVENTS_MAX = 1000;

/** The operations both the in-process phone and the namespaced child-process phone offer. */
export interface PhonePeer {
  start(): Promise<{ rtpPort: number; rtcpPort: number }>;
  sdp(direction?: SdpDirection): Promise<string>;
  applyRemoteSdp(sdp: string): Promise<void>;
  startMedia(): Promise<void>;
  mute(): Promise<void>;
  unmute(): Promise<void>;
  sendBye(): Promise<void>;
  stopMedia(): Promise<void>;
  closeSockets(): Promise<void>;
  stats(): Promise<RtpPhoneStats>;
  /** Largest gap between consecutive RTP arrivals whose arrival time is within [from, to] (ms). */
  maxRtpGap(from: number, to: number): Promise<number>;
  /** RTP packets received with arrival time within [from, to]. */
  rtpReceivedBetween(from: number, to: number): Promise<number>;
  /** Largest gap between consecutive RTP sends within [from, to] (a starved test process stalls its own sender). */
  maxSendGap(from: number, to: number): Promise<number>;
  /** RTP packets sent within [from, to]. */
  rtpSentBetween(from: number, to: number): Promise<number>;
  close(): Promise<void>;
}

const RTP_HEADER = 12;
const PCMU_PAYLOAD = 160;
const NTP_EPOCH_OFFSET = 2208988800;

/** Largest difference between consecutive sorted times whose later one falls within [from, to]. */
export function maxGap(times: readonly number[], from: number, to: number): number {
  let max = 0;
  let previous: number | undefined;
  for (const t of times) {
    if (t < from) {
      previous = t;
      continue;
    }
    if (t > to) break;
    if (previous !== undefined) max = Math.max(max, t - previous);
    previous = t;
  }
  return max;
}

export function isRtcp(packet: Buffer): boolean {
  // RFC 5761 section 4: RTCP packet types 192-223 occupy the second byte's range that RTP PTs avoid.
  return packet.length >= 8 && packet[1]! >= 192 && packet[1]! <= 223;
}

/** Packet types of every packet inside a compound RTCP datagram. */
export function rtcpPacketTypes(compound: Buffer): number[] {
  const types: number[] = [];
  let pos = 0;
  while (pos + 4 <= compound.length) {
    types.push(compound[pos + 1]!);
    const words = compound.readUInt16BE(pos + 2);
    pos += (words + 1) * 4;
  }
  return types;
}

export class RtpPhone implements PhonePeer {
  private readonly address: string;
  private readonly rtcpMux: boolean;
  private readonly rtcpIntervalMs: number;
  private readonly payloadType: number;
  private readonly ssrc = randomInt(1, 0x7fffffff);
  private rtpSocket: dgram.Socket | undefined;
  private rtcpSocket: dgram.Socket | undefined;
  private remote: { address: string; rtpPort: number; rtcpPort: number } | undefined;
  private rtpTimer: NodeJS.Timeout | undefined;
  private rtcpTimer: NodeJS.Timeout | undefined;
  private seq = randomInt(0, 0xffff);
  private timestamp = randomInt(0, 0x7fffffff);
  private readonly arrivals: number[] = [];
  private readonly sends: number[] = [];
  private readonly counters: RtpPhoneStats = {
    rtpPort: 0,
    rtcpPort: 0,
    rtpSent: 0,
    rtcpSent: 0,
    rtpReceived: 0,
    rtcpReceived: 0,
    byeReceived: 0,
    firstByeAt: undefined,
    firstRtpAt: undefined,
    lastRtpAt: undefined,
    lastRtcpAt: undefined,
    lastPayloadHex: undefined,
    sendErrors: 0,
    sending: false,
    muted: false,
    closed: false,
  };
  private payloadByte = 0;
  /** RFC 4733 packets received (payload type 101, the one this phone's SDP names), at most TELEPHONE_EVENTS_MAX. */
  private readonly events: ReceivedTelephoneEvent[] = [];

  constructor(options: RtpPhoneOptions = {}) {
    this.address = options.address ?? '127.0.0.1';
    this.rtcpMux = options.rtcpMux ?? false;
    this.rtcpIntervalMs = options.rtcpIntervalMs ?? 2000;
    this.payloadType = options.payloadType ?? 0;
    this.toneHz = options.toneHz;
  }

  private readonly toneHz: number | undefined;
  /** samples of the tone sent so far (its phase) */
  private toneSamples = 0;

  /** Bind an even RTP port and (without mux) RTCP on the next port, as RFC 3550 phones do. */
  async start(): Promise<{ rtpPort: number; rtcpPort: number }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const rtp = await this.bind(0);
      const port = (rtp.address() as { port: number }).port;
      if (this.rtcpMux) {
        this.adopt(rtp, undefined);
        break;
      }
      if (port % 2 !== 0 || port === 65535) {
        rtp.close();
        continue;
      }
      try {
        const rtcp = await this.bind(port + 1);
        this.adopt(rtp, rtcp);
        break;
      } catch {
        rtp.close();
      }
    }
    if (!this.rtpSocket) throw new Error('rtp-phone: could not bind an RTP/RTCP port pair');
    return { rtpPort: this.counters.rtpPort, rtcpPort: this.counters.rtcpPort };
  }

  /** IP6 for an IPv6 `address` (c=IN IP6), else IP4 */
  private get addressType(): 'IP4' | 'IP6' {
    return this.address.includes(':') ? 'IP6' : 'IP4';
  }

  async sdp(direction: SdpDirection = 'sendrecv'): Promise<string> {
    if (!this.rtpSocket) throw new Error('rtp-phone: start() first');
    const lines = [
      'v=0',
      `o=rtp-phone ${this.ssrc} 1 IN ${this.addressType} ${this.address}`,
      's=rtp-phone',
      `c=IN ${this.addressType} ${this.address}`,
      't=0 0',
      `m=audio ${this.counters.rtpPort} RTP/AVP ${this.payloadType} 101`,
      `a=rtpmap:${this.payloadType} ${this.payloadType === 8 ? 'PCMA' : 'PCMU'}/8000`,
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=ptime:20',
      ...(this.rtcpMux ? ['a=rtcp-mux'] : [`a=rtcp:${this.counters.rtcpPort}`]),
      `a=${direction}`,
    ];
    return lines.join('\r\n') + '\r\n';
  }

  /** the address the far end's SDP named (c=), once applied */
  get remoteAddress(): string | undefined {
    return this.remote?.address;
  }

  async applyRemoteSdp(sdp: string): Promise<void> {
    const parsed = parseSdp(sdp);
    const audio = parsed.media.find((m) => m.type === 'audio');
    if (!audio) throw new Error('rtp-phone: remote SDP has no audio m-line');
    const address = audio.connection?.ip ?? parsed.connection?.ip;
    if (!address) throw new Error('rtp-phone: remote SDP has no c= address');
    // RFC 5761: RTCP shares the RTP port only when both sides agreed to it; a phone that answered an
    // a=rtcp-mux offer with its own a=rtcp port sends RTCP from that port to the far end's port + 1
    const mux = this.rtcpMux && audio.rtcpMux !== undefined;
    const rtcpPort = mux ? audio.port : (audio.rtcp?.port ?? audio.port + 1);
    this.remote = { address, rtpPort: audio.port, rtcpPort };
  }

  async startMedia(): Promise<void> {
    if (!this.remote) throw new Error('rtp-phone: applyRemoteSdp() first');
    this.counters.sending = true;
    this.counters.muted = false;
    if (!this.rtpTimer) this.rtpTimer = setInterval(() => this.sendRtp(), 20);
    if (!this.rtcpTimer) {
      this.sendSr();
      this.rtcpTimer = setInterval(() => this.sendSr(), this.rtcpIntervalMs);
    }
  }

  /** Mute as the lifecycle's S8 describes: RTP stops, RTCP SR continues. */
  async mute(): Promise<void> {
    this.counters.muted = true;
  }

  async unmute(): Promise<void> {
    this.counters.muted = false;
  }

  /** RTCP BYE (compound SR + BYE, RFC 3550 6.6), as baresip sends right after its SIP BYE. */
  async sendBye(): Promise<void> {
    const bye = Buffer.alloc(8);
    bye[0] = 0x81; // V=2, SC=1
    bye[1] = 203;
    bye.writeUInt16BE(1, 2);
    bye.writeUInt32BE(this.ssrc, 4);
    this.sendRtcp(Buffer.concat([this.buildSr(), bye]));
  }

  /** Stop RTP and RTCP (a hang-up without RTCP BYE, or a silent death). Sockets stay open. */
  async stopMedia(): Promise<void> {
    this.counters.sending = false;
    if (this.rtpTimer) clearInterval(this.rtpTimer);
    if (this.rtcpTimer) clearInterval(this.rtcpTimer);
    this.rtpTimer = undefined;
    this.rtcpTimer = undefined;
  }

  /** Stop media and close the sockets: the far end's next packet draws ICMP port unreachable. */
  async closeSockets(): Promise<void> {
    await this.stopMedia();
    this.counters.closed = true;
    const sockets = [this.rtpSocket, this.rtcpSocket].filter((s): s is dgram.Socket => s !== undefined);
    this.rtpSocket = undefined;
    this.rtcpSocket = undefined;
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  async stats(): Promise<RtpPhoneStats> {
    return { ...this.counters };
  }

  async maxRtpGap(from: number, to: number): Promise<number> {
    return maxGap(this.arrivals, from, to);
  }

  async maxSendGap(from: number, to: number): Promise<number> {
    return maxGap(this.sends, from, to);
  }

  async rtpSentBetween(from: number, to: number): Promise<number> {
    return this.sends.filter((t) => t >= from && t <= to).length;
  }

  async rtpReceivedBetween(from: number, to: number): Promise<number> {
    return this.arrivals.filter((t) => t >= from && t <= to).length;
  }

  async close(): Promise<void> {
    await this.closeSockets();
  }

  private bind(port: number): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket(this.address.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', reject);
      socket.bind(port, this.address, () => {
        socket.removeListener('error', reject);
        resolve(socket);
      });
    });
  }

  private adopt(rtp: dgram.Socket, rtcp: dgram.Socket | undefined): void {
    this.rtpSocket = rtp;
    this.rtcpSocket = rtcp;
    this.counters.rtpPort = (rtp.address() as { port: number }).port;
    this.counters.rtcpPort = rtcp ? (rtcp.address() as { port: number }).port : this.counters.rtpPort;
    rtp.on('message', (msg) => (isRtcp(msg) ? this.onRtcp(msg) : this.onRtp(msg)));
    rtp.on('error', () => this.counters.sendErrors++);
    rtcp?.on('message', (msg) => this.onRtcp(msg));
    rtcp?.on('error', () => this.counters.sendErrors++);
  }

  private onRtp(packet: Buffer): void {
    if (packet.length < RTP_HEADER) return;
    const now = Date.now();
    this.counters.rtpReceived++;
    this.counters.firstRtpAt ??= now;
    this.counters.lastRtpAt = now;
    this.arrivals.push(now);
    const cc = packet[0]! & 0x0f;
    this.counters.lastPayloadHex = packet.subarray(RTP_HEADER + cc * 4).toString('hex');
    const payload = packet.subarray(RTP_HEADER + cc * 4);
    if ((packet[1]! & 0x7f) === TELEPHONE_EVENT_PT && payload.length >= 4 && this.events.length < TELEPHONE_EVENTS_MAX) {
      this.events.push({
        at: now,
        marker: (packet[1]! & 0x80) !== 0,
        seq: packet.readUInt16BE(2),
        ts: packet.readUInt32BE(4),
        ssrc: packet.readUInt32BE(8),
        event: payload[0]!,
        end: (payload[1]! & 0x80) !== 0,
        duration: payload.readUInt16BE(2),
      });
    }
  }

  /** The RFC 4733 telephone-event packets received so far, in arrival order. */
  telephoneEvents(): ReceivedTelephoneEvent[] {
    return [...this.events];
  }

  private onRtcp(packet: Buffer): void {
    const now = Date.now();
    this.counters.rtcpReceived++;
    this.counters.lastRtcpAt = now;
    // the far end's SR (first in a compound): its SSRC and NTP middle 32 bits, echoed as LSR/DLSR in our reports
    if (packet.length >= 28 && packet[1] === 200) this.lastSr = { ssrc: packet.readUInt32BE(4), ntpMiddle: ((packet.readUInt32BE(8) & 0xffff) << 16 | packet.readUInt32BE(12) >>> 16) >>> 0, at: now };
    for (const type of rtcpPacketTypes(packet)) {
      if (type === 203) {
        this.counters.byeReceived++;
        this.counters.firstByeAt ??= now;
      }
    }
  }

  private sendRtp(): void {
    if (!this.remote || !this.rtpSocket || this.counters.muted) return;
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + PCMU_PAYLOAD) >>> 0;
    const packet = Buffer.alloc(RTP_HEADER + PCMU_PAYLOAD);
    packet[0] = 0x80;
    packet[1] = this.payloadType;
    packet.writeUInt16BE(this.seq, 2);
    packet.writeUInt32BE(this.timestamp, 4);
    packet.writeUInt32BE(this.ssrc, 8);
    // A recognisable, changing payload: each packet is filled with one byte value (checks relay integrity).
    if (this.toneHz !== undefined) {
      const pcm = sineSamples(this.toneHz, 8000, PCMU_PAYLOAD, 0.5, this.toneSamples);
      this.toneSamples += PCMU_PAYLOAD;
      encodeG711('mulaw', pcm, 0, PCMU_PAYLOAD, packet, RTP_HEADER);
    } else {
      this.payloadByte = (this.payloadByte + 1) & 0x7f;
      packet.fill(this.payloadByte, RTP_HEADER);
    }
    this.rtpSocket.send(packet, this.remote.rtpPort, this.remote.address, (err) => {
      if (err) this.counters.sendErrors++;
    });
    this.counters.rtpSent++;
    this.sends.push(Date.now());
  }

  /** the far end's last SR, for the report block (RFC 3550 6.4.1: LSR/DLSR let the far end measure the round trip) */
  private lastSr: { ssrc: number; ntpMiddle: number; at: number } | undefined;

  private buildSr(): Buffer {
    const block = this.lastSr !== undefined;
    const sr = Buffer.alloc(block ? 52 : 28);
    sr[0] = block ? 0x81 : 0x80;
    sr[1] = 200;
    sr.writeUInt16BE(block ? 12 : 6, 2);
    if (this.lastSr) {
      // one report block about the far end's stream: no loss, LSR and DLSR (1/65536 s)
      sr.writeUInt32BE(this.lastSr.ssrc, 28);
      sr.writeUInt32BE(this.lastSr.ntpMiddle, 44);
      sr.writeUInt32BE(Math.min(0xffffffff, Math.round(((Date.now() - this.lastSr.at) / 1000) * 65536)) >>> 0, 48);
    }
    sr.writeUInt32BE(this.ssrc, 4);
    const now = Date.now();
    sr.writeUInt32BE((Math.floor(now / 1000) + NTP_EPOCH_OFFSET) >>> 0, 8);
    sr.writeUInt32BE(Math.floor(((now % 1000) / 1000) * 0x100000000) >>> 0, 12);
    sr.writeUInt32BE(this.timestamp, 16);
    sr.writeUInt32BE(this.counters.rtpSent >>> 0, 20);
    sr.writeUInt32BE((this.counters.rtpSent * PCMU_PAYLOAD) >>> 0, 24);
    return sr;
  }

  private sendSr(): void {
    this.sendRtcp(this.buildSr());
  }

  private sendRtcp(packet: Buffer): void {
    const socket = this.rtcpSocket ?? this.rtpSocket;
    if (!this.remote || !socket) return;
    socket.send(packet, this.remote.rtcpPort, this.remote.address, (err) => {
      if (err) this.counters.sendErrors++;
    });
    this.counters.rtcpSent++;
  }
}
