import dgram from 'node:dgram';
import { ArrivalWaiters, isRtcpPacket, rtcpReceiverReport, rtcpReceiverReportAndBye } from './rtp-peer-parts';

/**
 * A scripted plain-RTP peer for ferry media tests (a stand-in "phone" media socket on 127.0.0.1):
 * writes SDP, sends RTP/RTCP from one socket (symmetric), records what it receives.
 */
export interface ReceivedRtp {
  pt: number;
  marker: boolean;
  seq: number;
  ts: number;
  ssrc: number;
  payload: Buffer;
  from: string;
}

export class RtpTestPeer {
  readonly received: ReceivedRtp[] = [];
  readonly rtcpReceived: Buffer[] = [];
  private readonly waiters = new ArrivalWaiters();
  private seq = 1000;
  private ts = 5000;
  readonly ssrc = (Math.random() * 0xffffffff) >>> 0;
  /** Destination for send(): set from the server's SDP. */
  remote: { address: string; port: number } | undefined;

  private constructor(
    readonly socket: dgram.Socket,
    readonly port: number,
  ) {
    socket.on('message', (msg, rinfo) => {
      if (isRtcpPacket(msg)) this.rtcpReceived.push(Buffer.from(msg));
      else if (msg.length >= 12)
        this.received.push({
          pt: msg[1]! & 0x7f,
          marker: (msg[1]! & 0x80) !== 0,
          seq: msg.readUInt16BE(2),
          ts: msg.readUInt32BE(4),
          ssrc: msg.readUInt32BE(8),
          payload: Buffer.from(msg.subarray(12)),
          from: `${rinfo.address}:${rinfo.port}`,
        });
      this.waiters.arrived();
    });
  }

  static async open(): Promise<RtpTestPeer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    return new RtpTestPeer(s, s.address().port);
  }

  /** An audio offer/answer from this peer. `codecs` as [pt, 'PCMU/8000'] pairs. */
  sdp(options: { codecs?: [number, string][]; direction?: string; rtcpMux?: boolean; profile?: string } = {}): string {
    const codecs = options.codecs ?? [
      [0, 'PCMU/8000'],
      [101, 'telephone-event/8000'],
    ];
    const lines = [
      'v=0',
      `o=peer 1 1 IN IP4 127.0.0.1`,
      's=test',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      `m=audio ${this.port} ${options.profile ?? 'RTP/AVP'} ${codecs.map((c) => c[0]).join(' ')}`,
      ...codecs.map(([pt, name]) => `a=rtpmap:${pt} ${name}`),
      `a=${options.direction ?? 'sendrecv'}`,
    ];
    if (options.rtcpMux ?? true) lines.push('a=rtcp-mux');
    return lines.join('\r\n') + '\r\n';
  }

  /** Read the server's audio port out of its SDP and use it as the destination. */
  useRemoteSdp(sdp: string): { address: string; port: number } {
    const m = /^m=audio (\d+) /m.exec(sdp);
    const c = /^c=IN IP4 (\S+)/m.exec(sdp);
    if (!m || !c) throw new Error(`no audio/connection in SDP:\n${sdp}`);
    this.remote = { address: c[1]!, port: Number(m[1]) };
    return this.remote;
  }

  /** Send one RTP packet; returns the payload sent. */
  send(pt: number, payload: Buffer, options: { marker?: boolean; ts?: number } = {}): Buffer {
    if (!this.remote) throw new Error('no remote');
    const b = Buffer.alloc(12 + payload.length);
    b[0] = 0x80;
    b[1] = (options.marker ? 0x80 : 0) | pt;
    b.writeUInt16BE(this.seq++ & 0xffff, 2);
    b.writeUInt32BE((options.ts ?? (this.ts += 160)) >>> 0, 4);
    b.writeUInt32BE(this.ssrc, 8);
    payload.copy(b, 12);
    this.socket.send(b, this.remote.port, this.remote.address);
    return payload;
  }

  /** RFC 4733 telephone-event payload (event, end flag, volume 10, duration). */
  sendDtmf(pt: number, event: number, end: boolean, duration: number, ts: number): Buffer {
    const p = Buffer.from([event, (end ? 0x80 : 0) | 10, (duration >> 8) & 0xff, duration & 0xff]);
    return this.send(pt, p, { ts });
  }

  sendRaw(b: Buffer, port = this.remote!.port): void {
    this.socket.send(b, port, this.remote!.address);
  }

  /** An RR + BYE compound. */
  sendRtcpBye(port = this.remote!.port): void {
    this.sendRaw(rtcpReceiverReportAndBye(this.ssrc), port);
  }

  /** An RTCP RR alone (a muted phone keeps sending these). */
  sendRtcpRr(port = this.remote!.port): void {
    this.sendRaw(rtcpReceiverReport(this.ssrc), port);
  }

  waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    return this.waiters.waitFor(pred, timeoutMs, what);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
