import dgram from 'node:dgram';
import { newSrtpMaster } from '../../src/media/srtp/sdes-crypto';
import { SrtpContext, type SrtpMaster } from '../../src/media/srtp/srtp-context';
import { parseRtcpCompound, type RtcpSummary } from '../../src/media/rtcp/rtcp-packets';
import { ArrivalWaiters, isRtcpPacket, rtcpReceiverReportAndBye } from './rtp-peer-parts';

/**
 * A scripted SRTP-SDES "phone" media socket on 127.0.0.1 for ferry media tests: offers RTP/SAVP with
 * its own key, learns ferry's key from the answer, sends protected RTP/RTCP (rtcp-mux), and keeps
 * every datagram it receives both as it came off the wire and after unprotecting it with ferry's key.
 */
export interface SrtpReceived {
  wire: Buffer;
  /** the unprotected packet, or undefined when it did not authenticate with ferry's key */
  clear: Buffer | undefined;
}

export class SrtpTestPeer {
  readonly rtp: SrtpReceived[] = [];
  readonly rtcp: (SrtpReceived & { summary: RtcpSummary | undefined })[] = [];
  readonly master: SrtpMaster = newSrtpMaster();
  private readonly outbound = new SrtpContext(this.master);
  private inbound: SrtpContext | undefined;
  private readonly waiters = new ArrivalWaiters();
  private seq = 40_000;
  private ts = 1000;
  readonly ssrc = (Math.random() * 0xffffffff) >>> 0;
  remote: { address: string; port: number } | undefined;
  /** what ferry's answer put in a=crypto (tag, suite, key) */
  answerCrypto: { tag: number; suite: string; keyBase64: string } | undefined;

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      const wire = Buffer.from(msg);
      if (isRtcpPacket(msg)) {
        const clear = this.inbound?.unprotectRtcp(Buffer.from(msg));
        this.rtcp.push({ wire, clear, summary: clear ? parseRtcpCompound(clear) : undefined });
      } else {
        this.rtp.push({ wire, clear: this.inbound?.unprotectRtp(Buffer.from(msg)) });
      }
      this.waiters.arrived();
    });
  }

  static async open(): Promise<SrtpTestPeer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    return new SrtpTestPeer(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get keyBase64(): string {
    return Buffer.concat([this.master.masterKey, this.master.masterSalt]).toString('base64');
  }

  /** An RTP/SAVP offer (or answer) with our key; `crypto` replaces the a=crypto lines when given. */
  sdp(options: { profile?: string; crypto?: string[] } = {}): string {
    const crypto = options.crypto ?? [`1 AES_CM_128_HMAC_SHA1_80 inline:${this.keyBase64}`];
    return [
      'v=0',
      'o=peer 1 1 IN IP4 127.0.0.1',
      's=srtp test',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      `m=audio ${this.port} ${options.profile ?? 'RTP/SAVP'} 0 101`,
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:101 telephone-event/8000',
      ...crypto.map((c) => `a=crypto:${c}`),
      'a=rtcp-mux',
      'a=sendrecv',
      '',
    ].join('\r\n');
  }

  /** Take ferry's address, port and SDES key from its SDP. */
  useRemoteSdp(sdp: string): void {
    const m = /^m=audio (\d+) (\S+) /m.exec(sdp);
    const c = /^c=IN IP4 (\S+)/m.exec(sdp);
    const k = /^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)/m.exec(sdp);
    if (!m || !c || !k) throw new Error(`no audio/connection/crypto in SDP:\n${sdp}`);
    this.remote = { address: c[1]!, port: Number(m[1]) };
    this.answerCrypto = { tag: Number(k[1]), suite: k[2]!, keyBase64: k[3]! };
    const bytes = Buffer.from(k[3]!, 'base64');
    this.inbound = new SrtpContext({ masterKey: bytes.subarray(0, 16), masterSalt: bytes.subarray(16) });
  }

  /** A plain RTP packet as this peer would send it (before protection). */
  plainRtp(payload: Buffer, pt = 0): Buffer {
    const b = Buffer.alloc(12 + payload.length);
    b[0] = 0x80;
    b[1] = pt;
    b.writeUInt16BE(this.seq++ & 0xffff, 2);
    b.writeUInt32BE((this.ts += 160) >>> 0, 4);
    b.writeUInt32BE(this.ssrc, 8);
    payload.copy(b, 12);
    return b;
  }

  /** Protect and send one RTP packet; returns the datagram that went on the wire. */
  sendRtp(payload: Buffer): Buffer {
    const wire = this.outbound.protectRtp(this.plainRtp(payload));
    this.sendRaw(wire);
    return wire;
  }

  /** Protect and send an RR + BYE compound. */
  sendRtcpBye(): void {
    this.sendRaw(this.outbound.protectRtcp(rtcpReceiverReportAndBye(this.ssrc)));
  }

  sendRaw(b: Buffer): void {
    if (!this.remote) throw new Error('no remote');
    this.socket.send(b, this.remote.port, this.remote.address);
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
