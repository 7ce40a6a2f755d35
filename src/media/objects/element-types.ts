import { compositeType } from './composite';
import { ElementTypeRegistry, type ElementType } from './element-type';
import { hubPortType } from './hub-port';
import { passThroughType } from './pass-through';
import { playerEndpointType } from './player-endpoint';
import { recorderEndpointType } from './recorder-endpoint';
import { rtpEndpointType } from './rtp-endpoint';

/**
 * The factory table: every element type ferry media can create. Optional element modules
 * are loaded when their file exists (today: ./webrtc-endpoint.ts exporting
 * `elementType`), so adding one needs no edit here. A load error other than "file missing" is thrown:
 * a broken module must not silently vanish from the server.
 */
const OPTIONAL_ELEMENT_MODULES = ['./webrtc-endpoint'];

export function defaultElementTypes(): ElementTypeRegistry {
  const registry = new ElementTypeRegistry();
  registry.register(rtpEndpointType);
  registry.register(passThroughType);
  registry.register(playerEndpointType);
  registry.register(recorderEndpointType);
  registry.register(compositeType);
  registry.register(hubPortType);
  for (const path of OPTIONAL_ELEMENT_MODULES) {
    const t = loadOptional(path);
    if (t) registry.register(t);
  }
  return registry;
}

function loadOptional(path: string): ElementType | undefined {
  let mod: { elementType?: ElementType };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(path) as { elementType?: ElementType };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Only "this very file is missing" is optional; a missing import *inside* it is a real error.
    const firstLine = String(e.message).split('\n', 1)[0] ?? '';
    if (e.code === 'MODULE_NOT_FOUND' && firstLine.includes(`'${path}'`)) return undefined;
    throw err;
  }
  if (!mod.elementType) throw new Error(`${path} does not export 'elementType'`);
  return mod.elementType;
}
