import { KurentoErrors } from '../errors/kurento-error';
import { LegLiveness } from '../lifecycle/leg-liveness';
import { emptyLegActivity, type LegEndReason, type MediaLeg } from '../relay/media-leg';
import type { CodecTable } from '../relay/codec-table';
import { DtmfSender, parseDtmfParams } from '../relay/dtmf-sender';
import { TELEPHONE_EVENT } from '../sdp/rtp-audio-sdp';
import { MediaElement } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

export type MediaState = 'CONNECTED' | 'DISCONNECTED';
export type ConnectionState = 'CONNECTED' | 'DISCONNECTED';

/** `describe` hierarchy of RtpEndpoint and WebRtcEndpoint (nearest ancestor first, the class itself excluded). */
export const BASE_RTP_ENDPOINT_HIERARCHY: readonly string[] = [
  'kurento.BaseRtpEndpoint',
  'kurento.SdpEndpoint',
  'kurento.SessionEndpoint',
  'kurento.Endpoint',
  'kurento.MediaElement',
  'kurento.MediaObject',
];

/** Events every BaseRtpEndpoint accepts (the 7.x IDL); subclasses append their own. */
export const BASE_RTP_ENDPOINT_EVENTS: readonly string[] = [
  'Error',
  'ElementConnected',
  'ElementDisconnected',
  'MediaFlowInStateChanged',
  'MediaFlowOutStateChanged',
  'MediaTranscodingStateChanged',
  'MediaSessionStarted',
  'MediaSessionTerminated',
  'ConnectionStateChanged',
  'MediaStateChanged',
];

/**
 * Kurento's SdpEndpoint/BaseRtpEndpoint: an element with one transport leg (src/media/relay/media-leg.ts),
 * SDP state, MediaState/ConnectionState and the leg's liveness (docs/lifecycle.md).
 *
 * Subclasses (RtpEndpoint, WebRtcEndpoint) implement generateOffer/processOffer/processAnswer in
 * `invoke()`, and call:
 * - `attachLeg(leg)` once the leg exists (wires rtp/rtcp/connected/signal to relay, states and liveness);
 * - `negotiated({ codecs, peerWillSend, localSdp, remoteSdp })` when SDP is applied (emits
 *   MediaSessionStarted the first time, starts liveness; call again on renegotiation / hold);
 * - `endLeg(reason)` for an end they detect themselves (emits MediaSessionTerminated +
 *   MediaStateChanged(DISCONNECTED) with `reason`, then tells the registry).
 * A WebRTC leg must NOT emit `signal('rtcp-bye')`: from a browser a BYE only means a track stopped.
 */
export abstract class SdpEndpoint extends MediaElement {
  protected localSdp: string | undefined;
  protected remoteSdp: string | undefined;
  private mediaState: MediaState = 'DISCONNECTED';
  private connectionState: ConnectionState = 'DISCONNECTED';
  private sessionStarted = false;
  private readonly liveness: LegLiveness;
  private legEndReason: LegEndReason | undefined;
  private legEndedAt = 0;
  /** What this leg's own peer said in its last SDP: it will send (false: hold, lifecycle rule 3). */
  private ownPeerWillSend = true;
  /** Why this leg is on the hold rule now: its own peer's SDP, or a connected endpoint's (see refreshHold). */
  private holdCause: 'own-sdp' | 'connected-endpoint' | undefined;
  /** RFC 4733 events this endpoint generates (`sendDtmf`, a ferry extension); created on first use. */
  private dtmfSender: DtmfSender | undefined;

  constructor(ctx: ElementContext, type: string) {
    super(ctx, type);
    this.liveness = new LegLiveness(
      ctx.clock,
      { deadMs: ctx.config.deadMs, holdMs: ctx.config.holdMs },
      () => this.leg?.activity() ?? NO_ACTIVITY,
      (reason) => this.onLegEnded(reason),
    );
  }

  get endReason(): LegEndReason | undefined {
    return this.legEndReason;
  }

  /** The media state and how the leg ended, for a relay worker's report to the control plane (src/media/workers/). */
  endState(): { mediaState: MediaState; endReason: LegEndReason | undefined; endedAt: number } {
    return { mediaState: this.mediaState, endReason: this.legEndReason, endedAt: this.legEndedAt };
  }

  /** Negotiated with media and its leg not ended: the registry keeps such a pipeline alive even when orphaned. */
  get mediaLive(): boolean {
    return this.sessionStarted && this.remoteSdp !== undefined && this.legEndReason === undefined && !this.released;
  }

