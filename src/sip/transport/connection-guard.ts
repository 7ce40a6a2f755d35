import { systemClock, type Clock, type TimerHandle } from '../../common/clock';
import { LogThrottle } from '../../common/log-throttle';
import type { Logger } from '../../common/logger';
import { sourceKeyer, type SourceKeyer } from '../../common/source-key';
import { SourceRateLimiter } from '../../common/source-rate-limit';
import type { FramerPending } from '../message/sip-stream-framer';
import type { Flow } from './flow';
import type { ConnectionLimits } from './connection-limits';

/** Why ferry sip closed a SIP connection itself. */
export type ConnectionCloseReason =
  | 'message-too-large' | 'bad-framing' | 'header-timeout' | 'body-timeout' | 'handshake-timeout' | 'idle' | 'no-pong';
/** Why a new connection was refused on accept. */
export type ConnectionRefusal = 'per-source-cap' | 'connection-cap' | 'handshake-rate';

const CLOSE_REASONS: ConnectionCloseReason[] = ['message-too-large', 'bad-framing', 'header-timeout', 'body-timeout', 'handshake-timeout', 'idle', 'no-pong'];
const REFUSALS: ConnectionRefusal[] = ['per-source-cap', 'connection-cap', 'handshake-rate'];
/** transports whose connections start with a TLS handshake: counted against the handshake rate */
const HANDSHAKE_PROTOCOLS = new Set(['tls', 'wss']);
/** a source retrying against a cap in a loop gets one refusal line per this interval (the rest counted as `suppressed`) */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface ConnectionStats {
  /** accepted connections open now */
  open: number;
  /** distinct sources holding them (an IPv4 address, an IPv6 prefix: src/common/source-key.ts) */
  sources: number;
  /** sources whose handshake-rate bucket has not refilled yet */
  handshakeSources: number;
  refused: Record<ConnectionRefusal, number>;
  closed: Record<ConnectionCloseReason, number>;
}

/** Who is at the other end of a new connection. */
export interface ConnectionPeer {
  address: string;
  port: number;
  /** transport name for logs: tcp, tls, ws, wss (tls and wss count against the handshake rate) */
  protocol: string;
}

/**
 * Connection hygiene for every SIP stream transport (TCP, TLS, WebSocket, secure WebSocket), shared by all
 * of them in one ferry sip so the caps count every connection once. How a transport opts in:
 *
 * 1. On accept, before reading anything, call `admit(peer, close)`. `undefined` means the per-source or
 *    global cap, or the handshake rate, refused it (already logged and counted): destroy the socket
 *    (nothing has been read from it, so no handshake work has been done). Otherwise keep the returned
 *    ConnectionWatch and call `watch.closed()` from the socket's close handler (this releases its slot).
 *    Connections ferry sip opens itself use `track(peer, close)` instead: watched, never refused.
 * 2. Once the connection carries SIP, `watch.attach(flow)` (the idle check asks whether the flow is in use).
 * 3. After every read, `watch.reading(phase, completed)`: what is half-read now and how many whole SIP
 *    messages arrived. Byte streams get both from SipStreamFramer (`pending`, `messages.length`); a
 *    framer error is `watch.violation('message-too-large' | 'bad-framing', detail)`.
 *    A transport that reads whole messages (WebSocket) calls `reading('headers', 0)` when a frame's first
 *    bytes arrive and `reading('none', n)` when it is complete; its size limit is `limits.maxMessageBytes`.
 * 4. A WebSocket transport pings every `limits.wsPingIntervalMs` and reports `violation('no-pong')`.
 *
 * The watch then closes (through the `close` callback) a connection whose headers or body are late, or
 * that has had no SIP message for the idle timeout while no registration, dialog or transaction uses it.
 * Every close is one log line naming the source address; refusals too, at most one line per source and
 * cap per 10 s (a refused source can retry in a tight loop) with the number not logged since. Both are
 * counted in `stats()`.
 *
 * A source is what src/common/source-key.ts makes of the peer address: the IPv4 address, or the IPv6
 * prefix (a /64 unless FERRY_SOURCE_IPV6_PREFIX says otherwise), so one subscriber's many IPv6 addresses
 * share one per-source cap. Lines name the address (`source`) and the key counted (`sourceKey`).
 *
 * Handshake rate: a TLS or WSS connection costs a full handshake (ECDHE and a signature) before it sends
 * anything, so a source that opens and drops connections in a loop burns CPU while staying under the
 * per-source cap. Each source has a token bucket (`tlsHandshakesPerSourcePerSecond`, `tlsHandshakeBurst`);
 * a `tls`/`wss` connection past it is refused on accept as `handshake-rate`.
 *
 * TLS and WSS: admit on the server's raw `connection` event, before the handshake, and call
 * `reading('headers', 0)` there: the handshake then counts against the caps and must finish within the
 * header timeout (as WsTransport does for the HTTP upgrade). A TLS byte stream is then served with
 * `serveSipByteStream(tlsSocket, { ..., watch })`, handing over that watch.
 */
