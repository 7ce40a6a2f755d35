import type { ElementType } from './element-type';
import { DispatchLink } from './dispatch-link';
import { Hub, HUB_EVENTS, HUB_HIERARCHY, type HubMembership, type HubPortOutput } from './hub';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/**
 * Kurento's DispatcherOneToMany (kms-elements): a hub broadcasting one of its HubPorts, the source, to
 * all of them. `setSource(port)` makes what is connected INTO that port come OUT of every port of the hub
 * — as in KMS the source port itself included (an app that must not echo leaves the source port's output
 * unconnected) — and a port created later gets it from its creation on. `setSource` of another port
 * switches every port to it; `removeSource()`, or the release of the source port, leaves the hub without a
 * source: nothing comes out of any port until the next `setSource`. What is connected into any other port
 * is dropped. Packets are forwarded as they are (./hub-port.ts: per-sink G.711 law conversion).
 */
export class DispatcherOneToMany extends Hub {
  private readonly links = new Map<string, DispatchLink>();
  private main: DispatchLink | undefined;

  constructor(ctx: ElementContext) {
    super(ctx, 'DispatcherOneToMany');
  }

  protected override admit(port: HubPortOutput): HubMembership {
    const link = new DispatchLink(port);
    this.links.set(port.id, link);
    if (this.main) this.feed(link, this.main);
    return link;
  }

  protected override dismiss(portId: string): void {
    const link = this.links.get(portId);
    if (link === undefined) return;
    this.links.delete(portId);
    if (link === this.main) this.setMain(undefined);
    else this.main?.removeTarget(link);
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'setSource':
        this.setMain(this.links.get(this.requirePort(params, 'source'))!);
        return null;
      case 'removeSource':
        this.setMain(undefined);
        return null;
      default:
        return super.invoke(operation, params);
    }
  }

  private setMain(main: DispatchLink | undefined): void {
    if (main === this.main) return;
    const old = this.main;
    if (old) for (const fed of old.clearTargets()) fed.source = undefined;
    this.main = main;
    for (const link of this.links.values()) {
      if (main) this.feed(link, main);
      else link.port.outputStopped();
    }
    this.ctx.logger.info('dispatcher source set', { hub: this.id, source: main?.port.id ?? null, was: old?.port.id ?? null });
  }

  private feed(link: DispatchLink, main: DispatchLink): void {
    main.addTarget(link);
    link.source = main;
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), source: this.main?.port.id ?? null };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.main?.clearTargets();
    this.main = undefined;
    this.links.clear();
    await super.teardown(options);
  }
}

export const dispatcherOneToManyType: ElementType = {
  type: 'DispatcherOneToMany',
  hierarchy: HUB_HIERARCHY,
  events: HUB_EVENTS,
  create: (ctx) => new DispatcherOneToMany(ctx),
};
