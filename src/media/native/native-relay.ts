import type { Socket } from 'node:dgram';
import { getSystemErrorName } from 'node:util';
import { socketFd, startReading, stopReading } from '../webrtc/dgram-internals';
import { buildNative } from './build-native';
import type { NativeSrtpAddon } from './native-srtp';
import type { NativeSrtpHandle, OffloadAddress, ReceptionState, RewriterState } from './offload-types';

/**
 * The typed JavaScript face of ferry media's native relay addon (addon.c, relay.c; docs/native-relay.md).
 * One NativeRelay per JavaScript environment (the main thread, each relay worker): `nativeRelay()` builds
 * (src/media/native/build-native.ts) and loads the addon once and initialises the environment's relay.
 *
 * A socket handed to `watch` is read by the addon instead of Node (Node's reading is stopped); every
 * datagram the addon does not forward is emitted on the socket as 'message' (same Buffer / rinfo shape as
 * Node's), and a receive error as 'error' (the same `code`, `errno`, `syscall` Node gives). `unwatch`
 * gives the socket back (synchronously) and lets Node read it again; closing a watched socket unwatches it
 * first.
 *
 * A watched socket, or the out socket of a route, closed any other way (dgram's own close reached without the
 * socket's `close`, its UDP handle closed, an fd freed under it) is found three ways: its 'close' event, the
 * addon (which confirms each fd still names its socket before using it, and calls `lost`), and a watch of
 * another socket that now has the same fd number. Each tells the `onSocketGone` listeners first (the offload
 * controller takes the routes' figures back), then drops whatever is left on that socket.
 */

/** Indices of the route state array (relay.h's ST_*): rewriter, reception statistics, then increments since the last sync. */
export const STATE = {
  rwLastInSsrc: 0,
  rwSeqDelta: 1,
  rwTsDelta: 2,
  rwLastOutSeq: 3,
  rwLastOutTs: 4,
  rwLastOutAt: 5,
  rwStarted: 6,
  rsSsrc: 7,
  rsBaseSeq: 8,
  rsMaxSeq: 9,
  rsBadSeq: 10,
  rsCycles: 11,
  rsReceived: 12,
  rsExpectedPrior: 13,
  rsReceivedPrior: 14,
  rsTransit: 15,
  rsJitter: 16,
  rsHaveTransit: 17,
  inPackets: 18,
  inBytes: 19,
  inLastAt: 20,
  rtpReceived: 21,
  sourceChanges: 22,
  srtpRefused: 23,
  outPackets: 24,
  outBytes: 25,
  outPayload: 26,
  outLastAt: 27,
  outLastTs: 28,
  flowOut: 29,
  flowIn: 30,
  droppedNoCodec: 31,
  forwarded: 32,
  sendErrors: 33,
} as const;
export const STATE_LENGTH = 34;

/** The addon's exports (addon.c, plus srtp.c's through NativeSrtpAddon). */
export interface NativeAddon extends NativeSrtpAddon {
  init(
    passUp: (socket: Socket, packet: Buffer, address: string, port: number, family: number) => void,
    errorUp: (socket: Socket, errno: number) => void,
    notify: (fd: number) => void,
    /** `fd` (a watched socket, or with `outSide` the out socket of the route on watched `fd`) no longer names its socket. */
    lost?: (fd: number, outSide: boolean) => void,
  ): void;
  watch(fd: number, socket: Socket): void;
  unwatch(fd: number): boolean;
  route(
    inFd: number,
    outFd: number,
    peerAddress: string | null,
    peerPort: number,
    destAddress: string | null,
    destPort: number,
    outSsrc: number,
    ptMap: Uint8Array,
    clockRates: Uint32Array,
    receiveClockRate: number,
    srtpIn: NativeSrtpHandle | null,
    srtpOut: NativeSrtpHandle | null,
    state: Float64Array,
  ): void;
  unroute(inFd: number, state: Float64Array): boolean;
  sync(inFd: number, state: Float64Array): boolean;
  armNotify(inFd: number): boolean;
  counters(): NativeRelayCounters;
  /** The relay's bounds per environment; `maxWatched` (1..16384) lowers the cap on watched sockets (a watch beyond it throws). */
  limits(maxWatched?: number): NativeRelayLimits;
  /** relay.c's rewriter on one packet (tests): state in/out (STATE.rw*), packet rewritten in place. */
  rewrite(state: Float64Array, packet: Buffer, payloadType: number, clockRate: number, outSsrc: number, nowMs: number): void;
  /** relay.c's reception statistics on one packet (tests): state in/out (STATE.rs*); true when the source changed. */
  reception(state: Float64Array, clockRate: number, ssrc: number, seq: number, ts: number, arrivalMs: number): boolean;
}

