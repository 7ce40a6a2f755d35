import type { Socket } from 'node:dgram';
import path from 'node:path';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpPacket,
  type RTCDtlsTransport,
} from 'werift';
import { rtcpCompoundHasBye } from './rtcp-test-packets';

/**
 * The WebRTC peer of the WebRTC-leg tests, on werift's own unmodified stack: werift's ICE, DTLS, SRTP and
 * SRTCP do every byte of crypto and framing, and nothing of ferry is loaded (this file runs in its own
 * process, see webrtc-test-peer-host.ts: ferry reconfigures werift process-wide, so the peer must not share
 * a process with it). What it adds to werift is observation and fault injection, never a replacement:
 * - it reads the plain RTP/RTCP werift decrypts (by wrapping werift's decrypt; werift's receive path stays);
 * - it sends arbitrary RTP (any PT, seq, marker; its own SSRC stamped) through werift's DTLS transport
 *   `sendRtp`, arbitrary RTCP compounds through `sendRtcp`;
 * - werift 0.25.2 has no call that sends a DTLS alert, so `closeNotify` builds the record with werift's own
 *   record builder and cipher, exactly as werift's `send` builds an application-data record;
 * - the ICE agent's default STUN server is cleared so gathering never leaves the machine (werift falls back to
 *   a public STUN server even with `iceServers: []`); host candidates on 127.0.0.1 only.
 * It offers G.711 (PCMU, PCMA) + telephone-event/8000 at PT 126 (as Chromium numbers it); trickle ICE.
 */

export interface DecryptedMediaSink {
  rtp(packet: Buffer): void;
  rtcp(packet: Buffer): void;
}

export interface WeriftTestPeerEvents {
  rtp(packet: Buffer): void;
  rtcp(packet: Buffer, bye: boolean, at: number): void;
  dtlsState(state: string, at: number): void;
  candidate(c: { candidate: string; sdpMid: string; sdpMLineIndex: number }): void;
  connected(): void;
  sentSrtp(datagram: Buffer): void;
}

/** Datagram kinds a test can hold back (`holdDatagrams`). */
export type HeldDatagramKind = 'dtls-hello-verify-request';

interface WeriftTransportInternals {
  srtp?: { decrypt: (buf: Buffer) => Buffer };
  srtcp?: { decrypt: (buf: Buffer) => Buffer };
  dtls?: {
    dtls: { recordSequenceNumber: number };
    cipher: { encryptPacket(pkt: unknown): { serialize(): Buffer } };
    transport: { send(buf: Buffer): Promise<unknown> | unknown };
  };
  iceTransport: { connection: WeriftIceConnectionInternals };
}
interface WeriftIceConnectionInternals {
  stunServer?: unknown;
  send(data: Buffer): Promise<void>;
  protocols: Array<{ transport?: { socket?: Socket; send?: (d: Buffer, a?: unknown) => Promise<void> } }>;
  nominated?: { protocol: { transport?: { socket?: Socket } }; remoteAddr: [string, number] };
}

function internalsOf(t: RTCDtlsTransport): WeriftTransportInternals {
  return t as unknown as WeriftTransportInternals;
}

/**
 * Observe the plain packets werift decrypts on `transport` (its receive path unchanged: werift still parses
 * and routes them). werift hands RTCP to the application only after its own parser, which drops BYE, so the
 * decrypted bytes are read here.
 */
export function tapDecryptedMedia(transport: RTCDtlsTransport, sink: DecryptedMediaSink): void {
  const t = internalsOf(transport);
  const srtp = t.srtp;
  const srtcp = t.srtcp;
  if (!srtp || !srtcp) throw new Error('SRTP is not started on this DTLS transport');
  const decryptRtp = srtp.decrypt;
  srtp.decrypt = (buf: Buffer): Buffer => {
    const plain = decryptRtp(buf);
    sink.rtp(Buffer.from(plain));
    return plain;
  };
  const decryptRtcp = srtcp.decrypt;
  srtcp.decrypt = (buf: Buffer): Buffer => {
    const plain = decryptRtcp(buf);
    sink.rtcp(Buffer.from(plain));
    return plain;
  };
}

type CreatePlaintext = (dtls: unknown) => (fragments: { type: number; fragment: Buffer }[], recordSequenceNumber: number) => unknown[];
let createPlaintext: CreatePlaintext | undefined;
/** werift's DTLS record builder (not exported from the package root: required by its file path). */
function weriftCreatePlaintext(): CreatePlaintext {
  if (!createPlaintext) {
    const file = path.join(path.dirname(require.resolve('werift')), '../../dtls/src/record/builder.js');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    createPlaintext = (require(file) as { createPlaintext: CreatePlaintext }).createPlaintext;
  }
  return createPlaintext;
}

const DTLS_CONTENT_TYPE_ALERT = 21;
const DTLS_CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_HELLO_VERIFY_REQUEST = 3;

function isHelloVerifyRequest(b: Buffer): boolean {
  return b.length > 13 && b[0] === DTLS_CONTENT_TYPE_HANDSHAKE && b[13] === HANDSHAKE_HELLO_VERIFY_REQUEST;
}

export class WeriftTestPeer {
  readonly pc: RTCPeerConnection;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private transport: RTCDtlsTransport | undefined;

