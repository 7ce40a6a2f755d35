import { KurentoErrors } from '../errors/kurento-error';
import type { MediaLeg } from '../relay/media-leg';
import { EMPTY_CODECS, type CodecTable } from '../relay/codec-table';
import { RtpStreamRewriter } from '../relay/rtp-stream-rewriter';
import { fanOut, incomingCodec, OutgoingRtp } from '../relay/packet-relay';
import { systemClock, type TimerHandle } from '../../common/clock';
import type { ElementOffloadDelta, OffloadHooks, RewriterState } from '../native/offload-types';
import { currentOffloadController, offloadControllerFor } from '../native/offload-controller';
import { MediaObject, requireString, type OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/**
 * Kurento's MediaElement: connections to other elements of the same pipeline, the MediaFlowIn/Out
 * states, and the calls into the per-packet relay between them (src/media/relay/packet-relay.ts).
 *
 * ## Extension API (how a new element type plugs in)
 * - Subclass `SdpEndpoint` (./sdp-endpoint.ts) for anything with a transport leg (RtpEndpoint,
 *   WebRtcEndpoint), or `MediaElement` directly for a leg-less element.
 * - Describe the type with an `ElementType` (./element-type.ts): `type`, `hierarchy` (nearest ancestor
 *   first, e.g. BASE_RTP_ENDPOINT_HIERARCHY), `events` (every IDL event name of the class, so
 *   subscribe never fails) and `create(ctx)`.
 * - Register the `ElementType` in the factory table (./element-types.ts): one static import and one
 *   `registry.register(...)` line.
 * - Operations: override `invoke(operation, params)`, handle your names, `return super.invoke(...)`
 *   for the rest. Throw `KurentoErrors.*` (../errors/kurento-error.ts) for failures.
 * - Events: `this.emitEvent('IceCandidateFound', { candidate: {...} })` — source/tags/timestampMillis/type
 *   are filled in; delivery to subscribed sessions is the registry's job.
 * - Media: after negotiation call `this.useLeg(leg)` / `this.setCodecs(table)` (SdpEndpoint does it in
 *   `negotiated()`); RTP from the leg is relayed to connected sinks with payload type mapped by codec
 *   name and SSRC/seq/timestamp rewritten per outgoing leg. Nothing else is needed for the relay.
 * - Teardown: override `teardown()` and call `super.teardown()`; it must be idempotent.
 */
export type MediaType = 'AUDIO' | 'VIDEO' | 'DATA';
const ALL_MEDIA_TYPES: readonly MediaType[] = ['AUDIO', 'VIDEO', 'DATA'];
const FLOW_CHECK_MS = 2000;

export abstract class MediaElement extends MediaObject {
  /** Sinks this element feeds, per media type. */
  private readonly sinks = new Map<MediaType, Set<MediaElement>>();
  /** The one source feeding this element, per media type. */
  private readonly sources = new Map<MediaType, MediaElement>();
  /** Cached AUDIO sinks for the per-packet path. */
  private audioSinks: MediaElement[] = [];

  protected leg: MediaLeg | undefined;
  protected codecs: CodecTable = EMPTY_CODECS;
  private rewriter: RtpStreamRewriter;
  /** Payload type per codec towards this element's peer, through `rewriter` (../relay/packet-relay.ts). */
  private readonly outgoing: OutgoingRtp;

  /** Packets that left this element into the pipeline (received from its peer). */
  private flowOutCount = 0;
  /** Packets that entered this element from the pipeline (to be sent to its peer). */
  private flowInCount = 0;
  private flowingOut = false;
  private flowingIn = false;
  private flowOutSeen = 0;
  private flowInSeen = 0;
  private flowTimer: TimerHandle | undefined;
  /** Packets dropped because the sink did not negotiate the codec. */
  protected droppedNoCodec = 0;
  /** While true (an RFC 4733 event this element generates is going out), relayed packets are dropped. */
  private relaySuppressed = false;
  /** Relayed packets dropped while a generated event was going out. */
  protected droppedDuringDtmf = 0;
  /** The native relay's offload controller, while it may carry this element's packets (src/media/native/). */
  private offloadHooks: OffloadHooks | undefined;

  constructor(protected readonly ctx: ElementContext, type: string) {
    super(ctx.id, type, ctx.host, ctx.clock, ctx.pipelineId);
    this.rewriter = new RtpStreamRewriter(randomSsrc());
    this.outgoing = new OutgoingRtp(this.rewriter);
  }

  get pipelineId(): string {
    return this.ctx.pipelineId;
  }

  protected useLeg(leg: MediaLeg): void {
    this.offloadHooks?.changed('leg');
    this.leg = leg;
    // FERRY_MEDIA_RELAY=native: the offload controller may hand this element's simple calls to the native relay
    if (this.ctx.config.relay === 'native') offloadControllerFor(this.ctx.logger).register(this, leg);
  }

  protected setCodecs(codecs: CodecTable): void {
    this.offloadHooks?.changed('codecs');
    this.codecs = codecs;
  }

  // ---- the native relay's view of this element (src/media/native/offload-controller.ts) -------------

  /** Give (or take back) the offload controller's hooks. */
  setOffloadHooks(hooks: OffloadHooks | undefined): void {
    this.offloadHooks = hooks;
  }

  /** What the controller reads to decide whether this element's outgoing packets may be forwarded natively. */
  offloadView(): { leg: MediaLeg | undefined; audioSinks: readonly MediaElement[]; codecs: CodecTable; busy: boolean; realClock: boolean; released: boolean } {
    return {
      leg: this.leg,
      audioSinks: this.audioSinks,
      codecs: this.codecs,
      busy: this.relaySuppressed || this.generatingPackets(),
      realClock: this.clock === systemClock,
      released: this.released,
    };
  }

  /** True while the element generates packets of its own towards its peer (DTMF): no native route into its leg then. */
  protected generatingPackets(): boolean {
    return false;
  }

  exportRewriter(): RewriterState {
    return this.rewriter.exportState();
  }

  importRewriter(state: RewriterState): void {
    this.rewriter.importState(state);
  }

  /** Add what a native route counted: `asSource` for the element the route reads from, else its sink. */
  applyFlow(d: ElementOffloadDelta, asSource: boolean): void {
    if (asSource) {
      if (d.flowOut <= 0) return;
      this.flowOutCount += d.flowOut;
      if (!this.flowingOut && !this.released) this.setFlowOut(true);
      this.offloadedPacketsFromPeer();
      return;
    }
    this.flowInCount += d.flowIn;
    this.droppedNoCodec += d.droppedNoCodec;
    if (d.flowIn > 0 && !this.flowingIn && !this.released) this.setFlowIn(true);
  }

  /** Packets from the peer went through the native relay (SdpEndpoint: media state CONNECTED). */
  protected offloadedPacketsFromPeer(): void {}

  /** Bring the native relay's figures in before reading them (flow checks, /stats, getStats). */
  protected syncOffloaded(): void {
    this.offloadHooks?.sync();
  }

  /** Something the native relay relies on changes (DTMF about to be generated, ...): routes come down first. */
  protected offloadChanged(reason: string): void {
    this.offloadHooks?.changed(reason);
  }

  /** The codec keys this element negotiated, in preference order (used by a sink generating an offer). */
  negotiatedCodecKeys(): string[] {
    return [...this.codecs.send.keys()];
  }

  /** Source elements currently connected to this one. */
  connectedSources(): MediaElement[] {
    return [...new Set(this.sources.values())];
  }

  /** Every element this one exchanges media with (its sources and its sinks, any media type). */
  connectedPeers(): MediaElement[] {
    const peers = new Set<MediaElement>(this.sources.values());
    for (const set of this.sinks.values()) for (const e of set) peers.add(e);
    peers.delete(this);
    return [...peers];
  }

  /** Called on both ends after a connection was made or undone (SdpEndpoint re-derives its hold state). */
  protected connectionsChanged(): void {}

  // ---- per-packet path ----------------------------------------------------------------------

  /** A packet arrived from this element's peer: relay it to every AUDIO sink. `packet` is a valid RTP packet. */
  protected relayFromPeer(packet: Buffer): void {
    this.flowOutCount++;
    if (!this.flowingOut) this.setFlowOut(true);
    const key = incomingCodec(packet, this.codecs);
    if (key !== undefined) fanOut(packet, key, this.audioSinks);
  }

  /**
   * For a leg-less element that forwards what it is given (PassThrough): relay a packet already known to
   * carry codec `key` to every AUDIO sink, counted as media flowing out of this element.
   */
  protected relayToSinks(packet: Buffer, key: string): void {
    this.flowOutCount++;
    if (!this.flowingOut) this.setFlowOut(true);
    fanOut(packet, key, this.audioSinks);
  }

  /** A packet from a connected source, to be sent to this element's peer. */
  deliverFromPipeline(packet: Buffer, codec: string): void {
    this.flowInCount++;
    if (!this.flowingIn) this.setFlowIn(true);
    const leg = this.leg;
    if (leg === undefined) return;
    if (this.relaySuppressed) {
      this.droppedDuringDtmf++;
      return;
    }
    if (!this.outgoing.send(packet, codec, this.codecs, leg, this.clock.now())) this.droppedNoCodec++;
  }

  // ---- packets this element generates itself (ferry's sendDtmf, src/media/relay/dtmf-sender.ts)

  /** The RTP timestamp of this element's outgoing stream now. */
  protected outgoingTimestamp(clockRate: number, now: number): number {
    this.offloadHooks?.changed('dtmf');
    return this.rewriter.currentTimestamp(clockRate, now);
  }

  /** Send a generated packet on the leg, continuing this element's outgoing stream (sequence number, SSRC). */
  protected sendGenerated(packet: Buffer, payloadType: number, streamTs: number, now: number): void {
    const leg = this.leg;
    if (leg === undefined) return;
    this.offloadHooks?.changed('dtmf');
    this.rewriter.stampGenerated(packet, payloadType, streamTs, now);
    leg.sendRtp(packet);
  }

  /** Drop (true) or relay again (false) what the pipeline sends to this element's peer. */
  protected suppressRelayed(on: boolean): void {
    this.offloadHooks?.changed('dtmf');
    this.relaySuppressed = on;
  }

  // ---- media flow states (packet presence only, as in KMS: FLOWING at once, NOT_FLOWING 2-4 s after the last packet)

  private setFlowOut(flowing: boolean): void {
    this.flowingOut = flowing;
    this.emitEvent('MediaFlowOutStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' });
    this.armFlowTimer();
  }

  private setFlowIn(flowing: boolean): void {
    this.flowingIn = flowing;
    this.emitEvent('MediaFlowInStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' });
    this.armFlowTimer();
  }

  private armFlowTimer(): void {
    if (this.released) return;
    if (this.flowingIn || this.flowingOut) {
      if (this.flowTimer) return;
      this.flowOutSeen = this.flowOutCount;
      this.flowInSeen = this.flowInCount;
      this.flowTimer = this.clock.setInterval(() => this.checkFlow(), FLOW_CHECK_MS);
    } else if (this.flowTimer) {
      this.flowTimer.cancel();
      this.flowTimer = undefined;
    }
  }

  private checkFlow(): void {
    this.offloadHooks?.sync();
    if (this.flowingOut && this.flowOutCount === this.flowOutSeen) this.setFlowOut(false);
    if (this.flowingIn && this.flowInCount === this.flowInSeen) this.setFlowIn(false);
    this.flowOutSeen = this.flowOutCount;
    this.flowInSeen = this.flowInCount;
  }

  // ---- connections ----------------------------------------------------------------------------

  connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    if (sink.pipelineId !== this.pipelineId) throw KurentoErrors.connect('Media elements do not share pipeline');
    if (sink.isReleased || this.released) throw KurentoErrors.connect('Media element already released');
    for (const t of mediaType ? [mediaType] : ALL_MEDIA_TYPES) {
      const old = sink.sources.get(t);
      if (old === this) continue;
      if (old) old.disconnectFrom(sink, t);
      sink.sources.set(t, this);
      let set = this.sinks.get(t);
      if (!set) this.sinks.set(t, (set = new Set()));
      set.add(sink);
      this.emitEvent('ElementConnected', { sink: sink.id, mediaType: t, sourceMediaDescription: 'default', sinkMediaDescription: 'default' });
    }
    this.refreshAudioSinks();
    this.offloadHooks?.changed('connect');
    sink.offloadHooks?.changed('connect');
    this.connectionsChanged();
    sink.connectionsChanged();
  }

  disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    for (const t of mediaType ? [mediaType] : ALL_MEDIA_TYPES) {
      const set = this.sinks.get(t);
      if (!set || !set.delete(sink)) continue;
      if (sink.sources.get(t) === this) sink.sources.delete(t);
      this.emitEvent('ElementDisconnected', { sink: sink.id, mediaType: t, sourceMediaDescription: 'default', sinkMediaDescription: 'default' });
    }
    this.offloadHooks?.changed('disconnect');
    sink.offloadHooks?.changed('disconnect');
    this.refreshAudioSinks();
    this.connectionsChanged();
    sink.connectionsChanged();
  }

  private disconnectAll(): void {
    for (const [t, set] of this.sinks) for (const sink of [...set]) this.disconnectFrom(sink, t);
    for (const [t, src] of [...this.sources]) src.disconnectFrom(this, t);
  }

  private refreshAudioSinks(): void {
    this.audioSinks = [...(this.sinks.get('AUDIO') ?? [])];
  }

  private connectionData(source: MediaElement, sink: MediaElement, t: MediaType): Record<string, unknown> {
    return {
      __module__: 'kurento',
      __type__: 'ElementConnectionData',
      source: source.id,
      sink: sink.id,
      type: t,
      sourceDescription: 'default',
      sinkDescription: 'default',
    };
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'connect':
      case 'disconnect': {
        const sinkId = requireString(params, 'sink');
        const sink = this.host.lookup(sinkId);
        if (!(sink instanceof MediaElement)) throw KurentoErrors.objectNotFound(sinkId);
        const mediaType = parseMediaType(params.mediaType);
        if (operation === 'connect') this.connectTo(sink, mediaType);
        else this.disconnectFrom(sink, mediaType);
        return null;
      }
      case 'getSourceConnections': {
        const t = parseMediaType(params.mediaType);
        return [...this.sources]
          .filter(([mt]) => !t || mt === t)
          .map(([mt, src]) => this.connectionData(src, this, mt));
      }
      case 'getSinkConnections': {
        const t = parseMediaType(params.mediaType);
        const out: Record<string, unknown>[] = [];
        for (const [mt, set] of this.sinks) if (!t || mt === t) for (const s of set) out.push(this.connectionData(this, s, mt));
        return out;
      }
      case 'isMediaFlowingIn':
        this.offloadHooks?.sync();
        return parseMediaType(params.mediaType) === 'AUDIO' && this.flowingIn;
      case 'isMediaFlowingOut':
        this.offloadHooks?.sync();
        return parseMediaType(params.mediaType) === 'AUDIO' && this.flowingOut;
      case 'isMediaTranscoding':
        return false;
      case 'setAudioFormat':
      case 'setVideoFormat':
      case 'setOutputBitrate':
      case 'setMinEncoderBitrate':
      case 'setMaxEncoderBitrate':
      case 'setEncoderBitrate':
        return null;
      case 'getMinEncoderBitrate':
      case 'getMaxEncoderBitrate':
      case 'getEncoderBitrate':
        return 0;
      case 'getStats':
        this.offloadHooks?.sync();
        return this.statsValue();
      case 'getGstreamerDot':
        return `digraph "${this.id}" {}`;
      default:
        return super.invoke(operation, params);
    }
  }

  /** `getStats` result: a map of stat id -> stats object (kurento ElementStats shape, simplified). */
  protected statsValue(): Record<string, unknown> {
    return {};
  }

  /** Summary for /stats. Subclasses add their own fields. */
  describeForStats(): Record<string, unknown> {
    this.offloadHooks?.sync();
    return {
      id: this.id,
      type: this.type,
      flowingIn: this.flowingIn,
      flowingOut: this.flowingOut,
      packetsFromPeer: this.flowOutCount,
      packetsToPeer: this.flowInCount,
      droppedNoCodec: this.droppedNoCodec,
      // FERRY_MEDIA_RELAY=native: whether the packets from this element's peer go through the native relay now
      ...(this.ctx.config.relay === 'native' ? { nativeRelay: currentOffloadController()?.isRouted(this) === true ? 'routed' : 'js' } : {}),
      sinks: [...new Set([...this.sinks.values()].flatMap((s) => [...s].map((e) => e.id)))],
    };
  }

  /** Number of local UDP ports held by this element (for /stats). */
  boundPorts(): number {
    return this.leg?.boundPorts() ?? 0;
  }

  override async teardown(_options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.offloadHooks?.changed('release');
    this.disconnectAll();
    this.released = true;
    this.flowTimer?.cancel();
    this.flowTimer = undefined;
  }
}

export function parseMediaType(v: unknown): MediaType | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'AUDIO' || v === 'VIDEO' || v === 'DATA') return v;
  throw KurentoErrors.marshall(`'mediaType' parameter should be one of AUDIO, VIDEO, DATA (got ${JSON.stringify(v)})`);
}

function randomSsrc(): number {
  return (Math.random() * 0xffffffff) >>> 0 || 1;
}
