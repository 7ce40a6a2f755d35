import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCDtlsTransport,
} from 'werift';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { disableDefaultStunServer, ignoreDuplicateHelloVerify, sendDtlsCloseNotify, sendSrtcp, sendSrtp, tapDecryptedMedia } from '../../src/media/webrtc/werift-internals';

/**
 * A browser-like WebRTC peer for the WebRTC-leg tests: werift (full ICE, DTLS-SRTP) on 127.0.0.1, offering
 * opus-less G.711 + telephone-event/8000 at PT 126 (as Chromium numbers it). It records every decrypted RTP
 * and RTCP packet it receives byte for byte, and can send any plain RTP (DTMF included), an RTCP BYE, a
 * DTLS close_notify, or replay a captured SRTP datagram. Trickle ICE: candidates are collected, not inlined.
 */
export class WebRtcTestPeer {
  readonly pc: RTCPeerConnection;
  readonly rtpIn: Buffer[] = [];
  readonly rtcpIn: { packet: Buffer; bye: boolean; at: number }[] = [];
  readonly dtlsStates: { state: string; at: number }[] = [];
  readonly candidates: { candidate: string; sdpMid: string; sdpMLineIndex: number }[] = [];
  readonly sentSrtp: Buffer[] = [];
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private transport: RTCDtlsTransport | undefined;
  private connectedResolve: (() => void) | undefined;
  readonly connected: Promise<void>;
  readonly ssrc = 0x5eed0001;