  protected attachLeg(leg: MediaLeg): void {
    this.useLeg(leg);
    const onRtp = (packet: Buffer): void => {
      if (this.mediaState !== 'CONNECTED') this.setMediaState('CONNECTED');
      this.relayFromPeer(packet);
    };
    // a leg's direct callback where it has one: no listener dispatch per packet
    if (leg.setRtpHandler) leg.setRtpHandler(onRtp);
    else leg.on('rtp', onRtp);
    leg.on('rtcp', () => {
      if (this.mediaState !== 'CONNECTED') this.setMediaState('CONNECTED');
    });
    leg.on('connected', () => this.setConnectionState('CONNECTED'));
    leg.on('signal', (reason: LegEndReason) => this.endLeg(reason));
  }

  protected negotiated(n: { codecs: CodecTable; peerWillSend: boolean; localSdp: string; remoteSdp: string }): void {
    this.setCodecs(n.codecs);
    this.localSdp = n.localSdp;
    this.remoteSdp = n.remoteSdp;
    const wasHeldBySdp = this.heldBySdp;
    this.ownPeerWillSend = n.peerWillSend;
    this.refreshHold();
    if (wasHeldBySdp !== this.heldBySdp) for (const p of this.connectedPeers()) if (p instanceof SdpEndpoint) p.refreshHold();
    if (!this.sessionStarted) {
      this.sessionStarted = true;
      this.emitEvent('MediaSessionStarted');
    }
    if (!this.legEndReason) this.liveness.start();
  }

  /**
   * An offer answered with every m-line at port 0 (nothing ferry carries): the SDP is kept for
   * getLocal/RemoteSessionDescriptor, but no media session starts, no liveness runs and the endpoint
   * does not keep an orphaned pipeline alive (mediaLive stays false).
   */
  protected negotiatedWithoutMedia(localSdp: string, remoteSdp: string): void {
    this.localSdp = localSdp;
    this.remoteSdp = remoteSdp;
  }

  /** This leg's own peer said in its SDP that it will not send (a hold direction or address). */
  get heldBySdp(): boolean {
    return this.remoteSdp !== undefined && !this.ownPeerWillSend && !this.released;
  }

  /**
   * Whether this endpoint follows the hold of an endpoint it is connected to (see refreshHold). False for
   * an endpoint that learns its peer's direction from every SDP it is given (RtpEndpoint: an application
   * passes the held party's re-INVITE answer to it); a silent peer whose SDP still says sendrecv is dead.
   */
  protected followsConnectedHold(): boolean {
    return false;
  }

  /**
   * A leg is on the hold rule (T_hold instead of T_dead, lifecycle rule 3) when its own peer's SDP holds,
   * or — for an endpoint that takes no SDP renegotiation (WebRtcEndpoint, as in KMS) — when an endpoint
   * it exchanges media with is held by its peer's SDP: the far party of the call is on hold, so this party
   * gets nothing and is told (by the application's re-INVITE, which this endpoint never sees) to send
   * nothing either. The relay's connection graph decides, so this works for any application, also one
   * that adopted the call. Not transitive. A browser that really goes away meanwhile still ends its leg
   * at once through its explicit signals (ICE consent lost, DTLS close).
   */
  private refreshHold(): void {
    const cause = this.heldBySdp
      ? 'own-sdp'
      : this.followsConnectedHold() && this.connectedPeers().some((p) => p instanceof SdpEndpoint && p.heldBySdp)
        ? 'connected-endpoint'
        : undefined;
    if (cause === this.holdCause) return;
    const was = this.holdCause;
    this.holdCause = cause;
    this.liveness.setPeerWillSend(cause === undefined);
    if (cause === 'connected-endpoint' || was === 'connected-endpoint') {
      this.ctx.logger.info(cause ? 'media leg on the hold rule: connected endpoint held' : 'media leg off the hold rule', { element: this.id, ...(cause ? { cause } : { was }) });
    }
  }

  /** DTMF this endpoint generates is queued or going out: the native relay keeps off its leg meanwhile. */
  protected override generatingPackets(): boolean {
    return (this.dtmfSender?.pending ?? 0) > 0;
  }

  /** Packets from the peer went through the native relay: what onRtp does for a packet relayed here. */
  protected override offloadedPacketsFromPeer(): void {
    if (this.mediaState !== 'CONNECTED') this.setMediaState('CONNECTED');
  }

