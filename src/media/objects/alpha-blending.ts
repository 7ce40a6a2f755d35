import { KurentoErrors } from '../errors/kurento-error';
import { AudioMixingHub } from './audio-mixing-hub';
import type { ElementType } from './element-type';
import { HUB_EVENTS, HUB_HIERARCHY } from './hub';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/**
 * Kurento's AlphaBlending (kms-elements): a hub that blends its ports' VIDEO onto a master image and
 * mixes their AUDIO. KMS mixes the audio with the same N-1 mixer as a Composite (kmsaudiomixer: each
 * port hears every other port, not itself), and so does ferry media (./audio-mixing-hub.ts). Video is
 * not carried: `setMaster(source, zOrder)` and `setPortProperties(relativeX, relativeY, zOrder,
 * relativeWidth, relativeHeight, port)` check their parameters (the port must be one of this hub's),
 * are remembered for /stats and change nothing in the audio.
 */
export class AlphaBlending extends AudioMixingHub {
  private master: { port: string; zOrder: number } | undefined;
  private portProperties = 0;

  constructor(ctx: ElementContext) {
    super(ctx, 'AlphaBlending');
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'setMaster': {
        const port = this.requirePort(params, 'source');
        this.master = { port, zOrder: requireInteger(params, 'zOrder') };
        return null;
      }
      case 'setPortProperties': {
        for (const key of ['relativeX', 'relativeY']) requireNumber(params, key);
        requireInteger(params, 'zOrder');
        for (const key of ['relativeWidth', 'relativeHeight']) requireNumber(params, key);
        this.requirePort(params, 'port');
        this.portProperties++;
        return null;
      }
      default:
        return super.invoke(operation, params);
    }
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), master: this.master?.port ?? null, portPropertiesSet: this.portProperties };
  }
}

function requireInteger(params: OperationParams, key: string): number {
  const v = params[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw KurentoErrors.marshall(`'${key}' parameter should be an integer`);
  return v;
}

function requireNumber(params: OperationParams, key: string): number {
  const v = params[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw KurentoErrors.marshall(`'${key}' parameter should be a float`);
  return v;
}

export const alphaBlendingType: ElementType = {
  type: 'AlphaBlending',
  hierarchy: HUB_HIERARCHY,
  events: HUB_EVENTS,
  create: (ctx) => new AlphaBlending(ctx),
};