export class ConnectionGuard {
  private readonly bySource = new Map<string, number>();
  private openCount = 0;
  private readonly refused = Object.fromEntries(REFUSALS.map((r) => [r, 0])) as Record<ConnectionRefusal, number>;
  private readonly closedBy = Object.fromEntries(CLOSE_REASONS.map((r) => [r, 0])) as Record<ConnectionCloseReason, number>;
  private readonly refusalLog: LogThrottle;
  private readonly handshakes: SourceRateLimiter;
  /** peer address -> the key the caps count by */
  readonly sourceKey: SourceKeyer;

  constructor(
    readonly limits: ConnectionLimits,
    private readonly log: Logger,
    /** true while a registration binding, a dialog or a transaction uses the flow (the engine knows) */
    private readonly inUse: (flow: Flow) => boolean,
    readonly clock: Clock = systemClock,
  ) {
    this.refusalLog = new LogThrottle(REFUSAL_LOG_INTERVAL_MS, () => clock.now());
    this.sourceKey = sourceKeyer(limits.sourceIpv6Prefix);
    this.handshakes = new SourceRateLimiter({ perSecond: limits.tlsHandshakesPerSourcePerSecond, burst: limits.tlsHandshakeBurst }, () => clock.now());
  }

  /** A connection accepted from the network: counted against the caps; `undefined` = refused, destroy it. */
  admit(peer: ConnectionPeer, close: () => void): ConnectionWatch | undefined {
    const source = normalizeAddress(peer.address);
    const key = this.sourceKey(peer.address);
    const fromSource = this.bySource.get(key) ?? 0;
    let refusal: ConnectionRefusal | undefined;
    let limit = 0;
    if (this.openCount >= this.limits.maxConnections) {
      refusal = 'connection-cap';
      limit = this.limits.maxConnections;
    } else if (fromSource >= this.limits.maxPerSource) {
      refusal = 'per-source-cap';
      limit = this.limits.maxPerSource;
    } else if (HANDSHAKE_PROTOCOLS.has(peer.protocol) && !this.handshakes.take(key)) {
      // only a connection that would be admitted takes a token: a refused one costs no handshake
      refusal = 'handshake-rate';
      limit = this.limits.tlsHandshakesPerSourcePerSecond;
    }
    if (refusal) {
      this.refused[refusal]++;
      const line = this.refusalLog.admit(`${key}|${refusal}`);
      if (line) {
        this.log.warn(`SIP connection refused from ${source}${key === source ? '' : ` (counted as ${key})`}: ${refusal}`, {
          source, sourceKey: key, port: peer.port, protocol: peer.protocol, reason: refusal, limit,
          ...(refusal === 'handshake-rate' ? { burst: this.limits.tlsHandshakeBurst } : {}), suppressed: line.suppressed,
        });
      }
      return undefined;
    }
    this.bySource.set(key, fromSource + 1);
    this.openCount++;
    return new ConnectionWatch(this, peer, source, key, true, close);
  }

  /** A connection ferry sip opened itself: the same read deadlines and idle close, never refused by the caps. */
  track(peer: ConnectionPeer, close: () => void): ConnectionWatch {
    return new ConnectionWatch(this, peer, normalizeAddress(peer.address), this.sourceKey(peer.address), false, close);
  }

  stats(): ConnectionStats {
    return {
      open: this.openCount, sources: this.bySource.size, handshakeSources: this.handshakes.tracked, refused: { ...this.refused }, closed: { ...this.closedBy },
    };
  }

  /** @internal the watch's slot is free again */
  release(key: string): void {
    const n = (this.bySource.get(key) ?? 1) - 1;
    if (n <= 0) this.bySource.delete(key);
    else this.bySource.set(key, n);
    this.openCount = Math.max(0, this.openCount - 1);
  }