export interface NativeRelayCounters {
  watched: number;
  routes: number;
  passedUp: number;
  forwarded: number;
  dropped: number;
  recvErrors: number;
  sendErrors: number;
  batches: number;
}

export interface NativeRelayLimits {
  /** Watched sockets per environment (each holds at most one route): watch beyond it throws, naming the cap. */
  maxWatched: number;
  /** The highest fd number + 1 the relay takes. */
  maxFd: number;
  /** The longest datagram received whole (any UDP datagram). */
  datagram: number;
}

/** One route's configuration (one direction of a call): see offload-types.ts for the meaning of each part. */
export interface NativeRouteConfig {
  /** Source filter; null = the in socket is connect()ed. */
  peer: OffloadAddress | null;
  out: Socket;
  /** Destination; null = the out socket is connect()ed. */
  dest: OffloadAddress | null;
  outSsrc: number;
  ptMap: Uint8Array;
  clockRates: Uint32Array;
  receiveClockRate: number;
  srtpIn: NativeSrtpHandle | null;
  srtpOut: NativeSrtpHandle | null;
  /** STATE_LENGTH doubles: the rewriter and reception statistics to start from (the rest is ignored). */
  state: Float64Array;
}

let addon: NativeAddon | undefined;

/** Builds (when needed) and loads the addon; throws NativeBuildError / the loader's error. */
export function loadNativeAddon(): NativeAddon {
  if (addon) return addon;
  const file = buildNative();
  const mod = { exports: {} as unknown };
  process.dlopen(mod, file);
  addon = mod.exports as NativeAddon;
  return addon;
}

interface Watched {
  fd: number;
}

export class NativeRelay {
  private readonly watched = new Map<Socket, Watched>();
  private readonly notifyHandlers = new Map<number, () => void>();
  /** Sockets whose close() is wrapped (watched, or the out socket of a route): their own close(). */
  private readonly guarded = new Map<Socket, Socket['close']>();
  /** The out socket of each routed in socket, and the routed in sockets of each out socket. */
  private readonly outOf = new Map<Socket, Socket>();
  private readonly routedOutOf = new Map<Socket, Set<Socket>>();
  /** Routes removed because their out socket was closed under them (a caller's bug, made harmless). */
  routesDroppedOnClose = 0;
  /** Watched sockets by fd number. */
  private readonly byFd = new Map<number, Socket>();
  private readonly goneListeners = new Set<(socket: Socket) => void>();
  /** Sockets found closed without their `close` (the 'close' event, the addon's lost(), a reused fd number). */
  socketsLost = 0;
  private readonly lostSockets = new WeakSet<Socket>();

  constructor(readonly addon: NativeAddon) {
    addon.init(
      (socket, packet, address, port, family) => {
        // closed by a listener of an earlier datagram of the same batch: Node would not emit on it either
        if (socketFd(socket) === undefined) return;
        socket.emit('message', packet, { address, family: family === 6 ? 'IPv6' : 'IPv4', port, size: packet.length });
      },
      (socket, errno) => {
        const code = getSystemErrorName(errno);
        const err = Object.assign(new Error(`recvmsg ${code}`), { errno, code, syscall: 'recvmsg' });
        socket.emit('error', err);
      },
      (fd) => this.notifyHandlers.get(fd)?.(),
      (fd, outSide) => {
        const inSocket = this.byFd.get(fd);
        const socket = inSocket && outSide ? this.outOf.get(inSocket) : inSocket;
        if (socket) this.lost(socket);
      },
    );
  }

  /**
   * `listener(socket)` is called when a watched socket or a route's out socket is about to close, or was found
   * closed: before the relay drops anything on it, so the routes' figures can still be taken (unroute). Returns
   * the remover.
   */
  onSocketGone(listener: (socket: Socket) => void): () => void {
    this.goneListeners.add(listener);
    return () => this.goneListeners.delete(listener);
  }

  /** Whether `socket` is read by the addon now. */
  isWatched(socket: Socket): boolean {
    return this.watched.has(socket);
  }

