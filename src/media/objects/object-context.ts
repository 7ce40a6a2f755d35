import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { LegEndReason } from '../relay/media-leg';
import type { MediaConfig } from '../server/media-config';
import type { PortAllocator } from '../rtp/port-allocator';

/** What a media object may ask of the registry that holds it (src/media/server/media-set.ts implements it). */
export interface ObjectHost {
  /** Deliver an event to the sessions subscribed to (objectId, type). `data` is the full Kurento event payload. */
  emitEvent(objectId: string, type: string, data: Record<string, unknown>): void;
  /** Find a live object by id (for connect(sink), etc.). */
  lookup(id: string): unknown;
  /** An endpoint's leg ended (docs/lifecycle.md); the registry applies the auto-release policy. */
  legEnded(elementId: string, reason: LegEndReason): void;
}

/** Everything an element factory receives (see element-type.ts). */
export interface ElementContext {
  /** The full object id, `<pipelineId>/<uuid>_kurento.<Type>`. */
  id: string;
  pipelineId: string;
  constructorParams: Record<string, unknown>;
  host: ObjectHost;
  clock: Clock;
  config: MediaConfig;
  ports: PortAllocator;
  logger: Logger;
}
