import { randomInt } from 'node:crypto';
import { rtpFamilyMismatch } from '../rtp/address-family';
import { KurentoErrors, type KurentoError } from '../errors/kurento-error';
import { codecTableFrom } from '../relay/codec-table';
import { RtpLeg } from '../rtp/rtp-leg';
import { SrtpContext, type SrtpMaster } from '../srtp/srtp-context';
import { chooseSdesCrypto, formatSdesCrypto, newSrtpMaster, SDES_SUITE } from '../srtp/sdes-crypto';
import {
  answerCodecs,
  answerDirection,
  isSecureProfile,
  offerCodecs,
  parseRemoteAudio,
  parseRtpOffer,
  peerReceives,
  peerSends,
  writeAudioSdp,
  type Direction,
  type MLineSummary,
  type RemoteAudio,
  type RtpProfile,
  type SdpCodec,
} from '../sdp/rtp-audio-sdp';
import { writeRejectingAnswer } from '../sdp/rejected-media';
import type { ElementType } from './element-type';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import { BASE_RTP_ENDPOINT_EVENTS, BASE_RTP_ENDPOINT_HIERARCHY, SdpEndpoint } from './sdp-endpoint';

type Negotiation = 'none' | 'offer-generated' | 'negotiated';

/** The constructor's `crypto` parameter (Kurento's SDES complex type). */
interface SdesParam {
  key?: unknown;
  keyBase64?: unknown;
  crypto?: unknown;
}

/** Kurento's CryptoSuite name for the one suite ferry speaks. */
const KURENTO_SUITE = 'AES_128_CM_HMAC_SHA1_80';
const SDES_OFFER_TAG = 1;

/**
 * Kurento's RtpEndpoint: the IP phone side, RTP/RTCP over UDP (src/media/rtp/rtp-leg.ts), G.711 +
 * telephone-event. Offers RTP/AVP (phones reject AVPF far more often than AVP) and answers AVP or AVPF
 * in the offer's profile. Unlike KMS, a second processOffer is accepted as a re-INVITE (hold/resume or a
 * moved address): the local port stays, the direction and remote address are updated.
 *
 * SRTP with SDES (RFC 4568, AES_CM_128_HMAC_SHA1_80 only, src/media/srtp/): an RTP/SAVP or RTP/SAVPF
 * offer is answered in the same profile with our own fresh key under the offer's tag, and the leg
 * protects/unprotects RTP and RTCP with the two keys. An RTP/AVP offer that carries a usable a=crypto
 * (optional SRTP) is answered the same way in RTP/AVP. Unlike KMS this needs no `crypto` constructor
 * parameter (a phone decides); with one (suite AES_128_CM_HMAC_SHA1_80), generateOffer offers
 * RTP/SAVP with its key, and plain offers are refused. An SRTP offer without a usable a=crypto line is
 * refused with SDP_END_POINT_PROCESS_OFFER_ERROR.
 */
export class RtpEndpoint extends SdpEndpoint {
  private rtpLeg: RtpLeg | undefined;
  private state: Negotiation = 'none';
  private readonly sdpSessionId = String(randomInt(1_000_000_000, 2_000_000_000));
  private sdpVersion = 0;
  private offered: { codecs: SdpCodec[]; rtcpMux: boolean; profile: RtpProfile } | undefined;
  /** Our SDES master key: from the `crypto` parameter, else made for the first SRTP offer we answer. */
  private localMaster: SrtpMaster | undefined;
  private readonly cryptoRequired: boolean;
  /** The peer's key-params text and our contexts, so a re-offer with the same key keeps the streams' state. */
  private srtpKeys: { remoteKeyParams: string; inbound: SrtpContext; outbound: SrtpContext } | undefined;
  /** The last offer's audio line and the codecs answered, kept for an offer that removes the audio stream. */
  private lastRemote: { remote: RemoteAudio; codecs: SdpCodec[] } | undefined;

