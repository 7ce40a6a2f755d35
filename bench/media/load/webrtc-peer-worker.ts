/**
 * Load worker (a separate process, started with fork()): plays the browser side of many calls with
 * werift 0.25.2 PeerConnections (ICE + DTLS-SRTP, PCMU only, loopback only). For each stream it
 * makes the offer, applies the media server's answer and trickled candidates, and once connected
 * sends 50 packets/s of 172-byte PCMU and counts the stamped packets it receives.
 *
 * Lean mode (the default of the benchmark): once ICE+DTLS are up, media bypasses werift both ways
 * (lean-browser-path.ts): ferry's own SRTP contexts, keyed from werift's DTLS session, protect each
 * packet into one wire buffer per stream, sent on the nominated ICE pair's socket; received SRTP is
 * taken off the ICE socket by the RFC 7983 demultiplexer before werift's event chain and decrypted in
 * place. On the wire nothing changes (same SRTP, same ICE pair, werift still answers consent checks and
 * DTLS; its sender and receiver send RTCP only on RTP that goes through werift, so in both versions of this
 * mode the browser sends none, and werift keys no SRTP session), but a packet costs the generator a fraction
 * of werift's path, so one generator core drives several hundred calls. Full mode (`--browser full`) uses
 * werift's track API.
 *
 * Like Chromium, in both modes: the handshake's public-key steps run in native code (node:crypto, as
 * ferry media itself does them: useNodeCryptoForDtls), and as the DTLS server (it offers actpass, ferry
 * answers active) it picks AES_CM_128_HMAC_SHA1_80 before AEAD_AES_128_GCM (Chromium lists GCM after the
 * AES-CM suites, and BoringSSL's server takes its own order; werift's own order is GCM first), so the
 * server under test runs the profile it runs with Chromium.
 */
import { MediaStreamTrack, RTCCertificate, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { srtpProfile } from '../../../src/media/srtp/srtp-profile';
import {
  disableDefaultStunServer,
  preferSrtpProfiles,
  shareParsedDtlsCertificate,
  skipWeriftSrtp,
  useLazyDtlsCipherSummary,
  useLeanWeriftEvent,
  useNodeCryptoForDtls,
} from '../../../src/media/webrtc/werift-internals';
import { LeanBrowserPath } from './lean-browser-path';
import { SendPacer, type PacedStream } from './send-pacer';
import { StreamMeter } from './stream-meter';
import { createPacketBuffer, PACKET_BYTES, stampNext } from './stream-stamp';
import { serveWorker, type StreamSpec, type WorkerReport, type WorkerRequest } from './worker-protocol';

useNodeCryptoForDtls();
// What ferry media does for its own peer connections, for the same reason (docs/benchmarks.md, "WebRTC set-up
// CPU"): the one certificate parsed once per process, werift's cipher summary built only for debug output, and
// werift's Event without per-instance closures. None of it changes a byte on the wire.
shareParsedDtlsCertificate(RTCCertificate);
useLazyDtlsCipherSummary();
useLeanWeriftEvent();
/** Chromium's DTLS-SRTP profile order (AES-CM before GCM). */
const CHROMIUM_SRTP_ORDER = [srtpProfile('AES_CM_128_HMAC_SHA1_80').dtlsId, srtpProfile('AEAD_AES_128_GCM').dtlsId];

/** FERRY_BENCH_JS_SRTP=1: the lean path's RTP through the JavaScript SRTP contexts, not the native ones (to compare). */
const JS_SRTP = process.env.FERRY_BENCH_JS_SRTP === '1';
let epoch = 0;
let rtcpReceived = 0;
const meter = new StreamMeter();
const pacer = new SendPacer((n) => meter.onSkipped(epoch, n));

function peerConfig(): ConstructorParameters<typeof RTCPeerConnection>[0] {
  return {
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })],
    },
    // Loopback only: no interface scan, one host candidate on 127.0.0.1.
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  };
}

