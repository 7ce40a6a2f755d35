import os from 'node:os';
import type { Clock } from '../../common/clock';
import { MediaObject, type OperationParams } from '../objects/media-object';
import type { ObjectHost } from '../objects/object-context';

export const SERVER_MANAGER_ID = 'manager_ServerManager';
export const SERVER_MANAGER_EVENTS: readonly string[] = ['Error', 'ObjectCreated', 'ObjectDestroyed'];
export const VERSION = '7.3.0';

/** What the ServerManager reports; the media set supplies it. */
export interface ServerManagerSource {
  pipelineIds(): string[];
  sessionIds(): string[];
  factories(): { core: string[]; elements: string[]; filters: string[] };
}

/** Kurento's ServerManager (`manager_ServerManager`): getInfo (modules core/elements/filters), pipelines, sessions. */
export class ServerManager extends MediaObject {
  private lastCpu = process.cpuUsage();
  private lastCpuAt = Date.now();

  constructor(
    host: ObjectHost,
    clock: Clock,
    private readonly source: ServerManagerSource,
  ) {
    super(SERVER_MANAGER_ID, 'ServerManager', host, clock, undefined);
  }

  objectCreated(id: string): void {
    this.emitEvent('ObjectCreated', { object: id });
  }

  objectDestroyed(id: string): void {
    this.emitEvent('ObjectDestroyed', { objectId: id });
  }

  info(): Record<string, unknown> {
    const f = this.source.factories();
    const module = (name: string, factories: string[]) => ({
      __module__: 'kurento',
      __type__: 'ModuleInfo',
      name,
      version: VERSION,
      generationTime: 'ferry',
      factories,
    });
    return {
      __module__: 'kurento',
      __type__: 'ServerInfo',
      version: VERSION,
      type: 'KMS',
      capabilities: ['transactions'],
      modules: [module('core', f.core), module('elements', f.elements), module('filters', f.filters)],
    };
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getInfo':
        return this.info();
      case 'getPipelines':
        return this.source.pipelineIds();
      case 'getSessions':
        return this.source.sessionIds();
      case 'getMetadata':
        return '';
      case 'getKmd':
        return '';
      case 'getCpuCount':
        return os.cpus().length;
      case 'getUsedCpu': {
        const now = Date.now();
        const used = process.cpuUsage(this.lastCpu);
        const elapsed = Math.max(1, now - this.lastCpuAt);
        this.lastCpu = process.cpuUsage();
        this.lastCpuAt = now;
        return ((used.user + used.system) / 1000 / elapsed) * 100;
      }
      case 'getUsedMemory':
        return Math.round(process.memoryUsage().rss / 1024);
      default:
        return super.invoke(operation, params);
    }
  }

  override async teardown(): Promise<void> {
    this.released = true;
  }
}
