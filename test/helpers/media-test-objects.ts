import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import type { ElementContext } from '../../src/media/objects/object-context';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { loadMediaConfig } from '../../src/media/server/media-config';

let nextId = 0;

/**
 * Media elements made directly in a unit test, without a pipeline or a server: each gets an ElementContext
 * on one fake clock, a unique id in pipeline `pipe`, the events it emits recorded (`events`), and the
 * objects `add()`ed looked up by id (a HubPort finds its hub so).
 */
export class MediaTestObjects {
  readonly byId = new Map<string, unknown>();
  readonly clock = new FakeClock();
  readonly events: { id: string; type: string; data: Record<string, unknown> }[] = [];

  constructor(private readonly loggerName: string) {}

  context(type: string, params: Record<string, unknown>): ElementContext {
    const id = `pipe/${nextId++}_kurento.${type}`;
    return {
      id,
      pipelineId: 'pipe',
      constructorParams: params,
      host: { emitEvent: (oid, t, data) => this.events.push({ id: oid, type: t, data }), lookup: (x) => this.byId.get(x), legEnded: () => undefined },
      clock: this.clock,
      config: loadMediaConfig({ port: 0 }, {}),
      ports: new PortAllocator('127.0.0.1', 0, 0),
      logger: createLogger(this.loggerName),
    };
  }

  add<T extends { id: string }>(o: T): T {
    this.byId.set(o.id, o);
    return o;
  }
}