  /**
   * The addon reads `socket` from now on (Node's reading stops). Idempotent. Throws when the socket has no fd
   * (not bound, closed), Node's dgram does not have the expected shape (dgram-internals.ts), or the
   * environment's cap on watched sockets is reached (the socket then stays with Node).
   */
  watch(socket: Socket): void {
    if (this.watched.has(socket)) return;
    const fd = socketFd(socket);
    if (fd === undefined) throw new Error('native relay: the socket has no file descriptor (not bound, or closed)');
    // another socket watched under this number was closed without its close(): it goes first
    const previous = this.byFd.get(fd);
    if (previous && previous !== socket) this.lost(previous);
    if (!stopReading(socket)) throw new Error("native relay: cannot stop Node's reading of the socket");
    try {
      this.addon.watch(fd, socket);
    } catch (err) {
      startReading(socket);
      throw err;
    }
    this.watched.set(socket, { fd });
    this.byFd.set(fd, socket);
    this.guard(socket);
  }

  /**
   * Closing a watched socket gives it back first, and closing the out socket of a route removes that
   * route first, always: the addon must never read, or send from, a closed (or reused) fd.
   */
  private guard(socket: Socket): void {
    if (this.guarded.has(socket)) return;
    const close = socket.close;
    this.guarded.set(socket, close);
    const relay = this;
    socket.close = function closeGuarded(this: Socket, ...args: Parameters<Socket['close']>) {
      relay.beforeClose(socket);
      return close.apply(this, args);
    } as Socket['close'];
    // closed without the wrapper above (dgram's close reached another way): the event comes after the fd is freed
    socket.once('close', () => {
      if (this.guarded.has(socket)) this.lost(socket);
    });
  }

  /** `socket` was closed (or its fd freed) without its close(): counted, then as before a close. */
  private lost(socket: Socket): void {
    if (!this.guarded.has(socket) && !this.watched.has(socket)) return;
    this.socketsLost++;
    this.lostSockets.add(socket);
    this.beforeClose(socket);
  }

  private beforeClose(socket: Socket): void {
    for (const listener of [...this.goneListeners]) listener(socket);
    for (const inSocket of [...(this.routedOutOf.get(socket) ?? [])]) {
      if (inSocket === socket) continue;
      this.routesDroppedOnClose++;
      this.unroute(inSocket, new Float64Array(STATE_LENGTH));
    }
    this.unwatch(socket);
    const close = this.guarded.get(socket);
    if (close) socket.close = close;
    this.guarded.delete(socket);
  }

  private forgetRoute(inSocket: Socket): void {
    const out = this.outOf.get(inSocket);
    if (!out) return;
    this.outOf.delete(inSocket);
    const ins = this.routedOutOf.get(out);
    ins?.delete(inSocket);
    if (ins?.size === 0) this.routedOutOf.delete(out);
  }

  /** Give `socket` back to Node (synchronous; a route on it is dropped: unroute first to keep its figures). */
  unwatch(socket: Socket): void {
    const entry = this.watched.get(socket);
    if (!entry) return;
    this.watched.delete(socket);
    if (this.byFd.get(entry.fd) === socket) this.byFd.delete(entry.fd);
    this.notifyHandlers.delete(entry.fd);
    this.forgetRoute(socket);
    this.addon.unwatch(entry.fd);
    // a socket found closed is not started again: its handle (if any) is closed, its fd number maybe a stranger's
    if (!this.lostSockets.has(socket) && socketFd(socket) !== undefined) startReading(socket);
  }

  /** Install (or replace) the route taking RTP arriving on `inSocket` (watched first when not yet). */
  route(inSocket: Socket, cfg: NativeRouteConfig): void {
    this.watch(inSocket);
    const inFd = this.watched.get(inSocket)!.fd;
    const outFd = socketFd(cfg.out);
    if (outFd === undefined) throw new Error('native relay: the out socket has no file descriptor');
    this.addon.route(
      inFd,
      outFd,
      cfg.peer?.address ?? null,
      cfg.peer?.port ?? 0,
      cfg.dest?.address ?? null,
      cfg.dest?.port ?? 0,
      cfg.outSsrc >>> 0,
      cfg.ptMap,
      cfg.clockRates,
      cfg.receiveClockRate,
      cfg.srtpIn,
      cfg.srtpOut,
      cfg.state,
    );
    this.forgetRoute(inSocket);
    this.outOf.set(inSocket, cfg.out);
    let ins = this.routedOutOf.get(cfg.out);
    if (!ins) this.routedOutOf.set(cfg.out, (ins = new Set()));
    ins.add(inSocket);
    this.guard(cfg.out);
  }