  protected override connectionsChanged(): void {
    if (!this.released) this.refreshHold();
  }

  /** End this leg now (explicit signal). Idempotent; the first reason wins. */
  endLeg(reason: LegEndReason): void {
    if (this.released) return;
    this.liveness.signal(reason);
  }

  private onLegEnded(reason: LegEndReason): void {
    if (this.legEndReason || this.released) return;
    this.legEndReason = reason;
    this.legEndedAt = this.clock.now();
    this.dtmfSender?.stop();
    this.ctx.logger.info('media leg ended', { element: this.id, reason });
    const old = this.mediaState;
    this.mediaState = 'DISCONNECTED';
    this.emitEvent('MediaStateChanged', { oldState: old, newState: 'DISCONNECTED', reason }, this.legEndedAt);
    this.emitEvent('MediaSessionTerminated', { reason }, this.legEndedAt);
    this.host.legEnded(this.id, reason);
  }

  /**
   * A subscriber that arrives after this leg ended (e.g. a gateway adopting the call) still learns it:
   * MediaSessionTerminated and the final MediaStateChanged are replayed to it, with their reason.
   */
  override replayOnSubscribe(type: string): Record<string, unknown> | undefined {
    if (!this.legEndReason) return undefined;
    if (type === 'MediaSessionTerminated') return this.eventData(type, { reason: this.legEndReason }, this.legEndedAt);
    if (type === 'MediaStateChanged') {
      return this.eventData(type, { oldState: 'CONNECTED', newState: 'DISCONNECTED', reason: this.legEndReason }, this.legEndedAt);
    }
    return undefined;
  }

  /**
   * The end events a subscriber gets when another control session releases this endpoint's pipeline:
   * MediaStateChanged(DISCONNECTED) (when it was CONNECTED) and MediaSessionTerminated, both with
   * reason `control-release` and `detail`. None when the leg had already ended (that end was told).
   */
  releaseNotice(detail: string): { type: string; data: Record<string, unknown> }[] {
    if (this.legEndReason || this.released) return [];
    const at = this.clock.now();
    const notice: { type: string; data: Record<string, unknown> }[] = [];
    if (this.mediaState !== 'DISCONNECTED') {
      notice.push({ type: 'MediaStateChanged', data: this.eventData('MediaStateChanged', { oldState: this.mediaState, newState: 'DISCONNECTED', reason: 'control-release', detail }, at) });
    }
    notice.push({ type: 'MediaSessionTerminated', data: this.eventData('MediaSessionTerminated', { reason: 'control-release', detail }, at) });
    return notice;
  }

  private setMediaState(state: MediaState): void {
    if (this.legEndReason) return;
    const old = this.mediaState;
    if (old === state) return;
    this.mediaState = state;
    this.emitEvent('MediaStateChanged', { oldState: old, newState: state });
  }

