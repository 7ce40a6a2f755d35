import { randomInt } from 'node:crypto';
import type { TimerHandle } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import { encodeG711, type G711Law } from '../media-files/g711';
import { FRAME_SAMPLES } from '../mixing/mix-input';
import { otherG711, PCMA, PCMU, transcodeG711InPlace } from '../mixing/rtp-g711';
import { fanOut } from '../relay/packet-relay';
import type { ElementType } from './element-type';
import { Hub, type HubMembership, type HubPortOutput } from './hub';
import { MediaElement, type MediaType } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

const RTP_HEADER = 12;
/** Forwarded packets: MediaFlowOut goes NOT_FLOWING when none went out for this long (as an element's does). */
const FLOW_CHECK_MS = 2000;
/** How long a sink's negotiated codecs are trusted before they are read again (a forwarding port's law choice). */
const CODEC_RECHECK_MS = 250;

/** `describe` hierarchy of HubPort (a MediaElement in the 7.x IDL). */
const HUB_PORT_HIERARCHY: readonly string[] = ['kurento.MediaElement', 'kurento.MediaObject'];

const MEDIA_ELEMENT_EVENTS: readonly string[] = [
  'Error',
  'ElementConnected',
  'ElementDisconnected',
  'MediaFlowInStateChanged',
  'MediaFlowOutStateChanged',
  'MediaTranscodingStateChanged',
];

/** A sink's negotiated codec keys as last read. */
interface SinkCodecs {
  keys: string[];
  readAt: number;
}

/**
 * Kurento's HubPort: one port of a hub (./hub.ts: Composite, AlphaBlending, Mixer, Dispatcher,
 * DispatcherOneToMany). What is connected INTO the port (`endpoint.connect(hubPort)`) is handed to the
 * hub; what the hub gives the port goes to the elements it is connected to (`hubPort.connect(endpoint)`):
 * - from a mixing hub, a 20 ms frame of linear audio: sent as one RTP packet in the G.711 codec each sink
 *   negotiated (PCMU, else PCMA), under the port's own SSRC;
 * - from a dispatching hub, the packets of the port it is fed from, forwarded as they are (each sink maps
 *   the payload type and rewrites SSRC/sequence/timestamp for its peer), the G.711 payload converted to
 *   the other law only for a sink that negotiated that one and not the packet's (KMS's agnosticbin
 *   transcodes the same way).
 * Created with `hub.createHubPort()` or `pipeline.create('HubPort', {hub})`; its parent is the hub.
 */
