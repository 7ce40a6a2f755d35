import { fanOut, type PipelineSink } from '../relay/packet-relay';
import type { HubMembership, HubPortOutput } from './hub';

/**
 * A port of a dispatching hub (./dispatcher.ts, ./dispatcher-one-to-many.ts): the packets connected into
 * the port go, unmixed and uncopied for one target, to the ports the hub routes them to (`targets`), each
 * of which forwards them to its own sinks. A port routed nowhere drops its input (counted).
 */
export class DispatchLink implements HubMembership {
  readonly output = 'forwarded';
  readonly readsInputOnly = false;
  /** This port as a sink of another port's packets (each target gets its own buffer but the last: fanOut). */
  readonly asTarget: PipelineSink;
  private targets: PipelineSink[] = [];
  private readonly targetLinks = new Set<DispatchLink>();
  /** The port this one is fed from (Dispatcher), for /stats. */
  source: DispatchLink | undefined;
  packetsIn = 0;
  packetsUnrouted = 0;

  constructor(readonly port: HubPortOutput) {
    this.asTarget = { deliverFromPipeline: (packet, codec) => port.forward(packet, codec) };
  }

  input(packet: Buffer, codec: string): void {
    this.packetsIn++;
    if (this.targets.length === 0) this.packetsUnrouted++;
    else fanOut(packet, codec, this.targets);
  }

  /** The ports this one's input goes to. */
  get targetPorts(): DispatchLink[] {
    return [...this.targetLinks];
  }

  addTarget(t: DispatchLink): void {
    if (this.targetLinks.has(t)) return;
    this.targetLinks.add(t);
    this.targets = [...this.targetLinks].map((l) => l.asTarget);
  }

  removeTarget(t: DispatchLink): boolean {
    if (!this.targetLinks.delete(t)) return false;
    this.targets = [...this.targetLinks].map((l) => l.asTarget);
    return true;
  }

  clearTargets(): DispatchLink[] {
    const was = [...this.targetLinks];
    this.targetLinks.clear();
    this.targets = [];
    return was;
  }

  stats(): Record<string, unknown> {
    return {
      packetsIn: this.packetsIn,
      packetsUnrouted: this.packetsUnrouted,
      dispatchedFrom: this.source?.port.id ?? null,
      dispatchedTo: [...this.targetLinks].map((l) => l.port.id),
    };
  }
}