class WebRtcPeer implements PacedStream {
  readonly pc = new RTCPeerConnection(peerConfig());
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private seq = Math.floor(Math.random() * 30000);
  private readonly packet: Buffer;
  private remoteSet = false;
  private readonly queuedCandidates: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }[] = [];
  readonly connected: Promise<void>;
  private closed = false;
  private isConnected = false;
  /** The lean packet path: installed once gathering is done, started when DTLS connects (lean mode only). */
  private lean: LeanBrowserPath | undefined;
  /** Epoch ms (this process's clock, sub-ms) of ICE 'connected' and of the PeerConnection 'connected' (ICE + DTLS). */
  readonly times: { iceConnectedAt?: number; connectedAt?: number } = {};

  constructor(
    readonly spec: StreamSpec,
    private readonly leanMode: boolean,
  ) {
    this.packet = createPacketBuffer(spec.ssrc, spec.streamId, spec.direction);
    this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    this.pc.onTrack.subscribe((t) => {
      t.onReceiveRtp.subscribe((rtp) => {
        meter.onReceived(rtp.payload, process.hrtime.bigint());
      });
    });
    this.pc.iceConnectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.times.iceConnectedAt === undefined) this.times.iceConnectedAt = performance.timeOrigin + performance.now();
    });
    this.connected = new Promise((resolve, reject) => {
      this.pc.connectionStateChange.subscribe((state) => {
        if (state === 'connected') {
          this.times.connectedAt ??= performance.timeOrigin + performance.now();
          if (this.leanMode) {
            try {
              this.goLean();
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
              return;
            }
          }
          this.isConnected = true;
          pacer.add(this);
          resolve();
        } else if (state === 'failed' || state === 'closed') {
          pacer.remove(this);
          reject(new Error(`peer connection ${state}`));
        }
      });
    });
    this.connected.catch(() => undefined);
  }

  async offer(): Promise<string> {
    const offer = await this.pc.createOffer();
    // loopback host candidates only, as a browser without STUN servers gathers: without this werift would
    // resolve stun.l.google.com and query it for every peer connection (ICE default it falls back to)
    disableDefaultStunServer(this.pc);
    await this.pc.setLocalDescription(offer);
    const dtls = this.pc.dtlsTransports[0];
    if (!dtls || !preferSrtpProfiles(dtls, CHROMIUM_SRTP_ORDER)) throw new Error('cannot set the SRTP profile order before DTLS');
    // Lean: werift's SRTP session would carry nothing. Its sender and receivers start their RTCP only on RTP that
    // goes through werift (none does: the lean path sends and receives it), and SRTCP from the server goes to the
    // lean path too; so werift keys no SRTP session of its own, as ferry media's leg does (skipWeriftSrtp).
    if (this.leanMode) skipWeriftSrtp(dtls);
    if (this.pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        this.pc.iceGatheringStateChange.subscribe((s) => {
          if (s === 'complete') resolve();
        });
      });
    }
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new Error('werift produced no local description');
    // the ICE sockets exist now: received media is taken off them before werift's event chain
    if (this.leanMode) this.lean = new LeanBrowserPath(this.pc, (packet) => meter.onReceivedRtp(packet, process.hrtime.bigint()), !JS_SRTP);
    return sdp;
  }

  async answer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    this.remoteSet = true;
    for (const c of this.queuedCandidates.splice(0)) await this.pc.addIceCandidate(c);
  }

  async candidate(c: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }): Promise<void> {
    if (!this.remoteSet) {
      this.queuedCandidates.push(c);
      return;
    }
    await this.pc.addIceCandidate(c);
  }

  diag(): Record<string, unknown> {
    const dtls = this.pc.dtlsTransports[0];
    const ice = dtls?.iceTransport;
    type Cand = { host?: string; port?: number; type?: string };
    const pair = (ice?.connection as unknown as { nominated?: { localCandidate?: Cand; remoteCandidate?: Cand } } | undefined)
      ?.nominated;
    const c = (x: Cand | undefined): string => (x ? `${x.host}:${x.port} ${x.type}` : '?');
    return {
      streamId: this.spec.streamId,
      connectionState: this.pc.connectionState,
      iceConnectionState: this.pc.iceConnectionState,
      dtlsState: dtls?.state,
      lean: this.lean?.started ?? false,
      leanCounters: this.lean
        ? { ...this.lean.counters, srtpProfile: this.lean.profile, nativeSrtp: this.lean.nativeSrtp, demux: { ...this.lean.demux } }
        : undefined,
      packetsSent: (dtls as unknown as { packetsSent?: number } | undefined)?.packetsSent,
      packetsReceived: (dtls as unknown as { packetsReceived?: number } | undefined)?.packetsReceived,
      nominated: pair ? { local: c(pair.localCandidate), remote: c(pair.remoteCandidate) } : null,
      remoteCandidates: this.pc.remoteDescription?.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate')),
    };
  }

  get sending(): boolean {
    return this.isConnected && !this.closed;
  }

  /** Start the lean packet path (see the file comment): ferry's SRTP keyed from the DTLS session, werift's SSRC. */
  private goLean(): void {
    const dtls = this.pc.dtlsTransports[0];
    const ssrc = this.pc.getTransceivers()[0]?.sender.ssrc;
    const lean = this.lean;
    if (!dtls || ssrc === undefined || !lean) throw new Error('lean mode: no DTLS transport / sender SSRC / lean path');
    // the SSRC werift signalled in the offer, written once into the stream's packet buffer
    this.packet.writeUInt32BE(ssrc >>> 0, 8);
    lean.start(dtls, PACKET_BYTES);
  }

  send(nowNs: bigint): void {
    if (this.closed) return;
    this.seq = (this.seq + 1) & 0xffff;
    // seq, timestamp, epoch and send time written in place into the stream's one packet buffer
    stampNext(this.packet, this.seq, epoch, nowNs);
    if (this.lean) {
      this.lean.send(this.packet);
    } else {
      // werift parses the Buffer into its own packet object; hand it a copy it may keep.
      this.track.writeRtp(Buffer.from(this.packet));
    }
    meter.onSent(epoch, this.spec.direction, this.spec.streamId);
  }

  /** SRTCP packets the lean path authenticated (werift's receiver counts its own in full mode). */
  get rtcpReceived(): number {
    return this.lean?.counters.rtcpReceived ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    pacer.remove(this);
    await this.pc.close().catch(() => undefined);
  }
}