  /** @internal one line and one count per close */
  recordClose(watch: ConnectionWatch, reason: ConnectionCloseReason, detail: string): void {
    this.closedBy[reason]++;
    const meta = { source: watch.source, sourceKey: watch.sourceKey, port: watch.peer.port, protocol: watch.peer.protocol, flow: watch.flow?.id, reason, detail };
    if (reason === 'idle') this.log.info(`SIP connection closed from ${watch.source}: ${reason}`, meta);
    else this.log.warn(`SIP connection closed from ${watch.source}: ${reason}`, meta);
  }

  /** @internal */
  flowInUse(flow: Flow): boolean {
    return this.inUse(flow);
  }
}

/** The deadlines of one connection; see ConnectionGuard for how a transport drives it. */
export class ConnectionWatch {
  flow: Flow | undefined;
  private phase: FramerPending = 'none';
  private readTimer: TimerHandle | undefined;
  private idleTimer: TimerHandle | undefined;
  private lastMessageAt: number;
  private done = false;

  constructor(
    private readonly guard: ConnectionGuard,
    readonly peer: ConnectionPeer,
    /** the peer's address (an IPv4-mapped one as IPv4) */
    readonly source: string,
    /** what the per-source caps count it as (src/common/source-key.ts) */
    readonly sourceKey: string,
    private readonly counted: boolean,
    private close: () => void,
  ) {
    this.lastMessageAt = guard.clock.now();
    this.scheduleIdleCheck(guard.limits.idleTimeoutMs);
  }

  /** The connection carries SIP now as `flow`; `close`, when given, replaces how the watch closes it. */
  attach(flow: Flow, close?: () => void): void {
    this.flow = flow;
    if (close) this.close = close;
  }

  /**
   * After a read: `phase` is what is half-read now, `completed` the number of whole SIP messages that
   * arrived. A new partial message (or a new phase) starts its deadline; nothing pending clears it.
   */
  reading(phase: FramerPending, completed: number): void {
    if (this.done) return;
    if (completed > 0) this.lastMessageAt = this.guard.clock.now();
    if (phase === 'none') {
      this.phase = 'none';
      this.readTimer?.cancel();
      this.readTimer = undefined;
      return;
    }
    if (phase === this.phase && completed === 0 && this.readTimer) return;
    this.phase = phase;
    this.readTimer?.cancel();
    const limits = this.guard.limits;
    // before `attach`, the connection is still in its WebSocket upgrade or TLS handshake
    const handshake = this.flow === undefined;
    const [ms, reason]: [number, ConnectionCloseReason] = phase === 'body'
      ? [limits.bodyTimeoutMs, 'body-timeout']
      : [limits.headerTimeoutMs, handshake ? 'handshake-timeout' : 'header-timeout'];
    this.readTimer = this.guard.clock.setTimeout(() => {
      this.readTimer = undefined;
      this.violation(reason, `${phase === 'body' ? 'body' : handshake ? 'handshake' : 'headers'} not complete within ${ms} ms`);
    }, ms);
  }

  /** Closes the connection for `reason` (logged with the source and counted once). */
  violation(reason: ConnectionCloseReason, detail: string): void {
    if (this.done) return;
    this.guard.recordClose(this, reason, detail);
    this.closed();
    this.close();
  }

  /** The socket closed (for whatever reason): timers stop and the slot is released. Idempotent. */
  closed(): void {
    if (this.done) return;
    this.done = true;
    this.readTimer?.cancel();
    this.idleTimer?.cancel();
    this.readTimer = undefined;
    this.idleTimer = undefined;
    if (this.counted) this.guard.release(this.sourceKey);
  }

  private scheduleIdleCheck(ms: number): void {
    this.idleTimer = this.guard.clock.setTimeout(() => this.checkIdle(), Math.max(1, ms));
  }

  private checkIdle(): void {
    if (this.done) return;
    const idleMs = this.guard.limits.idleTimeoutMs;
    const quietFor = this.guard.clock.now() - this.lastMessageAt;
    if (quietFor < idleMs) return this.scheduleIdleCheck(idleMs - quietFor);
    // a half-read message has its own deadline; a connection in use is never idle
    if (this.phase !== 'none' || (this.flow && this.guard.flowInUse(this.flow))) return this.scheduleIdleCheck(idleMs);
    this.violation('idle', `no SIP message for ${quietFor} ms and no registration, dialog or transaction on it`);
  }
}

/** `::ffff:1.2.3.4` and `1.2.3.4` are one source. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
