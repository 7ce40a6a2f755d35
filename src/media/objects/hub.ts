import { KurentoErrors } from '../errors/kurento-error';
import { MediaElement } from './media-element';
import { MediaObject, type OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/** `describe` hierarchy of every hub: a Hub, which is a MediaObject (not a MediaElement) in the 7.x IDL. */
export const HUB_HIERARCHY: readonly string[] = ['kurento.Hub', 'kurento.MediaObject'];

/** The events a Hub accepts (the 7.x IDL: MediaObject's); no hub adds any. */
export const HUB_EVENTS: readonly string[] = ['Error'];

/** What a HubPort (./hub-port.ts) gives its hub: where the hub sends what the port plays out. */
export interface HubPortOutput {
  readonly id: string;
  /** A mixing hub's frame for this port, 20 ms of linear audio (valid only during the call). */
  mixed(frame: Int16Array): void;
  /** A dispatching hub's packet for this port (an RTP packet of `codec` the port may rewrite and keep). */
  forward(packet: Buffer, codec: string): void;
  /** The hub stopped sending to this port (its source went away): media no longer flows out of it. */
  outputStopped(): void;
}

/** A port's place in its hub: what the port hands the hub, and what it shows of it in /stats. */
export interface HubMembership {
  /** What the hub gives the port: mixed frames (`mixed`) or forwarded packets (`forward`). */
  readonly output: 'mixed' | 'forwarded';
  /** True when the hub only reads what `input` is given during the call (mixers): the port takes packets uncopied. */
  readonly readsInputOnly: boolean;
  /** A packet from the element connected into the port (`codec` as the relay named it). */
  input(packet: Buffer, codec: string): void;
  /** Fields of the port's /stats entry. */
  stats(): Record<string, unknown>;
}

/**
 * Kurento's Hub, the base of ferry media's hubs (Composite, AlphaBlending, Mixer, Dispatcher,
 * DispatcherOneToMany): it keeps the hub's HubPorts (its children: getChildren, released with it) and
 * lets each subclass decide what a port's input becomes and what each port plays out.
 *
 * Internally an element of its pipeline (so it is created, counted, described and released like one),
 * but as in Kurento it has no media pads: only MediaObject's operations, the Hub's and the subclass's own;
 * `connect` with a sink and the other MediaElement operations are "method not found", media sent into it
 * is dropped.
 */
export abstract class Hub extends MediaElement {
  private readonly portIds = new Set<string>();

  constructor(ctx: ElementContext, type: string) {
    super(ctx, type);
  }

  /** A HubPort joins (from its constructor). Throws 40101 when the hub is gone, 40009 when it is full. */
  join(port: HubPortOutput): HubMembership {
    if (this.released) throw KurentoErrors.objectNotFound(this.id);
    const membership = this.admit(port);
    this.portIds.add(port.id);
    this.ctx.logger.info('hub port attached', { hub: this.id, port: port.id, ports: this.portIds.size });
    return membership;
  }

  /** A HubPort leaves (its release). Idempotent, and nothing to do once the hub itself is gone. */
  leave(portId: string): void {
    if (!this.portIds.delete(portId)) return;
    this.dismiss(portId);
    this.ctx.logger.info('hub port detached', { hub: this.id, port: portId, ports: this.portIds.size });
  }

  get portCount(): number {
    return this.portIds.size;
  }

  /** Make room for a new port (throw to refuse it). */
  protected abstract admit(port: HubPortOutput): HubMembership;

  /** Forget a port that left. */
  protected abstract dismiss(portId: string): void;

  /**
   * The HubPort named by operation parameter `key`: 40001 when it is not a string or names another kind
   * of object, 40101 when there is no such object, 40004 CONNECT_ERROR (KMS's "Can not connect ports")
   * when it is a port of another hub.
   */
  protected requirePort(params: OperationParams, key: string): string {
    const id = params[key];
    if (typeof id !== 'string') throw KurentoErrors.marshall(`'${key}' parameter should be a string`);
    const o = this.host.lookup(id);
    if (!(o instanceof MediaObject) || o.isReleased) throw KurentoErrors.objectNotFound(id);
    if (o.type !== 'HubPort') throw KurentoErrors.marshall(`'${key}' parameter should be a HubPort (got a ${o.type})`);
    if (!this.portIds.has(id)) throw KurentoErrors.connect(`Can not connect ports: '${key}' is a HubPort of another hub`);
    return id;
  }

  /** A hub has no pads of its own: nothing connected into it is heard. */
  override deliverFromPipeline(): void {}

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getGstreamerDot':
        return `digraph "${this.id}" {}`;
      case 'dumpGstreamerDot':
        return null;
      default:
        // only MediaObject's operations: a Hub is not a MediaElement (no connect, no flow states)
        return MediaObject.prototype.invoke.call(this, operation, params);
    }
  }

  /** A hub's children are its ports (getChildren; they are released with it). */
  override childIds(): string[] {
    return [...this.portIds];
  }

  override describeForStats(): Record<string, unknown> {
    return { id: this.id, type: this.type, ports: [...this.portIds] };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.portIds.clear();
    await super.teardown(options);
  }
}