const peers = new Map<number, WebRtcPeer>();

function peer(streamId: number): WebRtcPeer {
  const p = peers.get(streamId);
  if (!p) throw new Error(`unknown stream ${streamId}`);
  return p;
}

async function waitConnected(p: WebRtcPeer, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p.connected,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not connected after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'offer': {
      const p = new WebRtcPeer(req.stream, req.lean);
      peers.set(req.stream.streamId, p);
      pacer.start();
      return p.offer();
    }
    case 'answer': {
      const p = peer(req.streamId);
      await p.answer(req.sdp);
      if (req.waitConnectedMs === undefined) return undefined;
      const answeredAt = performance.timeOrigin + performance.now();
      await waitConnected(p, req.waitConnectedMs);
      return { ...p.times, answeredAt };
    }
    case 'candidate':
      await peer(req.streamId).candidate({ candidate: req.candidate, sdpMid: req.sdpMid, sdpMLineIndex: req.sdpMLineIndex });
      return undefined;
    case 'waitConnected': {
      // Answers when each phase happened (webrtc-call-setup.ts reads them).
      const p = peer(req.streamId);
      await waitConnected(p, req.timeoutMs);
      return { ...p.times };
    }
    case 'diag':
      return req.streamIds.map((id) => peers.get(id)?.diag() ?? { streamId: id, unknown: true });
    case 'epoch':
      epoch = req.epoch;
      return undefined;
    case 'report': {
      const report: WorkerReport = {
        ...meter.report(req.epoch),
        foreign: meter.foreign,
        rtcpReceived: rtcpReceived + [...peers.values()].reduce((n, p) => n + p.rtcpReceived, 0),
        streams: peers.size,
        sendingIds: [...peers.values()].filter((p) => p.sending).map((p) => p.spec.streamId),
      };
      return report;
    }
    case 'close':
      await Promise.all(
        req.streamIds.map(async (id) => {
          const p = peers.get(id);
          rtcpReceived += p?.rtcpReceived ?? 0;
          await p?.close();
          peers.delete(id);
        }),
      );
      return undefined;
    case 'exit':
      await Promise.all([...peers.values()].map((p) => p.close()));
      peers.clear();
      pacer.stop();
      setImmediate(() => process.exit(0));
      return undefined;
    default:
      throw new Error(`webrtc-peer-worker: unsupported op ${req.op}`);
  }
}

serveWorker(handle);
