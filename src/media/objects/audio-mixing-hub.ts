import { KurentoErrors } from '../errors/kurento-error';
import { AudioMixer, type MixerPort } from '../mixing/audio-mixer';
import type { HubMembership, HubPortOutput } from './hub';
import { MixMembership } from './mix-membership';
import { MixingHubBase } from './mixing-hub-base';
import type { ElementContext } from './object-context';

/**
 * A hub whose ports are the parties of one N-1 audio mix (../mixing/audio-mixer.ts): what is connected
 * INTO a port is that party's voice, and what the port sends out is the mix of every OTHER port. Kurento's
 * Composite and AlphaBlending mix audio this way (their kmsaudiomixer). At most the mixer's port cap
 * (MAX_MIXER_PORTS; one more is 40009).
 */
export abstract class AudioMixingHub extends MixingHubBase<MixerPort, AudioMixer> {
  constructor(ctx: ElementContext, type: string) {
    super(ctx, type, new AudioMixer(ctx.clock));
  }

  protected override admit(port: HubPortOutput): HubMembership {
    if (this.mixer.portCount >= this.mixer.maxPorts) {
      throw KurentoErrors.notEnoughResources(`a ${this.type} mixes at most ${this.mixer.maxPorts} HubPorts`);
    }
    const mixerPort = this.mixer.addPort(port);
    this.members.set(port.id, mixerPort);
    return new MixMembership(this.mixer, mixerPort);
  }
}