  constructor(ctx: ElementContext) {
    super(ctx, 'RtpEndpoint');
    const crypto = ctx.constructorParams.crypto;
    this.cryptoRequired = crypto !== undefined && crypto !== null;
    if (this.cryptoRequired) this.localMaster = masterFromParam(crypto as SdesParam);
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'generateOffer':
        return this.generateOffer();
      case 'processOffer':
        return this.processOffer(params.offer);
      case 'processAnswer':
        return this.processAnswer(params.answer);
      default:
        return super.invoke(operation, params);
    }
  }

  private preferredCodecs(): string[] {
    return this.connectedSources().flatMap((s) => s.negotiatedCodecKeys());
  }

  private async ensureLeg(withRtcpSocket: boolean): Promise<RtpLeg> {
    if (this.rtpLeg) return this.rtpLeg;
    let sockets;
    try {
      sockets = await this.ctx.ports.bindPair(withRtcpSocket);
    } catch (err) {
      throw KurentoErrors.notEnoughResources((err as Error).message);
    }
    if (this.released) {
      sockets.rtp.close();
      sockets.rtcp?.close();
      throw KurentoErrors.objectNotFound(this.id);
    }
    const leg = new RtpLeg(sockets, this.ctx.clock, this.ctx.config.rtcpIntervalMs, `ferry-${this.sdpSessionId}`, this.ctx.logger);
    this.rtpLeg = leg;
    this.attachLeg(leg);
    return leg;
  }

  private async generateOffer(): Promise<string> {
    if (this.state !== 'none') throw KurentoErrors.sdpAlreadyNegotiated();
    const leg = await this.ensureLeg(true);
    const codecs = offerCodecs(this.preferredCodecs());
    const profile: RtpProfile = this.cryptoRequired ? 'RTP/SAVP' : 'RTP/AVP';
    this.offered = { codecs, rtcpMux: true, profile };
    this.state = 'offer-generated';
    this.localSdp = writeAudioSdp({
      sessionId: this.sdpSessionId,
      version: this.sdpVersion++,
      address: this.ctx.config.sdpAddress,
      port: leg.localRtpPort,
      rtcpPort: leg.localRtcpPort,
      rtcpMux: true,
      profile,
      codecs,
      direction: 'sendrecv',
      crypto: this.cryptoRequired ? formatSdesCrypto(SDES_OFFER_TAG, this.localMaster!) : undefined,
    });
    return this.localSdp;
  }

  private async processAnswer(answer: unknown): Promise<string> {
    if (this.state === 'none') throw KurentoErrors.sdpNotOfferGenerated();
    if (this.state === 'negotiated') throw KurentoErrors.sdpAnswerAlreadyProcessed();
    const remote = parseRemoteAudio(answer, 'answer', KurentoErrors.sdpProcessAnswer);
    this.checkFamily(remote, KurentoErrors.sdpProcessAnswer);
    const offered = this.offered!;
    const common = remote.codecs.filter((c) => offered.codecs.some((o) => o.key === c.key));
    if (!common.some((c) => c.key !== 'telephone-event/8000')) {
      throw KurentoErrors.sdpProcessAnswer('answer has no codec in common with the offer (PCMU, PCMA)');
    }
    if (isSecureProfile(offered.profile) !== isSecureProfile(remote.profile)) {
      throw KurentoErrors.sdpProcessAnswer(`answer profile ${remote.profile} does not match the offered ${offered.profile}`);
    }
    const sdes = isSecureProfile(remote.profile) ? this.sdesFor(remote, KurentoErrors.sdpProcessAnswer, SDES_OFFER_TAG) : undefined;
    this.state = 'negotiated';
    const leg = this.rtpLeg!;
    this.applySrtp(leg, sdes);
    const local = this.localSdp!;
    this.applyRemote(leg, remote, common, local, String(answer));
    this.lastRemote = { remote, codecs: common };
    return local;
  }

  /** An SDP whose RTP or RTCP address is of the other family than FERRY_MEDIA_RTP_HOST is refused (address-family.ts). */
  private checkFamily(remote: { address: string; rtcpAddress: string }, error: (msg: string) => Error): void {
    const why = rtpFamilyMismatch(this.ctx.config.rtpHost, remote.address) ?? rtpFamilyMismatch(this.ctx.config.rtpHost, remote.rtcpAddress);
    if (why) throw error(why);
  }

  private async processOffer(offer: unknown): Promise<string> {
    if (this.state === 'offer-generated') throw KurentoErrors.sdpAlreadyNegotiated();
    const parsed = parseRtpOffer(offer);
    if ('rejectAll' in parsed) return this.rejectOffer(parsed.rejectAll, String(offer));
    const remote = parsed.audio;
    this.checkFamily(remote, KurentoErrors.sdpProcessOffer);
    const codecs = answerCodecs(remote.codecs, this.preferredCodecs());
    if (codecs.length === 0) throw KurentoErrors.sdpProcessOffer('offer has no supported audio codec (PCMU, PCMA)');
    const sdes = this.offeredSdes(remote);
    if (sdes) this.localMaster ??= newSrtpMaster();
    const leg = await this.ensureLeg(!remote.rtcpMux);
    const direction: Direction = answerDirection(remote.direction);
    const local = writeAudioSdp({
      sessionId: this.sdpSessionId,
      version: this.sdpVersion++,
      address: this.ctx.config.sdpAddress,
      port: leg.localRtpPort,
      rtcpPort: leg.localRtcpPort,
      rtcpMux: remote.rtcpMux,
      profile: remote.profile,
      codecs,
      direction,
      crypto: sdes ? formatSdesCrypto(sdes.tag, this.localMaster!) : undefined,
      mirror: { mlines: remote.mlines, index: remote.index },
    });
    this.state = 'negotiated';
    this.applySrtp(leg, sdes);
    this.applyRemote(leg, remote, codecs, local, String(offer));
    this.lastRemote = { remote, codecs };
    return local;
  }

  /**
   * An offer with nothing ferry carries (video only, other codecs or transports, every line at port 0):
   * answered with every m-line at port 0, as KMS does. A first such offer binds no port and starts no
   * leg; on a negotiated endpoint (a re-INVITE that removes the audio stream) the leg stays, sends
   * nothing and is on the hold rule, as for `inactive`, until a later offer brings audio back.
   */
  private rejectOffer(mlines: MLineSummary[], offer: string): string {
    if (this.cryptoRequired) throw KurentoErrors.sdpProcessOffer('offer has no usable audio line, but this endpoint was created with SDES crypto');
    const local = writeRejectingAnswer({
      sessionId: this.sdpSessionId,
      version: this.sdpVersion++,
      address: this.ctx.config.sdpAddress,
      mlines: mlines.map((m) => ({ type: m.type, port: m.port, protocol: m.protocol, formats: m.payloads.split(/\s+/).filter(Boolean), mid: undefined })),
    });
    this.state = 'negotiated';
    this.ctx.logger.info('offer answered with every m-line at port 0 (no usable audio)', { element: this.id, mlines: mlines.map((m) => `${m.type} ${m.protocol}`).join(', ') });
    const last = this.lastRemote;
    if (this.rtpLeg && last) {
      this.applyRemote(this.rtpLeg, { ...last.remote, direction: 'inactive' }, last.codecs, local, offer);
    } else {
      this.negotiatedWithoutMedia(local, offer);
    }
    return local;
  }

  /**
   * The offer's SDES key to use: required on RTP/SAVP(F) (refused when unusable); on RTP/AVP(F) a usable
   * a=crypto line is taken too ("best-effort SRTP": phones that offer SRTP optionally, such as baresip's
   * mediaenc=srtp, do it that way) and an unusable one is ignored, leaving plain RTP.
   */
  private offeredSdes(remote: RemoteAudio): { tag: number; master: SrtpMaster; keyParams: string } | undefined {
    let sdes: { tag: number; master: SrtpMaster; keyParams: string } | undefined;
    if (isSecureProfile(remote.profile)) sdes = this.sdesFor(remote, KurentoErrors.sdpProcessOffer);
    else if (remote.crypto.length > 0) {
      const choice = chooseSdesCrypto(remote.crypto);
      if (!('problem' in choice)) sdes = choice;
    }
    if (this.cryptoRequired && !sdes) throw KurentoErrors.sdpProcessOffer(`offer is ${remote.profile} without a usable a=crypto, but this endpoint was created with SDES crypto`);
    return sdes;
  }

  /** The peer's SDES key, or the KurentoError `fail` makes; with `tag`, the answer must use that tag. */
  private sdesFor(remote: RemoteAudio, fail: (msg: string) => KurentoError, tag?: number): { tag: number; master: SrtpMaster; keyParams: string } {
    const lines = tag === undefined ? remote.crypto : remote.crypto.filter((c) => c.id === tag);
    const choice = chooseSdesCrypto(lines);
    if ('problem' in choice) {
      throw fail(`${remote.profile} without a usable a=crypto (need ${SDES_SUITE} with one inline key, no MKI${tag === undefined ? '' : `, tag ${tag}`}): ${choice.problem}`);
    }
    return choice;
  }

  /** SRTP on or off for the leg; an unchanged peer key keeps the running contexts (rollover counters, replay windows). */
  private applySrtp(leg: RtpLeg, sdes: { tag: number; master: SrtpMaster; keyParams: string } | undefined): void {
    if (!sdes) {
      this.srtpKeys = undefined;
      leg.setSrtp(undefined);
      return;
    }
    if (this.srtpKeys?.remoteKeyParams !== sdes.keyParams) {
      this.ctx.logger.info(this.srtpKeys ? 'SRTP-SDES peer key changed' : 'SRTP-SDES negotiated', { element: this.id, tag: sdes.tag, suite: SDES_SUITE });
      this.srtpKeys = {
        remoteKeyParams: sdes.keyParams,
        inbound: new SrtpContext(sdes.master),
        outbound: this.srtpKeys?.outbound ?? new SrtpContext(this.localMaster!),
      };
    }
    leg.setSrtp({ inbound: this.srtpKeys.inbound, outbound: this.srtpKeys.outbound });
  }

  private applyRemote(leg: RtpLeg, remote: RemoteAudio, codecs: SdpCodec[], localSdp: string, remoteSdp: string): void {
    const holdAddress = remote.address === '0.0.0.0' || remote.address === '::';
    leg.setRemote(
      { address: remote.address, rtpPort: remote.port, rtcpAddress: remote.rtcpAddress, rtcpPort: remote.rtcpPort, rtcpMux: remote.rtcpMux },
      peerReceives(remote.direction) && !holdAddress,
      codecs.map((c) => c.pt),
    );
    const pairs = codecs.map((c) => [c.pt, c.key] as const);
    // docs/lifecycle.md, rule 3: any hold direction (sendonly/recvonly/inactive, or c=0.0.0.0) switches the
    // leg to T_hold, even sendonly: phones on hold often send neither music nor RTP, only RTCP.
    this.negotiated({
      codecs: codecTableFrom(pairs),
      peerWillSend: remote.direction === 'sendrecv' && peerSends(remote.direction) && !holdAddress,
      localSdp,
      remoteSdp,
    });
  }

  override describeForStats(): Record<string, unknown> {
    return {
      ...super.describeForStats(),
      localRtpPort: this.rtpLeg && !this.released ? this.rtpLeg.localRtpPort : null,
      strangerPackets: this.rtpLeg?.strangerPackets ?? 0,
      srtp: this.srtpKeys !== undefined,
      srtpRefusedPackets: this.rtpLeg?.srtpRefused ?? 0,
    };
  }
}