export class HubPort extends MediaElement implements HubPortOutput {
  private readonly hub: Hub;
  private readonly membership: HubMembership;
  private readonly portSinks = new Set<MediaElement>();
  /** The AUDIO sinks as an array for the per-packet path. */
  private outSinks: MediaElement[] = [];
  private readonly sinkCodecs = new Map<MediaElement, SinkCodecs>();
  private readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0x10000);
  private timestamp = randomInt(0, 0xffffffff);
  private markNext = true;
  private framesSent = 0;
  private sendingOut = false;
  private packetsForwarded = 0;
  private packetsTranscoded = 0;
  private forwardedAtCheck = 0;
  private forwardWatch: TimerHandle | undefined;
  /** Set while a forwarded packet is being handed to the sinks: a packet coming back through a cycle is dropped. */
  private forwarding = false;
  private packetsLooped = 0;

  constructor(ctx: ElementContext) {
    super(ctx, 'HubPort');
    const hubId = ctx.constructorParams.hub;
    if (typeof hubId !== 'string') throw KurentoErrors.marshall("'hub' constructor parameter is required by HubPort");
    const hub = ctx.host.lookup(hubId);
    if (hub === undefined) throw KurentoErrors.objectNotFound(hubId);
    if (!(hub instanceof Hub)) throw KurentoErrors.marshall(`'hub' parameter should be a Hub (got a ${(hub as { type?: string }).type ?? 'non-object'})`);
    if (hub.isReleased) throw KurentoErrors.objectNotFound(hubId);
    if (hub.pipelineId !== ctx.pipelineId) throw KurentoErrors.illegalParam('the hub belongs to another pipeline');
    this.hub = hub;
    this.membership = hub.join(this);
  }

  /** A port of a mixing hub only reads what it is given: the relay hands it packets without a copy. */
  get readsPacketOnly(): boolean {
    return this.membership?.readsInputOnly ?? false;
  }

  override negotiatedCodecKeys(): string[] {
    return [PCMU, PCMA];
  }

  // The port's AUDIO sinks, followed through every connect and disconnect (also those a sink's release makes).
  override connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.connectTo(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') {
      this.portSinks.add(sink);
      this.outSinks = [...this.portSinks];
    }
  }

  override disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.disconnectFrom(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') {
      this.portSinks.delete(sink);
      this.sinkCodecs.delete(sink);
      this.outSinks = [...this.portSinks];
    }
  }

  /** A packet from the element connected into this port: the hub's. */
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    super.deliverFromPipeline(packet, codec); // flow-in state and counts; a port has no leg to send to
    if (this.released) return;
    this.membership.input(packet, codec);
  }

  /** The mixer's frame for this port: sent to every sink in its codec. `frame` is only valid during the call. */
  mixed(frame: Int16Array): void {
    if (this.portSinks.size === 0) {
      if (this.sendingOut) this.setFlowingOut(false);
    } else {
      if (!this.sendingOut) this.setFlowingOut(true);
      let ulaw: Buffer | undefined;
      let alaw: Buffer | undefined;
      for (const sink of this.portSinks) {
        const codec = chooseCodec(sink);
        let packet: Buffer;
        if (codec === PCMA) packet = alaw ??= this.buildPacket('alaw', 8, frame);
        else packet = ulaw ??= this.buildPacket('mulaw', 0, frame);
        // each sink rewrites the header for its own peer, and its transport keeps the buffer: one copy each
        sink.deliverFromPipeline(Buffer.from(packet), codec);
      }
      this.markNext = false;
      this.framesSent++;
    }
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + FRAME_SAMPLES) >>> 0;
  }

  /**
   * A dispatching hub's packet for this port, to every AUDIO sink: one copy per sink but the last (as the
   * relay's fan-out), none with one sink; a sink that negotiated only the other G.711 law gets its copy
   * converted.
   */
  forward(packet: Buffer, codec: string): void {
    if (this.released) return;
    const sinks = this.outSinks;
    const n = sinks.length;
    if (n === 0) {
      if (this.sendingOut) this.outputStopped();
      return;
    }
    if (this.forwarding) {
      this.packetsLooped++;
      return;
    }
    this.packetsForwarded++;
    if (!this.sendingOut) {
      this.setFlowingOut(true);
      this.watchFlow();
    }
    this.forwarding = true;
    try {
      let convert = false;
      for (let i = 0; i < n; i++) {
        if (this.codecFor(sinks[i]!, codec) !== codec) {
          convert = true;
          break;
        }
      }
      if (!convert) {
        fanOut(packet, codec, sinks);
        return;
      }
      for (let i = 0; i < n; i++) {
        const sink = sinks[i]!;
        const target = this.codecFor(sink, codec);
        const own = i === n - 1 ? packet : Buffer.from(packet);
        if (target !== codec && transcodeG711InPlace(own, codec)) {
          this.packetsTranscoded++;
          sink.deliverFromPipeline(own, target);
        } else sink.deliverFromPipeline(own, codec);
      }
    } finally {
      this.forwarding = false;
    }
  }

  outputStopped(): void {
    this.forwardWatch?.cancel();
    this.forwardWatch = undefined;
    if (this.sendingOut) this.setFlowingOut(false);
  }

  /** The codec `sink` gets a packet of `codec` in: the other G.711 law when it negotiated that one and not this one. */
  private codecFor(sink: MediaElement, codec: string): string {
    const other = otherG711(codec);
    if (other === undefined) return codec;
    const now = this.clock.now();
    let known = this.sinkCodecs.get(sink);
    if (known === undefined) {
      known = { keys: sink.negotiatedCodecKeys(), readAt: now };
      this.sinkCodecs.set(sink, known);
    } else if (now - known.readAt >= CODEC_RECHECK_MS) {
      known.keys = sink.negotiatedCodecKeys();
      known.readAt = now;
    }
    return !known.keys.includes(codec) && known.keys.includes(other) ? other : codec;
  }

  /** While forwarding: NOT_FLOWING once a check finds nothing forwarded since the last one. */
  private watchFlow(): void {
    if (this.forwardWatch || this.released) return;
    this.forwardedAtCheck = this.packetsForwarded;
    this.forwardWatch = this.clock.setInterval(() => {
      if (this.packetsForwarded === this.forwardedAtCheck) this.outputStopped();
      this.forwardedAtCheck = this.packetsForwarded;
    }, FLOW_CHECK_MS);
  }

  private buildPacket(law: G711Law, pt: number, frame: Int16Array): Buffer {
    const b = Buffer.allocUnsafe(RTP_HEADER + FRAME_SAMPLES);
    b[0] = 0x80;
    b[1] = (this.markNext ? 0x80 : 0) | pt;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE(this.timestamp, 4);
    b.writeUInt32BE(this.ssrc, 8);
    encodeG711(law, frame, 0, FRAME_SAMPLES, b, RTP_HEADER);
    return b;
  }

  private setFlowingOut(flowing: boolean): void {
    this.sendingOut = flowing;
    this.emitEvent('MediaFlowOutStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' });
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getParent':
        return this.hub.id;
      case 'isMediaFlowingOut':
        return (params.mediaType === undefined || params.mediaType === null || params.mediaType === 'AUDIO') && this.sendingOut;
      default:
        return super.invoke(operation, params);
    }
  }

  override describeForStats(): Record<string, unknown> {
    const output = this.membership.output === 'mixed'
      ? { framesSent: this.framesSent }
      : { packetsForwarded: this.packetsForwarded, packetsTranscoded: this.packetsTranscoded, packetsLooped: this.packetsLooped };
    return { ...super.describeForStats(), flowingOut: this.sendingOut, hub: this.hub.id, ...this.membership.stats(), ...output };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.hub.leave(this.id);
    this.forwardWatch?.cancel();
    this.forwardWatch = undefined;
    await super.teardown(options);
    this.portSinks.clear();
    this.outSinks = [];
    this.sinkCodecs.clear();
  }
}

/** The G.711 codec a sink negotiated (its own preference order), PCMU when it has negotiated neither yet. */
function chooseCodec(sink: MediaElement): string {
  for (const key of sink.negotiatedCodecKeys()) if (key === PCMU || key === PCMA) return key;
  return PCMU;
}

export const hubPortType: ElementType = {
  type: 'HubPort',
  hierarchy: HUB_PORT_HIERARCHY,
  events: MEDIA_ELEMENT_EVENTS,
  create: (ctx) => new HubPort(ctx),
};
