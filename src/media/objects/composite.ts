import { KurentoErrors } from '../errors/kurento-error';
import { AudioMixingHub } from './audio-mixing-hub';
import type { ElementType } from './element-type';
import { HUB_EVENTS, HUB_HIERARCHY } from './hub';
import type { ElementContext } from './object-context';

/** Composite's constructor parameters for video, accepted (as integers) and unused: ferry media mixes audio only. */
const VIDEO_PARAMS = ['width', 'height', 'framerate'];

/**
 * Kurento's Composite hub for audio: its HubPorts (./hub-port.ts, created with `createHubPort()` or
 * `create('HubPort', {hub})`) are the parties of one N-1 mix (./audio-mixing-hub.ts): what is
 * connected INTO a port is that party's voice, and what the port sends to the elements it is connected
 * to is the mix of every OTHER port. At most MAX_MIXER_PORTS ports (one more is 40009).
 * A Hub (./hub.ts): no media pads, only MediaObject's operations plus the Hub's.
 */
export class Composite extends AudioMixingHub {
  constructor(ctx: ElementContext) {
    super(ctx, 'Composite');
    for (const key of VIDEO_PARAMS) {
      const v = ctx.constructorParams[key];
      if (v !== undefined && v !== null && !Number.isInteger(v)) throw KurentoErrors.marshall(`'${key}' parameter should be an integer`);
    }
  }
}

export const compositeType: ElementType = {
  type: 'Composite',
  hierarchy: HUB_HIERARCHY,
  events: HUB_EVENTS,
  create: (ctx) => new Composite(ctx),
};
