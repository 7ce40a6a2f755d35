import type { Clock } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import type { ObjectHost } from './object-context';

export type OperationParams = Record<string, unknown>;

/**
 * Kurento's MediaObject: an id, tags, a name, events. Operations arrive by name through `invoke()`;
 * subclasses override `invoke()` for their own operations and call `super.invoke()` for the rest.
 * Objects never see JSON-RPC: they throw KurentoError and return plain values (ids for remote objects).
 */
export abstract class MediaObject {
  readonly creationTime: number;
  private name: string;
  private readonly tags = new Map<string, string>();
  private sendTagsInEvents = false;
  protected released = false;
  private eventsMuted = false;

  constructor(
    readonly id: string,
    readonly type: string,
    protected readonly host: ObjectHost,
    protected readonly clock: Clock,
    readonly parentId: string | undefined,
  ) {
    this.creationTime = Math.floor(clock.now() / 1000);
    this.name = id;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /**
   * Stop emitting events: the registry calls this on every object of a pipeline before tearing it
   * down, so a release does not send ElementDisconnected & co. for objects the client already dropped.
   */
  muteEvents(): void {
    this.eventsMuted = true;
  }

  /** Ids of this object's children (a pipeline's elements). */
  childIds(): string[] {
    return [];
  }

  /** Emit a Kurento event with the common fields (source, tags, timestampMillis, type) filled in. */
  protected emitEvent(type: string, fields: Record<string, unknown> = {}, at = this.clock.now()): void {
    if (this.released || this.eventsMuted) return;
    this.host.emitEvent(this.id, type, this.eventData(type, fields, at));
  }

  /** The `tags` field this object's events carry now (empty unless setSendTagsInEvents(true)). */
  eventTags(): { key: string; value: string }[] {
    return this.sendTagsInEvents ? [...this.tags].map(([key, value]) => ({ key, value })) : [];
  }

  /** Build an event payload with the common fields (source, tags, timestampMillis, type). */
  protected eventData(type: string, fields: Record<string, unknown>, at = this.clock.now()): Record<string, unknown> {
    return {
      source: this.id,
      tags: this.eventTags(),
      timestampMillis: String(at),
      type,
      ...fields,
    };
  }

  /**
   * Events a new subscriber of `type` should get at once because they describe a final state it would
   * otherwise never see (ferry extension; KMS replays nothing). Default: none.
   */
  replayOnSubscribe(_type: string): Record<string, unknown> | undefined {
    return undefined;
  }

  /**
   * Kurento's `Error` event: `type` is the error kind (e.g.
   * 'STREAM_ERROR_FAILED'), plus `description` and `errorCode`. Not a media-flow event, so it is emitted
   * with the common fields but `type` overridden by the error kind, as KMS does.
   */
  protected emitError(errorType: string, description: string, errorCode: number): void {
    if (this.released || this.eventsMuted) return;
    this.host.emitEvent(this.id, 'Error', this.eventData(errorType, { description, errorCode }));
  }

  async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getId':
        return this.id;
      case 'getName':
        return this.name;
      case 'setName':
        this.name = requireString(params, 'name');
        return null;
      case 'getCreationTime':
        return this.creationTime;
      case 'getMediaPipeline':
        return this.parentId ?? this.id;
      case 'getParent':
        return this.parentId ?? null;
      case 'getChildren':
        return this.childIds();
      case 'getSendTagsInEvents':
        return this.sendTagsInEvents;
      case 'setSendTagsInEvents':
        this.sendTagsInEvents = requireBoolean(params, 'sendTagsInEvents');
        return null;
      case 'addTag':
        this.tags.set(requireString(params, 'key'), requireString(params, 'value'));
        return null;
      case 'removeTag':
        this.tags.delete(requireString(params, 'key'));
        return null;
      case 'getTag': {
        const key = requireString(params, 'key');
        const v = this.tags.get(key);
        if (v === undefined) throw KurentoErrors.tagKeyNotFound(key);
        return v;
      }
      case 'getTags':
        return [...this.tags].map(([key, value]) => ({ __module__: 'kurento', __type__: 'Tag', key, value }));
      default:
        throw KurentoErrors.malformedTransaction(
          `Method '${operation}' with ${Object.keys(params).length} parameters not found`,
        );
    }
  }

  /** Free everything this object holds. Idempotent. Called by the registry only (release is global, media-set.ts). */
  abstract teardown(options: { notifyPeer: boolean }): Promise<void>;
}

export function requireString(params: OperationParams, key: string): string {
  const v = params[key];
  if (typeof v !== 'string') throw KurentoErrors.marshall(`'${key}' parameter should be a string`);
  return v;
}

export function requireBoolean(params: OperationParams, key: string): boolean {
  const v = params[key];
  if (typeof v !== 'boolean') throw KurentoErrors.marshall(`'${key}' parameter should be a boolean`);
  return v;
}

export function optionalString(params: OperationParams, key: string): string | undefined {
  const v = params[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw KurentoErrors.marshall(`'${key}' parameter should be a string`);
  return v;
}