/** Our master key from Kurento's SDES parameter: 30 characters in `key`, or 30 bytes base64 in `keyBase64`, or random. */
function masterFromParam(p: SdesParam): SrtpMaster {
  if (typeof p !== 'object' || p === null) throw KurentoErrors.illegalParam('RtpEndpoint: crypto must be an SDES object');
  const suite = p.crypto ?? KURENTO_SUITE;
  if (suite !== KURENTO_SUITE) throw KurentoErrors.notImplemented(`RtpEndpoint: crypto suite ${String(suite)} is not supported by ferry media (${KURENTO_SUITE} only)`);
  let bytes: Buffer | undefined;
  if (typeof p.keyBase64 === 'string' && p.keyBase64 !== '') bytes = Buffer.from(p.keyBase64, 'base64');
  else if (typeof p.key === 'string' && p.key !== '') bytes = Buffer.from(p.key, 'latin1');
  if (!bytes) return newSrtpMaster();
  if (bytes.length !== 30) throw KurentoErrors.illegalParam(`RtpEndpoint: SDES key must be 30 bytes for ${KURENTO_SUITE}, got ${bytes.length}`);
  return { masterKey: bytes.subarray(0, 16), masterSalt: bytes.subarray(16) };
}

export const rtpEndpointType: ElementType = {
  type: 'RtpEndpoint',
  hierarchy: BASE_RTP_ENDPOINT_HIERARCHY,
  events: [...BASE_RTP_ENDPOINT_EVENTS, 'OnKeySoftLimit'],
  create: (ctx) => new RtpEndpoint(ctx),
};