  protected setConnectionState(state: ConnectionState): void {
    const old = this.connectionState;
    if (old === state) return;
    this.connectionState = state;
    this.emitEvent('ConnectionStateChanged', { oldState: old, newState: state });
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getLocalSessionDescriptor':
        if (this.localSdp === undefined) throw KurentoErrors.sdpNoLocal();
        return this.localSdp;
      case 'getRemoteSessionDescriptor':
        if (this.remoteSdp === undefined) throw KurentoErrors.sdpNoRemote();
        return this.remoteSdp;
      case 'getMediaState':
        return this.mediaState;
      case 'getConnectionState':
        return this.connectionState;
      case 'requestKeyframe':
        return null;
      case 'sendDtmf':
        return this.sendDtmf(params);
      case 'getMaxAudioRecvBandwidth':
      case 'getMaxVideoRecvBandwidth':
      case 'getMinVideoRecvBandwidth':
      case 'getMinVideoSendBandwidth':
      case 'getMaxVideoSendBandwidth':
        return 0;
      case 'getMtu':
        return 1200;
      case 'setMaxAudioRecvBandwidth':
      case 'setMaxVideoRecvBandwidth':
      case 'setMinVideoRecvBandwidth':
      case 'setMinVideoSendBandwidth':
      case 'setMaxVideoSendBandwidth':
      case 'setMtu':
        return null;
      default:
        return super.invoke(operation, params);
    }
  }

  /**
   * ferry extension `sendDtmf({ tones, durationMs?, gapMs? })`: queue RFC 4733 events towards this
   * endpoint's peer (src/media/relay/dtmf-sender.ts); answers at once with the ms until the last queued
   * tone has been sent. Refused before negotiation, after the leg ended, and when the peer did not
   * negotiate telephone-event/8000 in its SDP.
   */
  private sendDtmf(params: OperationParams): number {
    const req = parseDtmfParams(params);
    if (!this.leg || this.remoteSdp === undefined) throw KurentoErrors.notAvailable('sendDtmf: the endpoint has no negotiated media session yet');
    if (this.legEndReason) throw KurentoErrors.notAvailable(`sendDtmf: the endpoint's media leg ended (${this.legEndReason})`);
    if (this.codecs.send.get(TELEPHONE_EVENT) === undefined) {
      throw KurentoErrors.unsupportedMediaType('sendDtmf: the peer did not negotiate telephone-event/8000 (RFC 4733) in its SDP, so no DTMF can be sent to it in RTP');
    }
    if (!this.dtmfSender) {
      this.dtmfSender = new DtmfSender(this.clock, {
        payloadType: () => this.codecs.send.get(TELEPHONE_EVENT),
        currentTimestamp: (now) => this.outgoingTimestamp(8000, now),
        send: (packet, pt, streamTs, now) => this.sendGenerated(packet, pt, streamTs, now),
        suppressRelay: (on) => this.suppressRelayed(on),
        aborted: (reason, tonesLeft) => this.ctx.logger.warn('DTMF sending stopped', { element: this.id, reason, tonesLeft }),
      });
    }
    const ms = this.dtmfSender.enqueue(req);
    this.ctx.logger.info('DTMF queued', { element: this.id, tones: req.tones.length, durationMs: req.durationMs, gapMs: req.gapMs, untilMs: ms });
    return ms;
  }

  /**
   * `getStats`: inbound/outbound RTP counters of the leg and its RTCP session figures, in Kurento's
   * RTC*RTPStreamStats shape (a subset). Outbound `ssrc` is the leg's own SSRC (the one on the wire),
   * inbound `ssrc` the peer's; jitter and roundTripTime in seconds, fractionLost 0..1.
   */
  protected override statsValue(): Record<string, unknown> {
    const leg = this.leg;
    if (!leg) return {};
    const a = leg.activity();
    const r = leg.rtcpStats();
    const now = this.clock.now();
    const common = { __module__: 'kurento', timestamp: Math.floor(now / 1000), timestampMillis: now, mediaType: 'AUDIO' };
    return {
      [`${this.id}_inbound`]: {
        ...common,
        __type__: 'RTCInboundRTPStreamStats',
        id: `${this.id}_inbound`,
        type: 'inboundrtp',
        ...(r?.remoteSsrc !== undefined ? { ssrc: String(r.remoteSsrc) } : {}),
        packetsReceived: a.packetsIn,
        bytesReceived: a.bytesIn,
        packetsLost: r?.packetsLost ?? 0,
        fractionLost: r?.fractionLost ?? 0,
        jitter: r?.jitter ?? 0,
      },
      [`${this.id}_outbound`]: {
        ...common,
        __type__: 'RTCOutboundRTPStreamStats',
        id: `${this.id}_outbound`,
        type: 'outboundrtp',
        ...(leg.localSsrc !== undefined ? { ssrc: String(leg.localSsrc) } : {}),
        packetsSent: a.packetsOut,
        bytesSent: a.bytesOut,
        ...(r?.remoteReport ? { packetsLost: r.remoteReport.packetsLost, fractionLost: r.remoteReport.fractionLost } : {}),
        ...(r?.roundTripTime !== undefined ? { roundTripTime: r.roundTripTime } : {}),
      },
    };
  }

  override describeForStats(): Record<string, unknown> {
    const a = this.leg?.activity();
    return {
      ...super.describeForStats(),
      mediaState: this.mediaState,
      connectionState: this.connectionState,
      negotiated: this.remoteSdp !== undefined,
      legEnded: this.legEndReason ?? null,
      hold: this.holdCause ?? null,
      dtmf: { eventsSent: this.dtmfSender?.eventsSent ?? 0, packetsSent: this.dtmfSender?.packetsSent ?? 0, relayedDropped: this.droppedDuringDtmf },
      leg: a ? { kind: this.leg!.kind, ...a, boundPorts: this.leg!.boundPorts() } : null,
    };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.liveness.stop();
    this.dtmfSender?.stop();
    await super.teardown(options);
    await this.leg?.close({ notifyPeer: options.notifyPeer });
  }
}

const NO_ACTIVITY = emptyLegActivity();
