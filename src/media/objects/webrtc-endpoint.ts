import { randomInt } from 'node:crypto';
import { KurentoErrors, type KurentoError } from '../errors/kurento-error';
import { writeRejectingAnswer, type OfferedMLine } from '../sdp/rejected-media';
import { webRtcOfferPlan } from '../webrtc/remote-sdp-check';
import { codecKey, codecTableFrom } from '../relay/codec-table';
import { createWebRtcLeg } from '../webrtc/create-webrtc-leg';
import type { G711Codec, IceCandidateInit, WebRtcLeg } from '../webrtc/webrtc-leg';
import { WebRtcSdpError } from '../webrtc/webrtc-sdp-error';
import type { ElementType } from './element-type';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import { BASE_RTP_ENDPOINT_EVENTS, BASE_RTP_ENDPOINT_HIERARCHY, SdpEndpoint } from './sdp-endpoint';

type Negotiation = 'none' | 'offer-generated' | 'negotiated';

/**
 * Kurento's WebRtcEndpoint: the webphone side. ICE + DTLS-SRTP through a `WebRtcLeg`
 * (src/media/webrtc/, werift today), one audio m-line, G.711 pass-through: the browser is answered
 * with the G.711 codec the connected RTP side negotiated (PCMU when nothing is connected yet) plus
 * telephone-event. ICE events follow KMS: candidates are reported (IceCandidateFound) only after
 * gatherCandidates(), then IceGatheringDone; the SDP answer also carries them inline for apps that
 * do not trickle. As in KMS there is no renegotiation (a second offer gets 40208).
 */
export class WebRtcEndpoint extends SdpEndpoint {
  private readonly webrtc: WebRtcLeg;
  private state: Negotiation = 'none';
  /** The offer was answered with every m-line at port 0: no ICE agent, no media. */
  private carriesNothing = false;

