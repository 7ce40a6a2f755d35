import type { ElementType } from './element-type';
import { DispatchLink } from './dispatch-link';
import { Hub, HUB_EVENTS, HUB_HIERARCHY, type HubMembership, type HubPortOutput } from './hub';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/**
 * Kurento's Dispatcher (kms-elements): a hub routing between arbitrary pairs of its HubPorts, without
 * mixing. `connect(source, sink)` makes what is connected INTO port `source` come OUT of port `sink` (to
 * the elements `sink` is connected to). A port is fed from one port at a time — connecting it again
 * moves it to the new source — and may feed any number of ports, itself included (an echo). The other
 * direction is a connect of its own. There is no disconnect (as in the IDL): a port stops when its source
 * port is released, or is moved to another source. A port no one is fed from drops its input.
 * Packets are forwarded as they are; see ./hub-port.ts for the per-sink G.711 law conversion.
 */
export class Dispatcher extends Hub {
  private readonly links = new Map<string, DispatchLink>();

  constructor(ctx: ElementContext) {
    super(ctx, 'Dispatcher');
  }

  protected override admit(port: HubPortOutput): HubMembership {
    const link = new DispatchLink(port);
    this.links.set(port.id, link);
    return link;
  }

  protected override dismiss(portId: string): void {
    const link = this.links.get(portId);
    if (link === undefined) return;
    this.links.delete(portId);
    link.source?.removeTarget(link);
    link.source = undefined;
    // the ports it fed are fed from nothing now (KMS removes the port's agnosticbin: their output stops)
    for (const fed of link.clearTargets()) {
      fed.source = undefined;
      if (fed !== link) fed.port.outputStopped();
    }
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    if (operation !== 'connect') return super.invoke(operation, params);
    const source = this.links.get(this.requirePort(params, 'source'))!;
    const sink = this.links.get(this.requirePort(params, 'sink'))!;
    if (sink.source === source) return null;
    sink.source?.removeTarget(sink);
    source.addTarget(sink);
    sink.source = source;
    this.ctx.logger.info('dispatcher connected ports', { hub: this.id, source: source.port.id, sink: sink.port.id });
    return null;
  }

  override describeForStats(): Record<string, unknown> {
    const routes: Record<string, string> = {};
    for (const [id, link] of this.links) if (link.source) routes[id] = link.source.port.id;
    return { ...super.describeForStats(), routes };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    for (const link of this.links.values()) {
      link.clearTargets();
      link.source = undefined;
    }
    this.links.clear();
    await super.teardown(options);
  }
}

export const dispatcherType: ElementType = {
  type: 'Dispatcher',
  hierarchy: HUB_HIERARCHY,
  events: HUB_EVENTS,
  create: (ctx) => new Dispatcher(ctx),
};
