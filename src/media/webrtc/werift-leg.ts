import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import {
  MediaStreamTrack,
  RTCCertificate,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCDtlsTransport,
  type RTCRtpTransceiver,
} from 'werift';
import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import { LegCounters, type LegActivity, type LegEndReason } from '../relay/media-leg';
import { DirectListeners } from '../relay/direct-listeners';
import { beginPacketTurn, endPacketTurn, packetNow } from '../relay/packet-clock';
import { unbindableAddresses } from './ice-address-probe';
import type { IceSettings } from './ice-settings';
import { answerForStack, checkRemoteSdp, chooseG711, isMdnsCandidate, MAX_REMOTE_CANDIDATES, parseRemoteSdp, restrictOfferCodecs, type RemoteAudioOffer } from './remote-sdp-check';
import { parseRtcpCompound } from '../rtcp/rtcp-packets';
import { RtcpSession, type RtcpStreamStats } from '../rtcp/rtcp-session';
import { WebRtcSdpError } from './webrtc-sdp-error';
import { offerMLines, rejectOtherLines } from '../sdp/rejected-media';
import { advertiseCandidate, advertiseSdp } from './advertised-address';
import type {
  DtlsConnectionState,
  G711Codec,
  IceCandidateInit,
  IceComponentState,
  NegotiatedAudio,
  SelectedCandidatePair,
  WebRtcLeg,
  WebRtcLegEvents,
} from './webrtc-leg';
import { attachLocalTrack } from './local-track';
import { readAudioLine } from './audio-line-reader';
import {
  compactDtlsBuffers,
  configureIceConsent,
  useLeanWeriftEvent,
  useNodeCryptoForDtls,
  demultiplexIceSockets,
  emptyIceSocketCounters,
  disableDefaultStunServer,
  iceSockets,
  ignoreDuplicateHelloVerify,
  selectedPairMedia,
  type MediaElsewhere,
  preferSrtpProfiles,
  resendClientHelloEarly,
  shareParsedDtlsCertificate,
  sendDtlsCloseNotify,
  sendOnSelectedPair,
  sendOnSelectedPairNow,
  skipWeriftSrtp,
  startDtlsClientAtOnce,
  useLazyDtlsCipherSummary,
  type IceSocketCounters,
} from './werift-internals';
import { srtpFromDtls, type DtlsSrtpSession } from './dtls-srtp-session';
import { isRtcp } from './rfc7983';
import { srtpProfile, type SrtpProfileName } from '../srtp/srtp-profile';
import { handBackSrtpState, nativeSrtpFrom, type NativeSrtp } from '../native/native-srtp';
import type { InboundOffloadDelta, OffloadableLeg, OffloadBlocked, OffloadHooks, OffloadPath, OutboundOffloadDelta, ReceptionState } from '../native/offload-types';
import { ReceptionStatistics } from '../rtcp/reception-statistics';

export interface WeriftLegOptions {
  clock: Clock;
  logger: Logger;
  ice: IceSettings;
  /** How long processOffer/generateOffer wait for host candidates before answering (ms). */
  gatherTimeoutMs?: number;
  /** RTCP report interval (ms): the mean of the randomised RFC 3550 interval (see src/media/rtcp/rtcp-session.ts). */
  rtcpIntervalMs?: number;
  /** SRTP protection profiles, most preferred first (default DEFAULT_SRTP_PROFILES); decides when ferry is the DTLS server. */
  srtpProfiles?: readonly SrtpProfileName[];
}

/**
 * ferry's SRTP profile preference: AES_CM_128_HMAC_SHA1_80 first. Both are 128-bit and both are what
 * browsers implement (RFC 8827 §6.5), and both run on one persistent cipher per key (GCM's GHASH in
 * JavaScript); AES-CM still costs slightly less CPU per packet (bench/srtp-profiles.ts, docs/media-webrtc.md)
 * and 6 bytes less per packet, and it is what Chromium picks when it is the DTLS server, so a call's profile
 * does not depend on who offered.
 */
export const DEFAULT_SRTP_PROFILES: readonly SrtpProfileName[] = ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'];

const TELEPHONE_EVENT_DEFAULT_PT = 101;

/** WeriftLeg.counters. */
export interface WeriftLegCounters {
  rtcpIn: number;
  rtcpByeIn: number;
  rtcpOut: number;
  replayedDropped: number;
  srtpRefused: number;
  mediaBeforeKeys: number;
  srtpOut: number;
  malformedRtcpIn: number;
  closeNotifySent: number;
}

/**
 * The WebRTC leg on werift 0.25.2: a full ICE agent (consent freshness per RFC 7675) on the configured
 * host addresses only, DTLS-SRTP, one audio m-line with G.711 + telephone-event. werift does ICE, DTLS
 * and SDP; the packet path is ferry's: an RFC 7983 demultiplexer on the ICE sockets (werift-internals.ts)
 * hands SRTP/SRTCP from the selected pair to ferry's own SRTP contexts (src/media/srtp/, keyed from the
 * DTLS exporter: dtls-srtp-session.ts; AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM), which decrypt with
 * replay protection and ROC tracking; plain RTP/RTCP goes to the relay and the RtcpSession (src/media/rtcp/:
 * SR/RR, reception statistics, BYE detection). Sending, ferry protects under the SSRC the leg signalled and
 * sends on the selected pair's socket. On close it sends a real DTLS close_notify so the browser learns at once.
 */