  constructor(ctx: ElementContext) {
    super(ctx, 'WebRtcEndpoint');
    for (const p of ['recvonly', 'sendonly', 'useDataChannels'] as const) {
      if (ctx.constructorParams[p] === true) throw KurentoErrors.notImplemented(`WebRtcEndpoint: ${p}=true is not supported by ferry media`);
    }
    const logger = ctx.logger.child({ element: ctx.id });
    this.webrtc = createWebRtcLeg({ clock: ctx.clock, logger, ice: ctx.config.ice, rtcpIntervalMs: ctx.config.rtcpIntervalMs });
    this.attachLeg(this.webrtc);
    this.wireIceEvents(this.webrtc);
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'processOffer':
        return this.processOffer(params.offer);
      case 'generateOffer':
        return this.generateOffer();
      case 'processAnswer':
        return this.processAnswer(params.answer);
      case 'gatherCandidates':
        // An answer that carries nothing (every m-line at port 0) has no ICE agent: gathering is done at once.
        if (this.carriesNothing) {
          this.emitEvent('IceGatheringDone');
          return null;
        }
        // Allowed before negotiation too: candidates are then reported as soon as the SDP exchange gathers them.
        try {
          await this.webrtc.gatherCandidates();
        } catch (err) {
          throw KurentoErrors.iceGatherCandidates((err as Error).message);
        }
        return null;
      case 'addIceCandidate':
        await this.addIceCandidate(params.candidate);
        return null;
      case 'getICECandidatePairs': {
        const pair = this.webrtc.selectedPair();
        return pair ? [{ __module__: 'kurento', __type__: 'IceCandidatePair', streamId: '1', componentId: 1, ...pair }] : [];
      }
      case 'getIceConnectionState':
        return [{ __module__: 'kurento', __type__: 'IceConnection', streamId: '1', componentId: 1, state: this.webrtc.iceState() }];
      case 'getDtlsConnectionState':
        return this.webrtc.dtlsState();
      case 'getStunServerAddress':
      case 'getTurnUrl':
      case 'getExternalIPv4':
      case 'getExternalIPv6':
      case 'getNetworkInterfaces':
      case 'getExternalAddress':
        return '';
      case 'getStunServerPort':
        return 0;
      case 'getIceTcp':
        return false;
      case 'setStunServerAddress':
      case 'setStunServerPort':
      case 'setTurnUrl':
      case 'setExternalIPv4':
      case 'setExternalIPv6':
      case 'setNetworkInterfaces':
      case 'setExternalAddress':
      case 'setIceTcp':
        return null; // ferry media gathers host candidates on FERRY_MEDIA_ICE_ADDRESSES only
      case 'createDataChannel':
      case 'closeDataChannel':
        throw KurentoErrors.notImplemented('WebRtcEndpoint: data channels are not supported by ferry media');
      default:
        return super.invoke(operation, params);
    }
  }

  /** The G.711 codec of the connected RTP side, so the relay never has to transcode. */
  private preferredCodec(): G711Codec {
    for (const source of this.connectedSources()) {
      for (const key of source.negotiatedCodecKeys()) {
        if (key === codecKey('PCMU', 8000)) return 'PCMU';
        if (key === codecKey('PCMA', 8000)) return 'PCMA';
      }
    }
    return 'PCMU';
  }

  private async processOffer(offer: unknown): Promise<string> {
    if (this.state !== 'none') throw KurentoErrors.sdpAlreadyNegotiated();
    if (typeof offer !== 'string') throw KurentoErrors.marshall("'offer' parameter should be a string");
    if (offer.trim() === '') throw KurentoErrors.sdpParse('Empty offer not valid');
    let plan: ReturnType<typeof webRtcOfferPlan>;
    try {
      plan = webRtcOfferPlan(offer);
    } catch (err) {
      throw this.sdpFailure(err, 'process-offer');
    }
    if (plan.mlines.length === 0) throw KurentoErrors.sdpProcessOffer('SDP has no active audio m-line');
    if (plan.carried < 0) return this.rejectOffer(plan.mlines, offer);
    this.state = 'negotiated';
    let answer: string;
    try {
      answer = await this.webrtc.processOffer(offer, this.preferredCodec());
    } catch (err) {
      this.state = 'none'; // a rejected offer leaves the endpoint unnegotiated (the leg refuses a retry it cannot take)
      throw this.sdpFailure(err, 'process-offer');
    }
    this.applyNegotiation(answer, offer);
    return answer;
  }

  /**
   * An offer with nothing ferry carries (video only, data channels only, audio without PCMU/PCMA or
   * DTLS-SRTP): answered with every m-line at port 0 and no BUNDLE group, as KMS does. No ICE agent is
   * started and no port bound; the endpoint is negotiated (a second offer gets 40208, as in KMS).
   */
  private rejectOffer(mlines: OfferedMLine[], offer: string): string {
    this.state = 'negotiated';
    this.carriesNothing = true;
    const answer = writeRejectingAnswer({ sessionId: String(randomInt(1_000_000_000, 2_000_000_000)), version: 0, address: '0.0.0.0', mlines });
    this.ctx.logger.info('offer answered with every m-line at port 0 (no usable audio)', { element: this.id, mlines: mlines.map((m) => `${m.type} ${m.protocol}`).join(', ') });
    this.negotiatedWithoutMedia(answer, offer);
    return answer;
  }

  private async generateOffer(): Promise<string> {
    if (this.state !== 'none') throw KurentoErrors.sdpAlreadyNegotiated();
    this.state = 'offer-generated';
    let offer: string;
    try {
      offer = await this.webrtc.generateOffer(this.preferredCodec());
    } catch (err) {
      this.state = 'none';
      throw this.sdpFailure(err, 'generate-offer');
    }
    this.localSdp = offer;
    return offer;
  }

  private async processAnswer(answer: unknown): Promise<string> {
    if (this.state === 'none') throw KurentoErrors.sdpNotOfferGenerated();
    if (this.state === 'negotiated') throw KurentoErrors.sdpAnswerAlreadyProcessed();
    if (typeof answer !== 'string') throw KurentoErrors.marshall("'answer' parameter should be a string");
    if (answer.trim() === '') throw KurentoErrors.sdpParse('Empty answer not valid');
    try {
      await this.webrtc.processAnswer(answer);
    } catch (err) {
      throw this.sdpFailure(err, 'process-answer');
    }
    this.state = 'negotiated';
    const local = this.webrtc.localDescription() ?? this.localSdp ?? '';
    this.applyNegotiation(local, answer);
    return local;
  }

  /** No renegotiation here: a browser's hold is learnt from the endpoint it is connected to (SdpEndpoint.refreshHold). */
  protected override followsConnectedHold(): boolean {
    return true;
  }

  private applyNegotiation(localSdp: string, remoteSdp: string): void {
    const n = this.webrtc.negotiated();
    if (!n) throw KurentoErrors.sdpCreate('no usable audio after negotiation');
    const pairs: (readonly [number, string])[] = [[n.codec.payloadType, codecKey(n.codec.name, 8000)]];
    if (n.telephoneEvent) pairs.push([n.telephoneEvent.payloadType, codecKey('telephone-event', 8000)]);
    this.negotiated({
      codecs: codecTableFrom(pairs),
      peerWillSend: n.direction === 'sendrecv' || n.direction === 'recvonly',
      localSdp,
      remoteSdp,
    });
  }

  private async addIceCandidate(raw: unknown): Promise<void> {
    if (raw === null || typeof raw !== 'object') throw KurentoErrors.marshall("'candidate' parameter should be an IceCandidate");
    const c = raw as Record<string, unknown>;
    if (typeof c.candidate !== 'string') throw KurentoErrors.marshall("'candidate.candidate' should be a string");
    const candidate: IceCandidateInit = {
      candidate: c.candidate,
      sdpMid: typeof c.sdpMid === 'string' ? c.sdpMid : null,
      sdpMLineIndex: typeof c.sdpMLineIndex === 'number' ? c.sdpMLineIndex : null,
    };
    try {
      await this.webrtc.addRemoteCandidate(candidate);
    } catch (err) {
      if (err instanceof WebRtcSdpError) throw KurentoErrors.iceAddCandidate(err.message);
      throw err;
    }
  }

  private sdpFailure(err: unknown, stage: 'process-offer' | 'process-answer' | 'generate-offer'): KurentoError {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof WebRtcSdpError && /already negotiated/.test(message)) return KurentoErrors.sdpAlreadyNegotiated();
    if (err instanceof WebRtcSdpError && err.stage === 'parse') return KurentoErrors.sdpParse(message);
    if (stage === 'process-offer') return KurentoErrors.sdpProcessOffer(message);
    if (stage === 'process-answer') return KurentoErrors.sdpProcessAnswer(message);
    return KurentoErrors.sdpGenerateOffer(message);
  }

  private wireIceEvents(leg: WebRtcLeg): void {
    leg.on('local-candidate', (c) => {
      this.emitEvent('IceCandidateFound', {
        candidate: { __module__: 'kurento', __type__: 'IceCandidate', candidate: c.candidate, sdpMid: c.sdpMid ?? '0', sdpMLineIndex: c.sdpMLineIndex ?? 0 },
      });
    });
    leg.on('gathering-done', () => this.emitEvent('IceGatheringDone'));
    leg.on('ice-state', (state) => this.emitEvent('IceComponentStateChanged', { streamId: 1, componentId: 1, state }));
    leg.on('candidate-pair', (pair) => {
      this.emitEvent('NewCandidatePairSelected', {
        candidatePair: { __module__: 'kurento', __type__: 'IceCandidatePair', streamId: '1', componentId: 1, ...pair },
      });
    });
    leg.on('dtls-state', (state) => this.emitEvent('DtlsConnectionStateChange', { streamId: '1', componentId: 1, state }));
  }

  override describeForStats(): Record<string, unknown> {
    return {
      ...super.describeForStats(),
      ice: this.webrtc.iceState(),
      dtls: this.webrtc.dtlsState(),
      selectedPair: this.webrtc.selectedPair() ?? null,
    };
  }
}

export const elementType: ElementType = {
  type: 'WebRtcEndpoint',
  hierarchy: BASE_RTP_ENDPOINT_HIERARCHY,
  events: [
    ...BASE_RTP_ENDPOINT_EVENTS,
    'IceCandidateFound',
    'IceGatheringDone',
    'IceComponentStateChanged',
    'NewCandidatePairSelected',
    'DtlsConnectionStateChange',
    'DataChannelOpened',
    'DataChannelClosed',
  ],
  create: (ctx) => new WebRtcEndpoint(ctx),
};
