import type { Clock, TimerHandle } from '../../common/clock';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';

/**
 * RFC 3262 §3: a reliable provisional response is retransmitted (T1, doubling; not on reliable
 * transports) until the PRACK whose RAck names it arrives, or for 64*T1 at most.
 */
export class ReliableProvisional {
  private handle: TimerHandle | undefined;
  private readonly deadline: TimerHandle;
  private interval: number;
  acknowledged = false;

  constructor(readonly rseq: number, readonly cseq: number, private readonly data: Buffer, private readonly flow: Flow,
    private readonly clock: Clock, timers: TimerConfig) {
    this.interval = timers.t1;
    this.deadline = clock.setTimeout(() => this.stop(), 64 * timers.t1);
    this.arm();
  }

  /** True when `rack` (`<rseq> <cseq> INVITE`) acknowledges this response; retransmission stops. */
  matches(rack: string | undefined): boolean {
    const m = /^\s*(\d+)\s+(\d+)\s+INVITE\s*$/i.exec(rack ?? '');
    return !!m && Number(m[1]) === this.rseq && Number(m[2]) === this.cseq;
  }

  stop(): void {
    this.handle?.cancel();
    this.deadline.cancel();
  }

  private arm(): void {
    if (this.flow.reliable) return;
    this.handle = this.clock.setTimeout(() => {
      this.flow.send(this.data);
      this.interval *= 2;
      this.arm();
    }, this.interval);
  }
}
