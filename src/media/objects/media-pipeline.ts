import type { Clock } from '../../common/clock';
import { MediaObject, type OperationParams } from './media-object';
import type { ObjectHost } from './object-context';

export const PIPELINE_EVENTS: readonly string[] = ['Error'];
export const PIPELINE_HIERARCHY: readonly string[] = ['kurento.MediaObject'];

/** Kurento's MediaPipeline: the parent of a call's elements. It holds ids only; the registry owns the objects. */
export class MediaPipeline extends MediaObject {
  private readonly children = new Set<string>();

  constructor(id: string, host: ObjectHost, clock: Clock) {
    super(id, 'MediaPipeline', host, clock, undefined);
  }

  addChild(id: string): void {
    this.children.add(id);
  }

  removeChild(id: string): void {
    this.children.delete(id);
  }

  override childIds(): string[] {
    return [...this.children];
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getLatencyStats':
        return false;
      case 'setLatencyStats':
        return null;
      case 'getGstreamerDot':
        return `digraph "${this.id}" {}`;
      default:
        return super.invoke(operation, params);
    }
  }

  override async teardown(): Promise<void> {
    this.released = true;
  }
}
