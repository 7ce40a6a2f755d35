import { KurentoErrors } from '../errors/kurento-error';
import { AudioMixer, type MixerPort, type MixListener } from '../mixing/audio-mixer';
import type { ElementType } from './element-type';
import { MediaElement } from './media-element';
import { MediaObject, type OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/** `describe` hierarchy of Composite: a Hub, which is a MediaObject (not a MediaElement) in the 7.x IDL. */
const COMPOSITE_HIERARCHY: readonly string[] = ['kurento.Hub', 'kurento.MediaObject'];

/** Composite's constructor parameters for video, accepted (as integers) and unused: ferry media mixes audio only. */
const VIDEO_PARAMS = ['width', 'height', 'framerate'];

/**
 * Kurento's Composite hub for audio: its HubPorts (./hub-port.ts, created with `createHubPort()` or
 * `create('HubPort', {hub})`) are the parties of one N-1 mix (../mixing/audio-mixer.ts): what is
 * connected INTO a port is that party's voice, and what the port sends to the elements it is connected
 * to is the mix of every OTHER port. At most MAX_MIXER_PORTS ports (one more is 40009).
 *
 * Internally an element of its pipeline (so it is created, counted, described and released like one),
 * but as in Kurento it has no media pads: only MediaObject's operations plus the Hub's answer; connect
 * and the other MediaElement operations are "method not found", and media sent into it is dropped.
 */
export class Composite extends MediaElement {
  readonly mixer: AudioMixer;
  private readonly portIds = new Set<string>();

  constructor(ctx: ElementContext) {
    super(ctx, 'Composite');
    for (const key of VIDEO_PARAMS) {
      const v = ctx.constructorParams[key];
      if (v !== undefined && v !== null && !Number.isInteger(v)) throw KurentoErrors.marshall(`'${key}' parameter should be an integer`);
    }
    this.mixer = new AudioMixer(ctx.clock);
  }

  /** A HubPort joins the mix (40009 when the hub is full). */
  attach(portId: string, listener: MixListener): MixerPort {
    if (this.released) throw KurentoErrors.objectNotFound(this.id);
    const port = this.mixer.addPort(listener);
    this.portIds.add(portId);
    this.ctx.logger.info('hub port attached', { hub: this.id, port: portId, ports: this.mixer.portCount });
    return port;
  }

  detach(portId: string, port: MixerPort): void {
    if (!this.portIds.delete(portId)) return;
    this.mixer.removePort(port);
    this.ctx.logger.info('hub port detached', { hub: this.id, port: portId, ports: this.mixer.portCount });
  }

  /** A hub has no pads of its own: nothing connected into it is heard. */
  override deliverFromPipeline(): void {}

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getGstreamerDot':
        return `digraph "${this.id}" {}`;
      case 'dumpGstreamerDot':
        return null;
      default:
        // only MediaObject's operations: a Hub is not a MediaElement (no connect, no flow states)
        return MediaObject.prototype.invoke.call(this, operation, params);
    }
  }

  /** A hub's children are its ports (getChildren; they are released with it). */
  override childIds(): string[] {
    return [...this.portIds];
  }

  override describeForStats(): Record<string, unknown> {
    return {
      id: this.id,
      type: this.type,
      ports: [...this.portIds],
      framesMixed: this.mixer.framesMixed,
      scheduleRestarts: this.mixer.scheduleRestarts,
    };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.mixer.close();
    this.portIds.clear();
    await super.teardown(options);
  }
}

export const compositeType: ElementType = {
  type: 'Composite',
  hierarchy: COMPOSITE_HIERARCHY,
  events: ['Error'],
  create: (ctx) => new Composite(ctx),
};
