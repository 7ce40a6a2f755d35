import { sourceKeyer, type SourceKeyer } from '../../common/source-key';

/** FERRY_RING_MAX_FORKS_PER_SOURCE default: registrations ringing at once beyond each call's first, for calls from one source */
export const DEFAULT_RING_MAX_FORKS_PER_SOURCE = 64;
/** FERRY_RING_MAX_FORKS default: the same for every call of this gateway */
export const DEFAULT_RING_MAX_FORKS = 1000;

export interface ForkLimits {
  perSource: number;
  total: number;
}

/** what a call was granted: how many registrations beyond the first it may ring, and how to give them back */
export interface ForkGrant {
  extra: number;
  /** which limit cut the grant below what was asked, if one did */
  cutBy?: 'per-source' | 'total';
  release(): void;
}

/**
 * Bounds what ringing a user's registrations at once multiplies (docs/security.md, "Ringing all
 * registrations"): every registration rung beyond a call's first has its own endpoint (2 UDP ports or
 * more, DTLS for a webphone) and its own INVITE for as long as the call rings (up to FERRY_NO_ANSWER_MS).
 * A call is granted at most what is left of its caller source's budget and of the gateway's; a call
 * granted fewer rings that many of the newest registrations at once (none: one at a time, as
 * FERRY_RING=newest). So one source holds at most `perSource` such endpoints however many calls it makes,
 * on top of the two every call has.
 */
export class ForkBudget {
  private readonly bySource = new Map<string, number>();
  private inUse = 0;
  private readonly key: SourceKeyer;

  constructor(private readonly limits: ForkLimits, ipv6Prefix?: number) {
    this.key = sourceKeyer(ipv6Prefix);
  }

  /** forks held now: by the source of `address`, and in all */
  held(address?: string): number {
    return address === undefined ? this.inUse : (this.bySource.get(this.key(address)) ?? 0);
  }

  /** grants up to `wanted` registrations beyond the first to a call from `address` */
  take(address: string, wanted: number): ForkGrant {
    const key = this.key(address);
    const mine = this.bySource.get(key) ?? 0;
    const leftSource = Math.max(0, this.limits.perSource - mine);
    const leftTotal = Math.max(0, this.limits.total - this.inUse);
    const extra = Math.max(0, Math.min(wanted, leftSource, leftTotal));
    const cutBy = extra >= wanted ? undefined : leftSource <= leftTotal ? 'per-source' as const : 'total' as const;
    if (extra > 0) {
      this.bySource.set(key, mine + extra);
      this.inUse += extra;
    }
    let released = extra === 0;
    return {
      extra,
      ...(cutBy ? { cutBy } : {}),
      release: () => {
        if (released) return;
        released = true;
        this.inUse -= extra;
        const left = (this.bySource.get(key) ?? extra) - extra;
        if (left > 0) this.bySource.set(key, left);
        else this.bySource.delete(key);
      },
    };
  }
}
