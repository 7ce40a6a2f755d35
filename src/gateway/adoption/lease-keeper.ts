import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { StateStore } from '../state/state-store';

/**
 * Keeps this gateway instance's lease alive in the state store (renewed every third of the lease
 * time). Calls whose owner's lease expired may be adopted by any other gateway.
 */
export class LeaseKeeper {
  private timer: TimerHandle | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly instanceId: string,
    private readonly leaseMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.store.renewLease(this.instanceId, this.leaseMs);
    this.timer = this.clock.setInterval(() => {
      this.store.renewLease(this.instanceId, this.leaseMs).catch((err: Error) => this.log.warn('lease renewal failed', { err: err.message }));
    }, Math.max(100, Math.floor(this.leaseMs / 3)));
  }

  async stop(opts: { release: boolean }): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    if (opts.release) await this.store.dropLease(this.instanceId).catch(() => {});
  }
}
