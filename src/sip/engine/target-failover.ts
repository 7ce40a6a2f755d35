import type { Flow } from '../transport/flow';
import type { NextHops } from './next-hop-resolver';

/** A new request is tried on further targets only within this many T1 of its first sending (3 × Timer B: 96 s by default). */
export const FAILOVER_WINDOW_T1 = 192;

/**
 * RFC 3263 §4.3 for one new request: after a transport error, a connection refused or not up in time, a
 * transaction timeout or a 503, the request goes to the next target of its next hop as a new client
 * transaction, while targets are left (at most MAX_TARGETS in all) and within the window.
 */
export class TargetFailover {
  /** targets tried so far */
  tried = 1;

  constructor(private readonly hops: NextHops, private readonly startedAt: number, private readonly windowMs: number) {}

  /** Whether there are further targets at all (a single target needs no failover). */
  static worthKeeping(hops: NextHops): boolean {
    return hops.left > 0;
  }

  /** The next target's flow, or undefined when none is left or the window is over. */
  next(now: number): Flow | undefined {
    if (now - this.startedAt >= this.windowMs) return undefined;
    const flow = this.hops.next();
    if (flow) this.tried++;
    return flow;
  }
}