  constructor(opts: { pcmaOnly?: boolean; telephoneEventPt?: number } = {}) {
    const audio = [];
    if (!opts.pcmaOnly) audio.push(new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 }));
    audio.push(new RTCRtpCodecParameters({ mimeType: 'audio/PCMA', clockRate: 8000, channels: 1, payloadType: 8 }));
    audio.push(new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, channels: 1, payloadType: opts.telephoneEventPt ?? 126 }));
    this.pc = new RTCPeerConnection({
      iceServers: [],
      codecs: { audio, video: [] },
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      iceInterfaceAddresses: { udp4: '127.0.0.1' },
    });
    this.connected = new Promise((r) => (this.connectedResolve = r));
    this.pc.onIceCandidate.subscribe((c) => {
      if (c) this.candidates.push({ candidate: c.candidate, sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 });
    });
  }

  /** Our offer without candidates (they trickle: read `candidates` after gathering). */
  async createOffer(): Promise<string> {
    this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    const offer = await this.pc.createOffer();
    disableDefaultStunServer(this.pc);
    await this.pc.setLocalDescription(offer);
    await this.gathered();
    this.watch();
    return this.pc.localDescription!.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate') && !l.startsWith('a=end-of-candidates')).join('\r\n');
  }

  /** Answer a ferry offer (complete SDP back). */
  async answer(offer: string): Promise<string> {
    this.pc.onRemoteTransceiverAdded.subscribe((t) => {
      void t.sender.replaceTrack(this.track);
      t.setDirection('sendrecv');
    });
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const answer = await this.pc.createAnswer();
    disableDefaultStunServer(this.pc);
    await this.pc.setLocalDescription(answer);
    await this.gathered();
    this.watch();
    return this.pc.localDescription!.sdp;
  }

  async setAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  async addCandidate(c: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<void> {
    await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 });
  }

  private async gathered(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise<void>((r) => this.pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && r()));
  }

  private watch(): void {
    for (const t of this.pc.dtlsTransports) {
      t.onStateChange.subscribe((s) => {
        this.dtlsStates.push({ state: s, at: Date.now() });
        if (s === 'connecting') ignoreDuplicateHelloVerify(t); // this peer is the DTLS client when it answers
        if (s === 'connected' && !this.transport) {
          this.transport = t;
          tapDecryptedMedia(t, {
            rtp: (p) => this.rtpIn.push(Buffer.from(p)),
            rtcp: (p) => this.rtcpIn.push({ packet: Buffer.from(p), bye: parseRtcpCompound(p).bye, at: Date.now() }),
            replayed: () => undefined,
          });
          // Record every SRTP datagram this peer sends (for the replay test), at the socket.
          const conn = (t as unknown as { iceTransport: { connection: { nominated?: { protocol: { transport?: { socket?: import('node:dgram').Socket } } } } } }).iceTransport.connection;
          const socket = conn.nominated?.protocol.transport?.socket;
          if (socket) {
            const send = socket.send.bind(socket) as (...a: unknown[]) => void;
            (socket as unknown as { send: (...a: unknown[]) => void }).send = (...args: unknown[]) => {
              const b = args[0];
              if (Buffer.isBuffer(b) && b.length > 12 && b[0]! >= 128 && b[0]! <= 191 && b[1]! < 192) this.sentSrtp.push(Buffer.from(b));
              send(...args);
            };
          }
          this.connectedResolve?.();
        }
      });
    }
  }

  sendRtp(packet: Buffer): void {
    if (!this.transport) throw new Error('not connected');
    sendSrtp(this.transport, packet, this.ssrc);
  }

  sendRtcp(compound: Buffer): void {
    if (!this.transport) throw new Error('not connected');
    sendSrtcp(this.transport, compound);
  }

  /** Send a captured SRTP datagram again, unchanged. */
  async replay(datagram: Buffer): Promise<void> {
    const conn = (this.transport as unknown as { iceTransport: { connection: { send(b: Buffer): Promise<void> } } }).iceTransport.connection;
    await conn.send(datagram);
  }

  /** Send raw bytes on the selected pair, unprotected (forged DTLS records for fault tests). */
  sendRaw(datagram: Buffer): void {
    const conn = (this.transport as unknown as { iceTransport: { connection: { nominated?: { protocol: { transport?: { socket?: import('node:dgram').Socket } }; remoteAddr: [string, number] } } } }).iceTransport.connection;
    const pair = conn.nominated;
    pair?.protocol.transport?.socket?.send(datagram, pair.remoteAddr[1], pair.remoteAddr[0]);
  }

  async closeNotify(): Promise<void> {
    if (this.transport) await sendDtlsCloseNotify(this.transport);
  }

  /**
   * Hold back this peer's outgoing datagrams that `match` selects, from the first one for `holdMs`, then
   * send them all at once (late, not lost): e.g. DTLS HelloVerifyRequests, so the other side, having
   * retransmitted its ClientHello meanwhile, receives two of them back to back (a slow peer).
   */
  holdDatagrams(match: (b: Buffer) => boolean, holdMs: number): void {
    let queue: (() => void)[] | undefined;
    let released = false;
    for (const it of this.pc.iceTransports) {
      const conn = (it as unknown as { connection: { protocols: Array<{ transport?: { send: (d: Buffer, a?: unknown) => Promise<void> } }> } }).connection;
      for (const p of conn.protocols) {
        const t = p.transport;
        if (!t) continue;
        const send = t.send;
        t.send = (d: Buffer, a?: unknown) => {
          if (released || !match(d)) return send(d, a);
          if (!queue) {
            queue = [];
            setTimeout(() => {
              released = true;
              for (const f of queue!) f();
            }, holdMs);
          }
          queue.push(() => void send(d, a).catch(() => undefined));
          return Promise.resolve();
        };
      }
    }
  }

  /** Stop answering and sending anything (a frozen peer: cable pulled). */
  freeze(): void {
    for (const it of this.pc.iceTransports) {
      const conn = (it as unknown as { connection: { protocols: Array<{ transport?: { socket?: import('node:dgram').Socket; send?: unknown } }> } }).connection;
      for (const p of conn.protocols) {
        p.transport?.socket?.removeAllListeners('message');
        if (p.transport) p.transport.send = async () => undefined;
      }
    }
  }

  async close(): Promise<void> {
    await this.pc.close().catch(() => undefined);
  }
}

/** A plain RTP packet: PT, seq, timestamp, SSRC, payload. */
export function rtpPacket(pt: number, seq: number, ts: number, ssrc: number, payload: Buffer, marker = false): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  payload.copy(b, 12);
  return b;
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