export class WeriftLeg extends EventEmitter<WebRtcLegEvents> implements WebRtcLeg, OffloadableLeg {
  readonly kind = 'webrtc' as const;

  private pc: RTCPeerConnection | undefined;
  private transceiver: RTCRtpTransceiver | undefined;
  private dtlsTransport: RTCDtlsTransport | undefined;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private readonly cname = randomBytes(8).toString('hex');

  private role: 'none' | 'answerer' | 'offerer' = 'none';
  private remoteSdp: string | undefined;
  private remoteAudio: RemoteAudioOffer | undefined;
  private negotiation: NegotiatedAudio | undefined;
  private pendingCandidates: IceCandidateInit[] = [];
  /** remote candidates taken through addRemoteCandidate (bounded by MAX_REMOTE_CANDIDATES) */
  private trickledCandidates = 0;

  private gatherRequested = false;
  private gatheringComplete = false;
  private gatheringDoneEmitted = false;
  private readonly localCandidates: IceCandidateInit[] = [];
  private emittedCandidates = 0;

  private ice: IceComponentState = 'DISCONNECTED';
  private dtls: DtlsConnectionState = 'NEW';
  private pair: SelectedCandidatePair | undefined;
  private isConnected = false;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private readonly sockets = new Set<Socket>();
  /** Every socket trackSocket() has seen (and given its listeners), open or closed. */
  private readonly seenSockets = new WeakSet<Socket>();
  /** Created once negotiated and connected (it needs the signalled SSRC). */
  private rtcpSession: RtcpSession | undefined;

  private stats = new LegCounters();
  /** ferry's SRTP contexts, keyed once DTLS is connected. */
  private srtp: DtlsSrtpSession | undefined;
  /** What the RFC 7983 demultiplexer on the ICE sockets did (strangers dropped, forged alerts, media in, ...). */
  private strangers: IceSocketCounters = emptyIceSocketCounters();
  get strangerDatagrams(): number {
    return this.strangers.dropped;
  }
  /** DTLS alerts dropped because they did not decrypt under the session keys (forged). */
  get forgedAlerts(): number {
    return this.strangers.forgedAlerts;
  }
  /** What the ICE sockets' demultiplexer counted (a copy). */
  get demuxCounters(): IceSocketCounters {
    this.offloadHooks?.sync();
    return { ...this.strangers };
  }
  /** The SRTP protection profile DTLS negotiated, once connected. */
  get srtpProfile(): string | undefined {
    return this.srtp?.profile.name;
  }
  /**
   * Counters for tests and /stats: RTCP BYEs seen; SRTP/SRTCP refused as replays (replayedDropped) or for a
   * bad tag or shape (srtpRefused); media that arrived before the keys (mediaBeforeKeys); SRTP sent (srtpOut).
   * With the native relay carrying the call, its figures are brought in first.
   */
  get counters(): WeriftLegCounters {
    this.offloadHooks?.sync();
    return this.counts;
  }

  private readonly counts: WeriftLegCounters = {
    rtcpIn: 0,
    rtcpByeIn: 0,
    rtcpOut: 0,
    replayedDropped: 0,
    srtpRefused: 0,
    mediaBeforeKeys: 0,
    srtpOut: 0,
    malformedRtcpIn: 0,
    closeNotifySent: 0,
  };

  constructor(private readonly options: WeriftLegOptions) {
    super();
  }

  // ---- negotiation ---------------------------------------------------------------------------