  /** The route's figures into `state` (increments since the last sync); false when `inSocket` has no route. */
  sync(inSocket: Socket, state: Float64Array): boolean {
    const entry = this.watched.get(inSocket);
    return entry ? this.addon.sync(entry.fd, state) : false;
  }

  /** Remove the route (its last figures into `state`); the socket stays watched. False when there was none. */
  unroute(inSocket: Socket, state: Float64Array): boolean {
    const entry = this.watched.get(inSocket);
    if (!entry) return false;
    this.notifyHandlers.delete(entry.fd);
    this.forgetRoute(inSocket);
    return this.addon.unroute(entry.fd, state);
  }

  /** Call `handler` once after the route on `inSocket` forwards its next packet (after the batch). */
  notifyOnNextPacket(inSocket: Socket, handler: () => void): boolean {
    const entry = this.watched.get(inSocket);
    if (!entry) return false;
    this.notifyHandlers.set(entry.fd, handler);
    return this.addon.armNotify(entry.fd);
  }

  counters(): NativeRelayCounters {
    return this.addon.counters();
  }
}

let relay: NativeRelay | undefined;

/** This environment's relay (the addon built and loaded on first use). Throws when it cannot be built or loaded. */
export function nativeRelay(): NativeRelay {
  relay ??= new NativeRelay(loadNativeAddon());
  return relay;
}

/** A fresh state array for a route: no rewriter stream, no reception source yet. */
export function newRouteState(): Float64Array {
  const s = new Float64Array(STATE_LENGTH);
  s[STATE.rwLastInSsrc] = -1;
  s[STATE.rsSsrc] = -1;
  s[STATE.rsBadSeq] = 0x10001;
  return s;
}

/** A stream rewriter's state into a route's state array (before route()). */
export function writeRewriterState(rw: RewriterState, s: Float64Array): void {
  s[STATE.rwLastInSsrc] = rw.lastInSsrc;
  s[STATE.rwSeqDelta] = rw.seqDelta;
  s[STATE.rwTsDelta] = rw.tsDelta;
  s[STATE.rwLastOutSeq] = rw.lastOutSeq;
  s[STATE.rwLastOutTs] = rw.lastOutTs;
  s[STATE.rwLastOutAt] = rw.lastOutAtMs;
  s[STATE.rwStarted] = rw.started ? 1 : 0;
}

/** The stream rewriter's state as a route's state array holds it (after sync()/unroute()). */
export function readRewriterState(s: Float64Array): RewriterState {
  return {
    lastInSsrc: s[STATE.rwLastInSsrc]!,
    seqDelta: s[STATE.rwSeqDelta]!,
    tsDelta: s[STATE.rwTsDelta]!,
    lastOutSeq: s[STATE.rwLastOutSeq]!,
    lastOutTs: s[STATE.rwLastOutTs]!,
    lastOutAtMs: s[STATE.rwLastOutAt]!,
    started: s[STATE.rwStarted] !== 0,
  };
}

/** Reception statistics into a route's state array (before route()). */
export function writeReceptionState(rs: ReceptionState, s: Float64Array): void {
  s[STATE.rsSsrc] = rs.ssrc;
  s[STATE.rsBaseSeq] = rs.baseSeq;
  s[STATE.rsMaxSeq] = rs.maxSeq;
  s[STATE.rsBadSeq] = rs.badSeq;
  s[STATE.rsCycles] = rs.cycles;
  s[STATE.rsReceived] = rs.received;
  s[STATE.rsExpectedPrior] = rs.expectedPrior;
  s[STATE.rsReceivedPrior] = rs.receivedPrior;
  s[STATE.rsTransit] = rs.transit;
  s[STATE.rsJitter] = rs.jitterUnits;
  s[STATE.rsHaveTransit] = rs.haveTransit ? 1 : 0;
}

/** The reception statistics as a route's state array holds them (after sync()/unroute()). */
export function readReceptionState(s: Float64Array): ReceptionState {
  return {
    ssrc: s[STATE.rsSsrc]!,
    baseSeq: s[STATE.rsBaseSeq]!,
    maxSeq: s[STATE.rsMaxSeq]!,
    badSeq: s[STATE.rsBadSeq]!,
    cycles: s[STATE.rsCycles]!,
    received: s[STATE.rsReceived]!,
    expectedPrior: s[STATE.rsExpectedPrior]!,
    receivedPrior: s[STATE.rsReceivedPrior]!,
    transit: s[STATE.rsTransit]!,
    jitterUnits: s[STATE.rsJitter]!,
    haveTransit: s[STATE.rsHaveTransit] !== 0,
  };
}