  constructor(
    private readonly events: WeriftTestPeerEvents,
    readonly ssrc: number,
    opts: { pcmaOnly?: boolean; telephoneEventPt?: number } = {},
  ) {
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
    this.pc.onIceCandidate.subscribe((c) => {
      if (c) events.candidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 });
    });
  }

  /** Our offer without candidates (they trickle as `candidate` events). */
  async createOffer(): Promise<string> {
    this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    const offer = await this.pc.createOffer();
    this.keepGatheringLocal();
    await this.pc.setLocalDescription(offer);
    await this.gathered();
    this.watch();
    return this.pc.localDescription!.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate') && !l.startsWith('a=end-of-candidates')).join('\r\n');
  }

  /** Answer an offer (complete SDP back). */
  async answer(offer: string): Promise<string> {
    this.pc.onRemoteTransceiverAdded.subscribe((t) => {
      t.sender.replaceTrack(this.track).catch(() => undefined);
      t.setDirection('sendrecv');
    });
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const answer = await this.pc.createAnswer();
    this.keepGatheringLocal();
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

  /** No server-reflexive gathering: werift would otherwise ask its built-in public STUN server. */
  private keepGatheringLocal(): void {
    for (const it of this.pc.iceTransports) (it as unknown as { connection: WeriftIceConnectionInternals }).connection.stunServer = undefined;
  }

  private async gathered(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise<void>((r) => this.pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && r()));
  }

  private watch(): void {
    for (const t of this.pc.dtlsTransports) {
      t.onStateChange.subscribe((s) => {
        this.events.dtlsState(s, Date.now());
        if (s === 'connected' && !this.transport) {
          this.transport = t;
          tapDecryptedMedia(t, {
            rtp: (p) => this.events.rtp(p),
            rtcp: (p) => this.events.rtcp(p, rtcpCompoundHasBye(p), Date.now()),
          });
          this.recordSentSrtp(t);
          this.events.connected();
        }
      });
    }
  }

  /** Report every SRTP datagram this peer sends (for the replay test), taken at the socket. */
  private recordSentSrtp(t: RTCDtlsTransport): void {
    const socket = internalsOf(t).iceTransport.connection.nominated?.protocol.transport?.socket;
    if (!socket) return;
    const send = socket.send.bind(socket) as (...a: unknown[]) => void;
    (socket as unknown as { send: (...a: unknown[]) => void }).send = (...args: unknown[]) => {
      const b = args[0];
      if (Buffer.isBuffer(b) && b.length > 12 && b[0]! >= 128 && b[0]! <= 191 && b[1]! < 192) this.events.sentSrtp(Buffer.from(b));
      send(...args);
    };
  }

  private connectedTransport(): RTCDtlsTransport {
    if (!this.transport) throw new Error('not connected');
    return this.transport;
  }

  /** Send a plain RTP packet as it is (PT, seq, timestamp, marker, payload) under this peer's SSRC, through werift's SRTP. */
  async sendRtp(packet: Buffer): Promise<void> {
    const rtp = RtpPacket.deSerialize(packet);
    rtp.header.ssrc = this.ssrc;
    await this.connectedTransport().sendRtp(rtp.payload, rtp.header);
  }

  /** Send a plain RTCP compound as it is, through werift's SRTCP. */
  async sendRtcp(compound: Buffer): Promise<void> {
    await this.connectedTransport().sendRtcp([{ serialize: () => compound } as never]);
  }

  /** Send a captured SRTP datagram again, unchanged. */
  async replay(datagram: Buffer): Promise<void> {
    await internalsOf(this.connectedTransport()).iceTransport.connection.send(datagram);
  }

  /** Send raw bytes on the selected pair, unprotected (forged DTLS records for fault tests). */
  sendRaw(datagram: Buffer): void {
    const pair = internalsOf(this.connectedTransport()).iceTransport.connection.nominated;
    pair?.protocol.transport?.socket?.send(datagram, pair.remoteAddr[1], pair.remoteAddr[0]);
  }

  /** A DTLS close_notify alert (warning, close_notify) protected under the session keys, built by werift. */
  async closeNotify(): Promise<void> {
    const socket = internalsOf(this.connectedTransport()).dtls;
    if (!socket) throw new Error('no DTLS socket');
    const [record] = weriftCreatePlaintext()(socket.dtls)([{ type: DTLS_CONTENT_TYPE_ALERT, fragment: Buffer.from([1, 0]) }], ++socket.dtls.recordSequenceNumber);
    await socket.transport.send(socket.cipher.encryptPacket(record).serialize());
  }

  /**
   * Hold back this peer's outgoing datagrams of `kind`, from the first one for `holdMs`, then send them all at
   * once (late, not lost): e.g. DTLS HelloVerifyRequests, so the other side, having retransmitted its
   * ClientHello meanwhile, receives two of them back to back (a slow peer).
   */
  holdDatagrams(kind: HeldDatagramKind, holdMs: number): void {
    const match = kind === 'dtls-hello-verify-request' ? isHelloVerifyRequest : () => false;
    let queue: (() => void)[] | undefined;
    let released = false;
    for (const it of this.pc.iceTransports) {
      for (const p of (it as unknown as { connection: WeriftIceConnectionInternals }).connection.protocols) {
        const t = p.transport;
        const send = t?.send;
        if (!t || !send) continue;
        t.send = (d: Buffer, a?: unknown) => {
          if (released || !match(d)) return send.call(t, d, a);
          if (!queue) {
            queue = [];
            setTimeout(() => {
              released = true;
              for (const f of queue!) f();
            }, holdMs);
          }
          queue.push(() => void send.call(t, d, a).catch(() => undefined));
          return Promise.resolve();
        };
      }
    }
  }

  /** Stop answering and sending anything (a frozen peer: cable pulled). */
  freeze(): void {
    for (const it of this.pc.iceTransports) {
      for (const p of (it as unknown as { connection: WeriftIceConnectionInternals }).connection.protocols) {
        p.transport?.socket?.removeAllListeners('message');
        if (p.transport) p.transport.send = async () => undefined;
      }
    }
  }

  async close(): Promise<void> {
    await this.pc.close().catch(() => undefined);
  }
}