  async processOffer(offer: string, preferred: G711Codec): Promise<string> {
    this.assertOpen();
    if (this.role !== 'none') throw new WebRtcSdpError('process-offer', 'Endpoint already negotiated');
    const remote = checkRemoteSdp(offer, 'process-offer');
    // the parse checkRemoteSdp just used (and webRtcOfferPlan before it), kept for restrictOfferCodecs
    const parsedOffer = parseRemoteSdp(offer);
    const codec = chooseG711(remote, preferred);
    this.role = 'answerer';
    await this.assertAddressesUsable('process-offer');
    this.remoteAudio = remote;
    const pc = this.createPeerConnection(codec, remote.telephoneEvent);
    pc.onRemoteTransceiverAdded.subscribe((t) => {
      if (t.kind !== 'audio' || this.transceiver) return;
      this.transceiver = t;
      void attachLocalTrack(t.sender, this.track, this.options.logger);
      // Without this werift answers recvonly: the browser would never get our audio.
      t.setDirection('sendrecv');
    });
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: restrictOfferCodecs(offer, remote, codec, parsedOffer) });
    } catch (err) {
      throw new WebRtcSdpError('process-offer', `cannot apply offer: ${(err as Error).message}`);
    }
    this.remoteSdp = offer;
    this.assertOpen();
    await this.flushPendingCandidates();
    try {
      const answer = await pc.createAnswer();
      disableDefaultStunServer(pc);
      await pc.setLocalDescription(answer);
    } catch (err) {
      throw new WebRtcSdpError('process-offer', `cannot create answer: ${(err as Error).message}`);
    }
    this.watchTransports();
    await this.waitForGathering();
    this.assertOpen();
    this.assertCandidates('process-offer');
    this.strangers = demultiplexIceSockets(pc, (data, elsewhere) => this.onMedia(data, elsewhere), { nominatedChanged: () => this.offloadHooks?.changed('nominated-pair') });
    const sdp = this.localDescription();
    if (!sdp) throw new WebRtcSdpError('process-offer', 'no local description after answering');
    this.offloadHooks?.changed('negotiated');
    this.negotiation = this.readNegotiation(sdp);
    if (!this.negotiation) throw new WebRtcSdpError('process-offer', 'the offer left no usable audio stream (G.711) to answer');
    // Every m-line but the audio one answered with port 0 in one form, whatever the stack wrote for it.
    return rejectOtherLines(sdp, offerMLines(offer), remote.mLineIndex);
  }

  async generateOffer(preferred: G711Codec): Promise<string> {
    this.assertOpen();
    if (this.role !== 'none') throw new WebRtcSdpError('generate-offer', 'Endpoint already negotiated');
    this.role = 'offerer';
    await this.assertAddressesUsable('generate-offer');
    const pc = this.createPeerConnection(preferred, TELEPHONE_EVENT_DEFAULT_PT, true);
    this.transceiver = pc.addTransceiver(this.track, { direction: 'sendrecv' });
    try {
      const offer = await pc.createOffer();
      disableDefaultStunServer(pc);
      await pc.setLocalDescription(offer);
    } catch (err) {
      throw new WebRtcSdpError('generate-offer', `cannot create offer: ${(err as Error).message}`);
    }
    this.watchTransports();
    await this.waitForGathering();
    this.assertOpen();
    this.assertCandidates('generate-offer');
    this.strangers = demultiplexIceSockets(pc, (data, elsewhere) => this.onMedia(data, elsewhere), { nominatedChanged: () => this.offloadHooks?.changed('nominated-pair') });
    const sdp = this.localDescription();
    if (!sdp) throw new WebRtcSdpError('generate-offer', 'no local description after offering');
    return sdp;
  }

  async processAnswer(answer: string): Promise<void> {
    this.assertOpen();
    if (this.role !== 'offerer' || !this.pc) throw new WebRtcSdpError('process-answer', 'Offer not generated');
    if (this.remoteSdp !== undefined) throw new WebRtcSdpError('process-answer', 'Sdp answer already processed');
    const remote = checkRemoteSdp(answer, 'process-answer');
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp: answerForStack(answer) });
    } catch (err) {
      throw new WebRtcSdpError('process-answer', `cannot apply answer: ${(err as Error).message}`);
    }
    this.remoteSdp = answer;
    this.remoteAudio = remote;
    this.watchTransports();
    await this.flushPendingCandidates();
    const local = this.localDescription();
    const neg = local ? this.readNegotiation(local) : undefined;
    if (neg) {
      // The answer decides: keep the codec the peer accepted first.
      const chosen = remote.pcmu !== undefined && (neg.codec.name === 'PCMU' || remote.pcma === undefined) ? 'PCMU' : 'PCMA';
      neg.codec = { name: chosen, payloadType: chosen === 'PCMU' ? 0 : 8, clockRate: 8000 };
      neg.telephoneEvent = remote.telephoneEvent !== undefined && neg.telephoneEvent ? { payloadType: remote.telephoneEvent } : undefined;
    }
    this.offloadHooks?.changed('negotiated');
    this.negotiation = neg;
    this.startRtcp();
  }

  async addRemoteCandidate(candidate: IceCandidateInit): Promise<void> {
    this.assertOpen();
    if (typeof candidate?.candidate !== 'string') throw new WebRtcSdpError('add-candidate', 'candidate must be a string');
    const text = candidate.candidate.trim();
    if (text === '') return; // end-of-candidates marker
    if (!/^(a=)?candidate:\S+ \d+ (udp|tcp) \d+ \S+ \d+ typ \S+/i.test(text)) {
      throw new WebRtcSdpError('add-candidate', `malformed candidate ${JSON.stringify(text.slice(0, 120))}`);
    }
    if (isMdnsCandidate(text)) {
      this.options.logger.info('ignoring an mDNS (.local) ICE candidate', { candidate: text.slice(0, 120) });
      return;
    }
    if (this.trickledCandidates >= MAX_REMOTE_CANDIDATES) {
      throw new WebRtcSdpError('add-candidate', `too many remote ICE candidates (at most ${MAX_REMOTE_CANDIDATES})`);
    }
    this.trickledCandidates++;
    if (!this.pc || this.remoteSdp === undefined) {
      this.pendingCandidates.push(candidate);
      return;
    }
    await this.applyCandidate(candidate);
  }

  async gatherCandidates(): Promise<void> {
    this.assertOpen();
    if (this.gatherRequested) return;
    this.gatherRequested = true;
    if (this.ice === 'DISCONNECTED') this.setIce('GATHERING');
    this.flushLocalCandidates();
  }

  /** as the peer must see it: host candidates on the public address when FERRY_MEDIA_PUBLIC_IP is set */
  localDescription(): string | undefined {
    const sdp = this.pc?.localDescription?.sdp;
    return sdp === undefined ? undefined : advertiseSdp(sdp, this.options.ice.addresses, this.options.ice.publicAddress);
  }

  remoteDescription(): string | undefined {
    return this.remoteSdp;
  }

  negotiated(): NegotiatedAudio | undefined {
    return this.negotiation;
  }

  iceState(): IceComponentState {
    return this.ice;
  }

  dtlsState(): DtlsConnectionState {
    return this.dtls;
  }

  selectedPair(): SelectedCandidatePair | undefined {
    return this.pair;
  }

  // ---- media ---------------------------------------------------------------------------------

  sendRtp(packet: Buffer): void {
    const t = this.dtlsTransport;
    const neg = this.negotiation;
    if (!this.isConnected || this.closing || !t || !neg) return;
    if (neg.direction === 'recvonly' || neg.direction === 'inactive') return;
    const srtp = this.srtp;
    if (!srtp) return;
    let wire: Buffer;
    try {
      wire = srtp.outbound.protectRtp(packet, undefined, neg.localSsrc);
    } catch {
      return; // not an RTP packet (the relay hands only RTP; a header longer than the packet)
    }
    if (!sendOnSelectedPair(t, wire)) return;
    this.counts.srtpOut++;
    const now = packetNow(this.options.clock);
    this.stats.lastRtpOutAt = now;
    this.stats.packetsOut++;
    this.stats.bytesOut += packet.length;
    this.rtcpSession?.onRtpSent(packet, now);
  }

  /** The SSRC this leg signalled and stamps on everything it sends (RTP, RTCP); undefined before negotiation. */
  get localSsrc(): number | undefined {
    return this.negotiation?.localSsrc;
  }

  rtcpStats(): RtcpStreamStats | undefined {
    this.offloadHooks?.sync();
    return this.rtcpSession?.stats();
  }

  activity(): LegActivity {
    this.offloadHooks?.sync();
    return this.stats.snapshot();
  }

  /**
   * The ICE sockets still open. werift binds them while gathering and no more afterwards (no ICE restart, no
   * TURN): once gathering is complete (its handler tracks them) the count is the tracked set, without walking
   * werift's agents again — the media server counts every element's ports on each create.
   */
  boundPorts(): number {
    if (this.pc && !this.closing && !this.gatheringComplete) for (const s of iceSockets(this.pc)) this.trackSocket(s);
    return this.sockets.size;
  }

  close(options: { notifyPeer?: boolean } = {}): Promise<void> {
    if (this.closePromise) return this.closePromise;
    // the native relay gives the ICE socket (and its figures, and the SRTP streams) back before anything closes
    this.offloadHooks?.changed('closing');
    this.closing = true;
    this.closePromise = this.teardown(options.notifyPeer ?? true);
    return this.closePromise;
  }

  // ---- native relay (src/media/native/offload-types.ts) ------------------------------------------

  /** The native relay's offload controller, while it may carry this leg's RTP (FERRY_MEDIA_RELAY=native). */
  private offloadHooks: OffloadHooks | undefined;
  /** Native SRTP contexts with the keys of `srtp` (made on the first offload), and the directions they hold now. */
  private nativeSrtp: { session: DtlsSrtpSession; inbound: NativeSrtp; outbound: NativeSrtp; replaysSeen: number } | undefined;
  private readonly nativeSrtpHeld = { in: false, out: false };
  /** The last SRTP came on a valid pair other than the nominated one (the browser moved its selected pair). */
  private mediaElsewhere: MediaElsewhere | undefined;

  /**
   * The nominated ICE pair's local socket, the browser's address on it (where its SRTP comes from, where ours
   * goes), the SSRC we signalled and native SRTP contexts with the DTLS-SRTP keys; blocked until negotiated,
   * keyed and nominated, and once closing.
   */
  offloadPath(): OffloadPath | OffloadBlocked {
    if (this.closing) return { blocked: 'closing' };
    const t = this.dtlsTransport;
    const neg = this.negotiation;
    const srtp = this.srtp;
    if (!t || !neg) return { blocked: 'not negotiated' };
    if (!this.isConnected || !srtp || !this.rtcpSession) return { blocked: 'DTLS-SRTP not connected' };
    const pair = selectedPairMedia(t);
    if (!pair) return { blocked: 'no nominated ICE pair' };
    const from = this.mediaElsewhere;
    if (from && from.socket !== pair.socket) return { blocked: "the browser sends on another ICE socket than the nominated pair's" };
    const n = this.nativeContexts(srtp);
    return {
      socket: pair.socket,
      peer: from ? { address: from.address, port: from.port } : { address: pair.address, port: pair.port },
      dest: { address: pair.address, port: pair.port },
      canSend: pair.consent && neg.direction !== 'recvonly' && neg.direction !== 'inactive',
      canReceive: true,
      ssrc: neg.localSsrc,
      srtpIn: n.inbound.handle,
      srtpOut: n.outbound.handle,
      receiveClockRate: 8000,
    };
  }

  /** The native mirrors of the DTLS-SRTP contexts (their stream state is taken when a route takes a direction). */
  private nativeContexts(session: DtlsSrtpSession): { inbound: NativeSrtp; outbound: NativeSrtp } {
    if (this.nativeSrtp?.session !== session) {
      this.nativeSrtp = {
        session,
        inbound: nativeSrtpFrom(session.inbound, undefined, { state: false }),
        outbound: nativeSrtpFrom(session.outbound, undefined, { state: false }),
        replaysSeen: 0,
      };
    }
    return this.nativeSrtp;
  }

  /** A route took a direction: its native context continues the JavaScript context's streams (ROC, replay window). */
  offloadRouted(direction: 'in' | 'out'): void {
    const n = this.nativeSrtp;
    if (!n || n.session !== this.srtp) return;
    if (direction === 'in') n.inbound.importRtpState(n.session.inbound.exportRtpState());
    else n.outbound.importRtpState(n.session.outbound.exportRtpState());
    this.nativeSrtpHeld[direction] = true;
  }

  /** The route gave the direction back: the JavaScript context continues where the native one stopped. */
  offloadUnrouted(direction: 'in' | 'out'): void {
    const n = this.nativeSrtp;
    if (!n || !this.nativeSrtpHeld[direction]) return;
    this.nativeSrtpHeld[direction] = false;
    if (direction === 'in') handBackSrtpState(n.inbound, n.session.inbound);
    else handBackSrtpState(n.outbound, n.session.outbound);
  }

  setOffloadHooks(hooks: OffloadHooks | undefined): void {
    this.offloadHooks = hooks;
  }

  exportReception(): ReceptionState {
    return this.rtcpSession?.exportReception() ?? new ReceptionStatistics(8000).exportState();
  }

  applyInbound(d: InboundOffloadDelta): void {
    const s = this.stats;
    s.packetsIn += d.packets;
    s.bytesIn += d.bytes;
    if (!Number.isNaN(d.lastAt)) s.lastRtpInAt = d.lastAt;
    this.rtcpSession?.applyOffloadedReceive(d);
    // datagrams from the selected pair that the media path took (as the demultiplexer counts them)
    this.strangers.media += d.packets + d.srtpRefused;
    if (d.srtpRefused > 0) {
      // as onMedia counts them: replays apart from bad tags and malformed packets
      const n = this.nativeSrtp;
      const replays = n ? n.inbound.counters.replays : 0;
      const replayed = n ? Math.min(d.srtpRefused, Math.max(0, replays - n.replaysSeen)) : 0;
      if (n) n.replaysSeen = replays;
      this.counts.replayedDropped += replayed;
      this.counts.srtpRefused += d.srtpRefused - replayed;
    }
  }

  applyOutbound(d: OutboundOffloadDelta): void {
    const s = this.stats;
    s.packetsOut += d.packets;
    s.bytesOut += d.bytes;
    if (!Number.isNaN(d.lastAt)) s.lastRtpOutAt = d.lastAt;
    this.counts.srtpOut += d.packets;
    this.rtcpSession?.applyOffloadedSend(d);
  }

  // ---- internals -----------------------------------------------------------------------------

  private createPeerConnection(codec: G711Codec, telephoneEventPt: number | undefined, offerBoth = false): RTCPeerConnection {
    const g711 = (name: G711Codec) =>
      new RTCRtpCodecParameters({ mimeType: `audio/${name}`, clockRate: 8000, channels: 1, payloadType: name === 'PCMU' ? 0 : 8 });
    const audio = [g711(codec)];
    if (offerBoth) audio.push(g711(codec === 'PCMU' ? 'PCMA' : 'PCMU'));
    if (telephoneEventPt !== undefined) {
      audio.push(
        new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, channels: 1, payloadType: telephoneEventPt, parameters: '0-16' }),
      );
    }
    const { addresses, portRange, consentIntervalMs, consentTimeoutMs } = this.options.ice;
    configureIceConsent({ intervalMs: consentIntervalMs, timeoutMs: consentTimeoutMs });
    useNodeCryptoForDtls();
    shareParsedDtlsCertificate(RTCCertificate);
    useLazyDtlsCipherSummary();
    useLeanWeriftEvent();
    const pc = new RTCPeerConnection({
      codecs: { audio, video: [] },
      iceServers: [],
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: [...addresses],
      ...(addresses.length === 1 ? { iceInterfaceAddresses: { udp4: addresses[0]! } } : {}),
      ...(portRange ? { icePortRange: [portRange[0], portRange[1]] as [number, number] } : {}),
      iceUseTcp: false,
    });
    this.pc = pc;
    pc.onIceCandidate.subscribe((c) => {
      if (!c || this.closing) return;
      const text = c.candidate.startsWith('candidate:') ? c.candidate : `candidate:${c.candidate}`;
      const init: IceCandidateInit = { candidate: advertiseCandidate(text, this.options.ice.addresses, this.options.ice.publicAddress), sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 };
      this.localCandidates.push(init);
      this.flushLocalCandidates();
    });
    pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') {
        this.gatheringComplete = true;
        for (const sock of iceSockets(pc)) this.trackSocket(sock);
        this.flushLocalCandidates();
      }
    });
    pc.iceConnectionStateChange.subscribe((s) => this.onIceConnectionState(s));
    return pc;
  }

  private trackSocket(s: Socket): void {
    // once per socket, ever: a closed socket werift still lists must not get new listeners on every /stats read
    if (this.seenSockets.has(s)) return;
    this.seenSockets.add(s);
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    // werift adds no 'error' listener to its ICE sockets; an emitted socket error must never take the server down.
    s.on('error', (err) => this.options.logger.warn('ICE socket error', { error: err.message }));
  }

  private flushLocalCandidates(): void {
    if (!this.gatherRequested || this.closing) return;
    while (this.emittedCandidates < this.localCandidates.length) {
      this.emit('local-candidate', this.localCandidates[this.emittedCandidates++]!);
    }
    if (this.gatheringComplete && !this.gatheringDoneEmitted) {
      this.gatheringDoneEmitted = true;
      this.emit('gathering-done');
    }
  }

  private waitForGathering(): Promise<void> {
    const pc = this.pc;
    if (!pc || pc.iceGatheringState === 'complete') {
      this.gatheringComplete = pc !== undefined;
      if (pc) for (const sock of iceSockets(pc)) this.trackSocket(sock);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimeout(() => {
        sub.unSubscribe();
        resolve();
      }, this.options.gatherTimeoutMs ?? 5000);
      const sub = pc.iceGatheringStateChange.subscribe((s) => {
        if (s !== 'complete') return;
        timer.cancel();
        sub.unSubscribe();
        resolve();
      });
    });
  }

  private watchTransports(): void {
    const pc = this.pc;
    if (!pc) return;
    for (const t of pc.dtlsTransports) {
      if (this.dtlsTransport === t) continue;
      if (this.dtlsTransport) continue; // bundle: one transport carries the audio m-line
      this.dtlsTransport = t;
      if (!preferSrtpProfiles(t, (this.options.srtpProfiles ?? DEFAULT_SRTP_PROFILES).map((n) => srtpProfile(n).dtlsId))) {
        this.options.logger.warn('DTLS started before the SRTP profile preference was set; werift\'s order applies');
      }
      // ferry's own SRTP carries the media (dtls-srtp-session.ts); werift's sessions would only hold memory.
      skipWeriftSrtp(t);
      t.onStateChange.subscribe((s) => this.onDtlsState(t, s));
    }
  }

  private async flushPendingCandidates(): Promise<void> {
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of pending) {
      try {
        await this.applyCandidate(c);
      } catch (err) {
        this.options.logger.warn('buffered ICE candidate rejected', { error: (err as Error).message });
      }
    }
  }

  private async applyCandidate(c: IceCandidateInit): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    const text = c.candidate.trim().replace(/^a=/, '');
    const mid = this.remoteAudio?.mid;
    try {
      await pc.addIceCandidate({
        candidate: text,
        sdpMid: mid ?? (c.sdpMid ?? undefined),
        sdpMLineIndex: this.remoteAudio?.mLineIndex ?? (c.sdpMLineIndex ?? 0),
      });
    } catch (err) {
      throw new WebRtcSdpError('add-candidate', `cannot add candidate: ${(err as Error).message}`);
    }
  }

  private onIceConnectionState(s: string): void {
    if (this.closing) return;
    // a new pair, consent lost ('failed'), a restart: the native route's socket, peer or right to send may change
    this.offloadHooks?.changed(`ice-${s}`);
    const pc = this.pc;
    switch (s) {
      case 'checking':
        this.setIce('CONNECTING');
        break;
      case 'connected':
      case 'completed': {
        // werift reports 'completed' for gathering before checks start; only a nominated pair counts.
        const pair = pc?.iceTransports[0]?.getSelectedCandidatePair();
        if (!pair) break;
        if (!this.pair) {
          this.pair = { localCandidate: `candidate:${pair.local.candidate.replace(/^candidate:/, '')}`, remoteCandidate: `candidate:${pair.remote.candidate.replace(/^candidate:/, '')}` };
          this.emit('candidate-pair', this.pair);
        }
        this.setIce('CONNECTED');
        break;
      }
      case 'failed':
        this.setIce('FAILED');
        this.emit('signal', 'ice-failed');
        break;
      case 'disconnected':
      case 'closed':
        this.setIce('DISCONNECTED');
        break;
      default:
        break;
    }
  }

  private setIce(state: IceComponentState): void {
    if (this.ice === state) return;
    this.ice = state;
    this.emit('ice-state', state);
  }

  private setDtls(state: DtlsConnectionState): void {
    if (this.dtls === state) return;
    this.dtls = state;
    this.emit('dtls-state', state);
  }

  private onDtlsState(t: RTCDtlsTransport, s: string): void {
    if (this.closing) return;
    switch (s) {
      case 'connecting':
        ignoreDuplicateHelloVerify(t);
        resendClientHelloEarly(t);
        startDtlsClientAtOnce(t);
        this.setDtls('CONNECTING');
        break;
      case 'connected':
        this.onDtlsConnected(t);
        break;
      case 'closed':
        // A DTLS alert from the peer (close_notify): the browser closed its peer connection.
        this.offloadHooks?.changed('dtls-closed');
        this.setDtls('CLOSED');
        this.isConnected = false;
        this.emit('signal', 'dtls-close');
        break;
      case 'failed':
        this.offloadHooks?.changed('dtls-failed');
        this.setDtls('FAILED');
        break;
      default:
        break;
    }
  }

  private onDtlsConnected(t: RTCDtlsTransport): void {
    this.offloadHooks?.changed('keys');
    try {
      this.srtp = srtpFromDtls(t);
    } catch (err) {
      this.options.logger.error('cannot key SRTP from the DTLS session', { error: (err as Error).message });
      this.setDtls('FAILED');
      return;
    }
    // winston builds and pipes the line even when debug is off: only when it is on
    if (this.options.logger.isDebugEnabled()) this.options.logger.debug('DTLS-SRTP keyed', { profile: this.srtp.profile.name, role: t.role, earlyRecords: this.strangers.earlyDtlsReplayed });
    compactDtlsBuffers(t);
    this.isConnected = true;
    this.setDtls('CONNECTED');
    this.setIce('READY');
    this.startRtcp();
    // keyed and connected: the native relay may take the call now
    this.offloadHooks?.changed('connected');
    this.emit('connected');
  }

  /**
   * An SRTP or SRTCP datagram from the selected pair (the demultiplexer on the ICE sockets), or from another
   * valid pair (`elsewhere`: the browser moved its selected pair).
   */
  private onMedia(data: Buffer, elsewhere?: MediaElsewhere): void {
    if (this.closing) return;
    const srtp = this.srtp;
    if (!srtp) {
      this.counts.mediaBeforeKeys++;
      return;
    }
    const ctx = srtp.inbound;
    const rtcp = isRtcp(data);
    if (!rtcp) {
      this.mediaElsewhere = elsewhere;
      // SRTP here while a native route holds the browser's stream: it comes from another address than the route's
      // (the browser moved its selected pair): the stream comes back to this context before it decrypts anything
      if (this.nativeSrtpHeld.in) this.offloadHooks?.changed('media-source');
    }
    const replays = ctx.counters.replays;
    const plain = rtcp ? ctx.unprotectRtcp(data) : ctx.unprotectRtp(data);
    if (plain === undefined) {
      if (ctx.counters.replays !== replays) this.counts.replayedDropped++;
      else this.counts.srtpRefused++;
      return;
    }
    if (rtcp) this.onRtcpIn(plain);
    else this.onRtpIn(plain);
  }

  private onRtpIn(packet: Buffer): void {
    if (this.closing || packet.length < 12 || packet[0]! >> 6 !== 2) return;
    const clock = this.options.clock;
    const now = clock.now();
    this.stats.lastRtpInAt = now;
    this.stats.packetsIn++;
    this.stats.bytesIn += packet.length;
    this.rtcpSession?.onRtpReceived(packet, now);
    // one clock read for the whole relay that follows (packet-clock.ts); listeners called directly, as RtpLeg does
    beginPacketTurn(clock, now);
    try {
      const h = this.rtpHandler;
      if (h !== undefined) h(packet);
      if (this.rtpListeners.size > 0) this.rtpListeners.call(packet);
    } finally {
      endPacketTurn();
    }
  }

  /** The consumer's direct per-packet callback (MediaLeg.setRtpHandler), called before any 'rtp' listener. */
  private rtpHandler: ((packet: Buffer) => void) | undefined;
  /** The 'rtp' listeners, called directly per packet instead of through emit(). */
  private readonly rtpListeners = new DirectListeners<Buffer>(this as EventEmitter, 'rtp');

  setRtpHandler(handler: ((packet: Buffer) => void) | undefined): void {
    this.rtpHandler = handler;
  }

  private onRtcpIn(packet: Buffer): void {
    if (this.closing) return;
    const info = this.rtcpSession ? this.rtcpSession.onRtcpReceived(packet) : parseRtcpCompound(packet);
    if (!info.valid) {
      this.counts.malformedRtcpIn++;
      return;
    }
    this.stats.lastRtcpInAt = this.options.clock.now();
    this.counts.rtcpIn++;
    if (info.bye) this.counts.rtcpByeIn++;
    // A browser's BYE only means a track stopped (docs/lifecycle.md): reported, never turned into an end signal here.
    this.emit('rtcp', packet, { bye: info.bye });
  }

  /**
   * Our RTCP (RFC 3550 §6.4) from the moment the leg is both negotiated and connected: SR + SDES when we
   * sent RTP in the last two intervals, else RR + SDES, with a report block for the stream we receive.
   * werift sends none (its receivers never see media: the demultiplexer keeps it).
   */
  private startRtcp(): void {
    const neg = this.negotiation;
    if (this.rtcpSession || !neg || !this.isConnected || this.closing) return;
    this.rtcpSession = new RtcpSession({
      clock: this.options.clock,
      ssrc: neg.localSsrc,
      cname: this.cname,
      clockRate: 8000,
      minIntervalMs: this.options.rtcpIntervalMs ?? 5000,
      beforeReport: () => this.offloadHooks?.sync(),
      send: (compound) => {
        const t = this.dtlsTransport;
        const srtp = this.srtp;
        if (t && srtp && this.isConnected && !this.closing && sendOnSelectedPair(t, srtp.outbound.protectRtcp(compound))) this.counts.rtcpOut++;
      },
    });
    this.rtcpSession.start();
  }

  private readNegotiation(sdp: string): NegotiatedAudio | undefined {
    const m = readAudioLine(sdp);
    const ssrc = this.transceiver?.sender.ssrc;
    if (!m || ssrc === undefined) return undefined;
    const order = m.payloads;
    const names = m.names;
    const nameOf = (pt: number) => names.get(pt) ?? (pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : '');
    const first = order.find((pt) => nameOf(pt) === 'PCMU' || nameOf(pt) === 'PCMA');
    if (first === undefined) return undefined;
    const name = nameOf(first) as G711Codec;
    const te = order.find((pt) => names.get(pt) === 'TELEPHONE-EVENT');
    const direction = m.direction ?? 'sendrecv';
    return {
      codec: { name, payloadType: first, clockRate: 8000 },
      telephoneEvent: te !== undefined ? { payloadType: te } : undefined,
      localSsrc: ssrc >>> 0,
      direction,
    };
  }

  private async assertAddressesUsable(stage: 'process-offer' | 'generate-offer'): Promise<void> {
    const bad = await unbindableAddresses(this.options.ice.addresses);
    if (bad.length > 0) {
      throw new WebRtcSdpError(stage, `no ICE candidate could be gathered on ${bad.join(', ')}: not an address of this host (FERRY_MEDIA_ICE_ADDRESSES / FERRY_MEDIA_HOST)`);
    }
    this.assertOpen();
  }

  /** A host address that cannot be bound leaves no candidate: say so now instead of answering an unreachable SDP. */
  private assertCandidates(stage: 'process-offer' | 'generate-offer'): void {
    if (this.localCandidates.length > 0) return;
    throw new WebRtcSdpError(stage, `no ICE candidate could be gathered on ${this.options.ice.addresses.join(', ')} (FERRY_MEDIA_ICE_ADDRESSES / FERRY_MEDIA_HOST)`);
  }

  private assertOpen(): void {
    if (this.closing) throw new WebRtcSdpError('process-offer', 'the WebRTC leg is closed');
  }

  private async teardown(notifyPeer: boolean): Promise<void> {
    const bye = this.rtcpSession?.goodbye('call ended');
    const t = this.dtlsTransport;
    if (notifyPeer && t && this.isConnected) {
      try {
        if (bye && this.srtp && (await sendOnSelectedPairNow(t, this.srtp.outbound.protectRtcp(bye)))) this.counts.rtcpOut++;
        this.counts.closeNotifySent = (await sendDtlsCloseNotify(t)) ? 1 : 0;
      } catch (err) {
        this.options.logger.warn('could not tell the browser goodbye', { error: (err as Error).message });
      }
    }
    this.isConnected = false;
    const pc = this.pc;
    if (pc) {
      for (const s of iceSockets(pc)) this.trackSocket(s);
      try {
        await pc.close();
      } catch (err) {
        this.options.logger.warn('werift close failed', { error: (err as Error).message });
      }
    }
    // Whatever werift left open, close it: boundPorts() must reach 0.
    await Promise.all(
      [...this.sockets].map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
    this.sockets.clear();
    // the native SRTP contexts are freed with their handles (the routes gave them back at 'closing')
    this.nativeSrtp = undefined;
    this.track.stop();
    this.emit('closed');
    this.removeAllListeners();
  }
}
