import { Hub } from './hub';
import type { ElementContext } from './object-context';

/** What a mixing hub needs of its mixer (the N-1 AudioMixer, the SelectableMixer). */
export interface HubMixer<P> {
  readonly framesMixed: number;
  readonly scheduleRestarts: number;
  removePort(port: P): void;
  close(): void;
}

/**
 * The part the audio mixing hubs share (./audio-mixing-hub.ts for Composite and AlphaBlending, ./mixer.ts
 * for the Mixer): each HubPort is a port of the hub's mixer (`members`, by HubPort id), a HubPort that goes
 * leaves the mix, /stats counts the frames mixed and the schedule's restarts, and the teardown stops the mix.
 * Subclasses admit ports, each its own way.
 */
export abstract class MixingHubBase<P, M extends HubMixer<P>> extends Hub {
  protected readonly members = new Map<string, P>();

  constructor(
    ctx: ElementContext,
    type: string,
    readonly mixer: M,
  ) {
    super(ctx, type);
  }

  protected override dismiss(portId: string): void {
    const member = this.members.get(portId);
    if (member === undefined) return;
    this.members.delete(portId);
    this.mixer.removePort(member);
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), framesMixed: this.mixer.framesMixed, scheduleRestarts: this.mixer.scheduleRestarts };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.mixer.close();
    this.members.clear();
    await super.teardown(options);
  }
}
