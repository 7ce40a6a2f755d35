import { KurentoErrors } from '../errors/kurento-error';
import { MAX_MIXER_PORTS } from '../mixing/audio-mixer';
import { SelectableMixer, type SelectablePort } from '../mixing/selectable-mixer';
import type { ElementType } from './element-type';
import { HUB_EVENTS, HUB_HIERARCHY, type HubMembership, type HubPortOutput } from './hub';
import { MixMembership } from './mix-membership';
import { MixingHubBase } from './mixing-hub-base';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/**
 * Kurento's Mixer (kms-elements' selectablemixer): a hub where each HubPort hears the audio MIX of the
 * ports selected for it. `connect('AUDIO', source, sink)` adds what is connected INTO port `source` to what
 * comes OUT of port `sink`; `disconnect('AUDIO', source, sink)` takes it away. A port with no source sends
 * nothing; with one or more it sends one G.711 packet every 20 ms (silence while its sources are quiet),
 * like a Composite port (../mixing/selectable-mixer.ts). A call-centre supervisor hearing both sides of a
 * call is a port with the caller's and the agent's ports as sources. VIDEO connects are accepted and
 * unused (KMS routes video; ferry carries audio only); VIDEO disconnect is 40005 as in KMS ("not
 * implemented yet"), DATA 40005. At most MAX_MIXER_PORTS ports (one more is 40009).
 */
export class Mixer extends MixingHubBase<SelectablePort, SelectableMixer> {
  constructor(ctx: ElementContext) {
    super(ctx, 'Mixer', new SelectableMixer(ctx.clock));
  }

  protected override admit(port: HubPortOutput): HubMembership {
    if (this.mixer.portCount >= MAX_MIXER_PORTS) throw KurentoErrors.notEnoughResources(`a Mixer mixes at most ${MAX_MIXER_PORTS} HubPorts`);
    const member = this.mixer.addPort({ mixed: (frame) => port.mixed(frame), stopped: () => port.outputStopped() });
    this.members.set(port.id, member);
    return new SelectableMembership(this.mixer, member, this.members);
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    if (operation !== 'connect' && operation !== 'disconnect') return super.invoke(operation, params);
    const media = params.media;
    if (typeof media !== 'string') throw KurentoErrors.marshall("'media' parameter should be a MediaType");
    if (media !== 'AUDIO' && media !== 'VIDEO' && media !== 'DATA') {
      throw KurentoErrors.marshall(`'media' parameter should be one of AUDIO, VIDEO, DATA (got ${JSON.stringify(media)})`);
    }
    const sourceId = this.requirePort(params, 'source');
    const sinkId = this.requirePort(params, 'sink');
    if (media === 'DATA') throw KurentoErrors.unsupportedMediaType('Invalid media type');
    const source = this.members.get(sourceId)!;
    const sink = this.members.get(sinkId)!;
    if (operation === 'connect') {
      if (media === 'AUDIO' && this.mixer.select(source, sink)) {
        this.ctx.logger.info('mixer connected ports', { hub: this.id, source: sourceId, sink: sinkId });
      }
      return null; // VIDEO: accepted, nothing to route (audio only)
    }
    if (media === 'VIDEO') throw KurentoErrors.unsupportedMediaType('Video disconnection is not implemented yet');
    if (!this.mixer.deselect(source, sink)) throw KurentoErrors.connect('Can not disconnect ports: the source is not connected to the sink');
    this.ctx.logger.info('mixer disconnected ports', { hub: this.id, source: sourceId, sink: sinkId });
    return null;
  }
}

/** A port of a Mixer: a port of a mix whose /stats entry also names the ports it hears. */
class SelectableMembership extends MixMembership<SelectablePort> {
  constructor(
    mixer: SelectableMixer,
    member: SelectablePort,
    private readonly members: ReadonlyMap<string, SelectablePort>,
  ) {
    super(mixer, member);
  }

  override stats(): Record<string, unknown> {
    const sources: string[] = [];
    for (const [id, m] of this.members) if (this.port.sources.includes(m)) sources.push(id);
    return { ...super.stats(), mixSources: sources };
  }
}

export const mixerType: ElementType = {
  type: 'Mixer',
  hierarchy: HUB_HIERARCHY,
  events: HUB_EVENTS,
  create: (ctx) => new Mixer(ctx),
};
