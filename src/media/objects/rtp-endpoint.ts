import { randomInt } from 'node:crypto';
import { KurentoErrors } from '../errors/kurento-error';
import { codecTableFrom } from '../relay/codec-table';
import { RtpLeg } from '../rtp/rtp-leg';
import {
  answerCodecs,
  answerDirection,
  offerCodecs,
  parseRemoteAudio,
  peerReceives,
  peerSends,
  writeAudioSdp,
  type Direction,
  type RemoteAudio,
  type RtpProfile,
  type SdpCodec,
} from '../sdp/rtp-audio-sdp';
import type { ElementType } from './element-type';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import { BASE_RTP_ENDPOINT_EVENTS, BASE_RTP_ENDPOINT_HIERARCHY, SdpEndpoint } from './sdp-endpoint';

type Negotiation = 'none' | 'offer-generated' | 'negotiated';

/**
 * Kurento's RtpEndpoint: the IP phone side, plain RTP/RTCP over UDP (src/media/rtp/rtp-leg.ts), G.711 +
 * telephone-event. Offers RTP/AVP (phones reject AVPF far more often than AVP) and answers AVP or AVPF
 * in the offer's profile. Unlike KMS, a second processOffer is accepted as a re-INVITE (hold/resume or a
 * moved address): the local port stays, the direction and remote address are updated.
 */
export class RtpEndpoint extends SdpEndpoint {
  private rtpLeg: RtpLeg | undefined;
  private state: Negotiation = 'none';
  private readonly sdpSessionId = String(randomInt(1_000_000_000, 2_000_000_000));
  private sdpVersion = 0;
  private offered: { codecs: SdpCodec[]; rtcpMux: boolean; profile: RtpProfile } | undefined;

  constructor(ctx: ElementContext) {
    super(ctx, 'RtpEndpoint');
    if (ctx.constructorParams.crypto !== undefined && ctx.constructorParams.crypto !== null) {
      throw KurentoErrors.notImplemented('RtpEndpoint: SDES crypto is not supported by ferry media');
    }
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
    this.offered = { codecs, rtcpMux: true, profile: 'RTP/AVP' };
    this.state = 'offer-generated';
    this.localSdp = writeAudioSdp({
      sessionId: this.sdpSessionId,
      version: this.sdpVersion++,
      address: this.ctx.config.sdpAddress,
      port: leg.localRtpPort,
      rtcpPort: leg.localRtcpPort,
      rtcpMux: true,
      profile: 'RTP/AVP',
      codecs,
      direction: 'sendrecv',
    });
    return this.localSdp;
  }

  private async processAnswer(answer: unknown): Promise<string> {
    if (this.state === 'none') throw KurentoErrors.sdpNotOfferGenerated();
    if (this.state === 'negotiated') throw KurentoErrors.sdpAnswerAlreadyProcessed();
    const remote = parseRemoteAudio(answer, 'answer', KurentoErrors.sdpProcessAnswer);
    const offered = this.offered!;
    const common = remote.codecs.filter((c) => offered.codecs.some((o) => o.key === c.key));
    if (!common.some((c) => c.key !== 'telephone-event/8000')) {
      throw KurentoErrors.sdpProcessAnswer('answer has no codec in common with the offer (PCMU, PCMA)');
    }
    this.state = 'negotiated';
    const leg = this.rtpLeg!;
    const local = this.localSdp!;
    this.applyRemote(leg, remote, common, local, String(answer));
    return local;
  }

  private async processOffer(offer: unknown): Promise<string> {
    if (this.state === 'offer-generated') throw KurentoErrors.sdpAlreadyNegotiated();
    const remote = parseRemoteAudio(offer, 'offer', KurentoErrors.sdpProcessOffer);
    const codecs = answerCodecs(remote.codecs, this.preferredCodecs());
    if (codecs.length === 0) throw KurentoErrors.sdpProcessOffer('offer has no supported audio codec (PCMU, PCMA)');
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
      mirror: { mlines: remote.mlines, index: remote.index },
    });
    this.state = 'negotiated';
    this.applyRemote(leg, remote, codecs, local, String(offer));
    return local;
  }

  private applyRemote(leg: RtpLeg, remote: RemoteAudio, codecs: SdpCodec[], localSdp: string, remoteSdp: string): void {
    const holdAddress = remote.address === '0.0.0.0' || remote.address === '::';
    leg.setRemote(
      { address: remote.address, rtpPort: remote.port, rtcpAddress: remote.rtcpAddress, rtcpPort: remote.rtcpPort, rtcpMux: remote.rtcpMux },
      peerReceives(remote.direction) && !holdAddress,
      codecs.map((c) => c.pt),
    );
    const pairs = codecs.map((c) => [c.pt, c.key] as const);
    // lifecycle.md rule 3: any hold direction (sendonly/recvonly/inactive, or c=0.0.0.0) switches the
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
    };
  }
}

export const rtpEndpointType: ElementType = {
  type: 'RtpEndpoint',
  hierarchy: BASE_RTP_ENDPOINT_HIERARCHY,
  events: [...BASE_RTP_ENDPOINT_EVENTS, 'OnKeySoftLimit'],
  create: (ctx) => new RtpEndpoint(ctx),
};
