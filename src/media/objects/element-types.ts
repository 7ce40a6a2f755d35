import { alphaBlendingType } from './alpha-blending';
import { compositeType } from './composite';
import { dispatcherType } from './dispatcher';
import { dispatcherOneToManyType } from './dispatcher-one-to-many';
import { ElementTypeRegistry } from './element-type';
import { httpPostEndpointType } from './http-post-endpoint';
import { hubPortType } from './hub-port';
import { mixerType } from './mixer';
import { passThroughType } from './pass-through';
import { playerEndpointType } from './player-endpoint';
import { recorderEndpointType } from './recorder-endpoint';
import { rtpEndpointType } from './rtp-endpoint';
import { elementType as webRtcEndpointType } from './webrtc-endpoint';

/**
 * The factory table: every element type ferry media can create, each imported statically, so a
 * renamed or broken element module fails the type check and the build instead of vanishing from the
 * server at run time. Adding an element type: import its `ElementType` here and register it.
 */
export function defaultElementTypes(): ElementTypeRegistry {
  const registry = new ElementTypeRegistry();
  registry.register(rtpEndpointType);
  registry.register(webRtcEndpointType);
  registry.register(passThroughType);
  registry.register(playerEndpointType);
  registry.register(recorderEndpointType);
  registry.register(compositeType);
  registry.register(hubPortType);
  registry.register(dispatcherType);
  registry.register(dispatcherOneToManyType);
  registry.register(mixerType);
  registry.register(alphaBlendingType);
  registry.register(httpPostEndpointType);
  return registry;
}
