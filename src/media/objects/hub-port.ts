import { randomInt } from 'node:crypto';
import { KurentoErrors } from '../errors/kurento-error';
import { encodeG711, type G711Law } from '../media-files/g711';
import type { MixerPort, MixListener } from '../mixing/audio-mixer';
import { FRAME_SAMPLES } from '../mixing/mix-input';
import { Composite } from './composite';
import type { ElementType } from './element-type';
import { MediaElement, type MediaType } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

const PCMU = 'pcmu/8000';
const PCMA = 'pcma/8000';
const RTP_HEADER = 12;

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

/**
 * Kurento's HubPort on a Composite (./composite.ts): one party of the hub's audio mix. The AUDIO
 * connected into it (`endpoint.connect(hubPort)`: PCMU or PCMA; telephone-events are not mixed) is
 * that party's voice; every 20 ms it sends the elements it is connected to (`hubPort.connect(endpoint)`)
 * the mix of every other port of the hub, as one RTP packet in the G.711 codec each of them negotiated
 * (PCMU, else PCMA), under its own SSRC — silence when nobody else speaks, so the stream never stops.
 * Created with `hub.createHubPort()` or `pipeline.create('HubPort', {hub})`; its parent is the hub.
 */
export class HubPort extends MediaElement implements MixListener {
  private readonly hub: Composite;
  private readonly mixerPort: MixerPort;
  private readonly portSinks = new Set<MediaElement>();
  private readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0x10000);
  private timestamp = randomInt(0, 0xffffffff);
  private markNext = true;
  private framesSent = 0;
  private sendingOut = false;

  constructor(ctx: ElementContext) {
    super(ctx, 'HubPort');
    const hubId = ctx.constructorParams.hub;
    if (typeof hubId !== 'string') throw KurentoErrors.marshall("'hub' constructor parameter is required by HubPort");
    const hub = ctx.host.lookup(hubId);
    if (hub === undefined) throw KurentoErrors.objectNotFound(hubId);
    if (!(hub instanceof Composite)) throw KurentoErrors.marshall(`'hub' parameter should be a Hub (got a ${(hub as { type?: string }).type ?? 'non-object'})`);
    if (hub.isReleased) throw KurentoErrors.objectNotFound(hubId);
    if (hub.pipelineId !== ctx.pipelineId) throw KurentoErrors.illegalParam('the hub belongs to another pipeline');
    this.hub = hub;
    this.mixerPort = hub.attach(ctx.id, this);
  }

  override negotiatedCodecKeys(): string[] {
    return [PCMU, PCMA];
  }

  // The port's AUDIO sinks, followed through every connect and disconnect (also those a sink's release makes).
  override connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.connectTo(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') this.portSinks.add(sink);
  }

  override disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.disconnectFrom(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') this.portSinks.delete(sink);
  }

  /** A packet from the element connected into this port: its G.711 payload goes into the mix, read in place. */
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    super.deliverFromPipeline(packet, codec); // flow-in state and counts; a port has no leg to send to
    if (this.released) return;
    const law: G711Law | undefined = codec === PCMU ? 'mulaw' : codec === PCMA ? 'alaw' : undefined;
    if (law === undefined || packet.length < RTP_HEADER) return;
    let offset = RTP_HEADER + (packet[0]! & 0x0f) * 4;
    if (packet[0]! & 0x10) {
      if (packet.length < offset + 4) return;
      offset += 4 + packet.readUInt16BE(offset + 2) * 4;
    }
    let end = packet.length;
    if (packet[0]! & 0x20) end -= packet[packet.length - 1]!;
    if (end <= offset) return;
    this.hub.mixer.write(this.mixerPort, law, packet, offset, end - offset, packet.readUInt32BE(4), packet.readUInt32BE(8));
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
    const input = this.mixerPort.input;
    return {
      ...super.describeForStats(),
      flowingOut: this.sendingOut,
      hub: this.hub.id,
      packetsMixed: input.packetsMixed,
      packetsLate: input.packetsLate,
      reanchors: input.reanchors,
      framesSent: this.framesSent,
      samplesClipped: this.mixerPort.samplesClipped,
    };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.hub.detach(this.id, this.mixerPort);
    await super.teardown(options);
    this.portSinks.clear();
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
