import type { Clock, TimerHandle } from '../../common/clock';
import { sourceKeyer, type SourceKeyer } from '../../common/source-key';
import type { SipRequest } from '../message/sip-message';
import type { Flow } from '../transport/flow';
import type { HeldRequest } from './orphan-dialogs';

/**
 * Bounds of the hold for new (out-of-dialog) requests no app routes yet (docs/sip-engine.md,
 * "New requests while no app routes them"). A flood costs at most `maxRequests` requests and
 * `maxBytes` bytes for `holdMs`; one source (an IPv4 address, an IPv6 /64: src/common/source-key.ts)
 * holds at most `maxPerSource` of them.
 */
export interface UnroutedHoldLimits {
  /** how long a held request waits for an app before it is answered 503 (FERRY_SIP_UNROUTED_HOLD_MS; 0 = no hold) */
  holdMs: number;
  /** requests held at once, from all sources */
  maxRequests: number;
  /** bytes (request line, headers and body) held at once, from all sources */
  maxBytes: number;
  /** requests held at once from one source (an IPv4 address, an IPv6 prefix) */
  maxPerSource: number;
  /** IPv6 sources are counted by this many leading bits, 48..128 (absent: FERRY_SOURCE_IPV6_PREFIX, default 64) */
  sourceIpv6Prefix?: number;
}

export const DEFAULT_UNROUTED_HOLD: UnroutedHoldLimits = { holdMs: 5000, maxRequests: 256, maxBytes: 1024 * 1024, maxPerSource: 64 };

/** `Retry-After` (seconds) on every 503 ferry sip gives because no app routes a request. */
export const UNROUTED_RETRY_AFTER_S = 5;

/** Why `hold` refused a request: it is answered 503 at once. */
export type HoldRefusal = 'off' | 'method' | 'requests' | 'bytes' | 'source';

/**
 * An out-of-dialog OPTIONS asks "are you there now?" (a trunk's keep-alive, a monitor, a scanner): the
 * honest answer while no app serves is 503 with Retry-After at once, not the same answer seconds later.
 */
export function holdsMethod(method: string): boolean {
  return method !== 'OPTIONS';
}

interface Entry extends HeldRequest {
  bytes: number;
  source: string;
  timer: TimerHandle;
}

/** Size of a request as held: request line, header names and values, body (what a flood makes the engine keep). */
export function heldBytes(req: SipRequest): number {
  let n = req.method.length + req.uri.length + 12 + req.body.length;
  for (const h of req.headers.list()) n += h.name.length + h.value.length + 4;
  return n;
}

/**
 * New requests that arrived while no connected app routes their method, each waiting (its server
 * transaction open, so retransmissions are absorbed) until an app routes the method — `take` hands
 * them over — or until its own deadline: then `onExpire` answers it (503 with Retry-After).
 * Bounded in count, bytes and per source; a request beyond a bound is refused at once.
 */
export class UnroutedRequestHold {
  private readonly entries = new Set<Entry>();
  private readonly bySource = new Map<string, number>();
  private bytesHeld = 0;
  private readonly sourceKey: SourceKeyer;

  constructor(
    private readonly clock: Clock,
    readonly limits: UnroutedHoldLimits,
    private readonly onExpire: (held: HeldRequest) => void,
  ) {
    this.sourceKey = sourceKeyer(limits.sourceIpv6Prefix);
  }

  /** Keeps `held` until an app routes its method or `holdMs` pass; otherwise says why not. */
  hold(held: HeldRequest): HoldRefusal | undefined {
    if (this.limits.holdMs <= 0) return 'off';
    if (!holdsMethod(held.request.method)) return 'method';
    this.dropSettled();
    const bytes = heldBytes(held.request);
    const source = this.sourceKey(held.flow.remoteAddress);
    if (this.entries.size >= this.limits.maxRequests) return 'requests';
    if (this.bytesHeld + bytes > this.limits.maxBytes) return 'bytes';
    if ((this.bySource.get(source) ?? 0) >= this.limits.maxPerSource) return 'source';
    const entry: Entry = {
      ...held, bytes, source,
      timer: this.clock.setTimeout(() => {
        if (!this.remove(entry)) return;
        this.onExpire(entry);
      }, this.limits.holdMs),
    };
    this.entries.add(entry);
    this.bytesHeld += bytes;
    this.bySource.set(source, (this.bySource.get(source) ?? 0) + 1);
    return undefined;
  }

  /** The held requests of `method` (upper case) still unanswered, oldest first, removed from the hold. */
  take(method: string): HeldRequest[] {
    const taken: HeldRequest[] = [];
    for (const e of [...this.entries]) {
      if (e.request.method !== method) continue;
      this.remove(e);
      if (!e.txn.finalSent && !e.txn.terminated && !e.flow.closed) taken.push(e);
    }
    return taken;
  }

  /** A connection closed: what it brought can no longer be answered; those transactions end. */
  forgetFlow(flow: Flow): void {
    for (const e of [...this.entries]) {
      if (e.flow !== flow) continue;
      this.remove(e);
      e.txn.abort();
    }
  }

  /** Answers everything still held (engine stopping). */
  expireAll(): void {
    for (const e of [...this.entries]) {
      this.remove(e);
      this.onExpire(e);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Entries answered meanwhile (an INVITE CANCELled while held) leave at once rather than at their deadline. */
  private dropSettled(): void {
    for (const e of [...this.entries]) if (e.txn.finalSent || e.txn.terminated) this.remove(e);
  }

  private remove(e: Entry): boolean {
    if (!this.entries.delete(e)) return false;
    e.timer.cancel();
    this.bytesHeld -= e.bytes;
    const n = (this.bySource.get(e.source) ?? 1) - 1;
    if (n > 0) this.bySource.set(e.source, n);
    else this.bySource.delete(e.source);
    return true;
  }
}
