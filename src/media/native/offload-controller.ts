import type { Logger } from '../../common/logger';
import type { MediaLeg } from '../relay/media-leg';
import type { MediaElement } from '../objects/media-element';
import { nativeRelay, newRouteState, readReceptionState, readRewriterState, STATE, writeReceptionState, writeRewriterState, type NativeRelay } from './native-relay';
import { isOffloadBlocked, payloadTypeMap, type OffloadableLeg, type OffloadHooks, type OffloadPath } from './offload-types';

/**
 * FERRY_MEDIA_RELAY=native: decides which calls the native relay carries (docs/native-relay.md).
 *
 * A route takes element A's peer's RTP straight to element B's peer while the simple case holds: A has a
 * leg that can be offloaded and exactly one AUDIO sink B (no recorder, player, hub, filter or second
 * sink), B has such a leg too, A's leg knows its peer (latched or connected), B's leg may send (not on
 * hold), both have codec tables, both run on the real clock, and B generates no DTMF. Any change an
 * element or leg announces (OffloadHooks.changed: connect, disconnect, renegotiation, hold, retarget,
 * re-latch, DTMF, SRTP, close, release) removes the routes touching it at once, with their figures
 * synced back into the JavaScript objects (legs' counters, RTCP reception statistics and sender
 * counters, elements' flow counters, the sink's rewriter); the routes come back on the next turn of the
 * event loop when the case is simple again. Readers of the figures sync first (OffloadHooks.sync).
 * One controller per JavaScript environment (the main thread, each relay worker).
 */

interface Party {
  element: MediaElement;
  leg: MediaLeg & OffloadableLeg;
  hooks: OffloadHooks;
}

interface Route {
  from: Party;
  to: Party;
  socket: OffloadPath['socket'];
  /** The socket it sends from (the sink leg's). */
  out: OffloadPath['socket'];
  state: Float64Array;
}

export function isOffloadableLeg(leg: MediaLeg): leg is MediaLeg & OffloadableLeg {
  const l = leg as Partial<OffloadableLeg>;
  return typeof l.offloadPath === 'function' && typeof l.setOffloadHooks === 'function' && typeof l.applyInbound === 'function';
}

export class OffloadController {
  private readonly parties = new Map<MediaElement, Party>();
  /** Routes by the element they read from (an element feeds one sink at most while routed). */
  private readonly routes = new Map<MediaElement, Route>();
  /** The same routes by the element they send to (an element has one AUDIO source, so one route into it at most). */
  private readonly routesInto = new Map<MediaElement, Route>();
  private readonly dirty = new Set<MediaElement>();
  private scheduled = false;
  private readonly blockLogged = new WeakSet<MediaElement>();
  /** Routes installed / removed since start (tests, /stats). */
  installs = 0;
  removals = 0;

  constructor(
    private readonly relay: NativeRelay,
    private readonly logger: Logger,
  ) {
    // a routed socket closed (or found closed) without its leg's close path: its routes go first, figures kept
    relay.onSocketGone((socket) => this.socketGone(socket));
  }

  /** An element got a leg (MediaElement.useLeg): it takes part from now on. */
  register(element: MediaElement, leg: MediaLeg): void {
    const old = this.parties.get(element);
    if (old) this.unregister(element);
    if (!isOffloadableLeg(leg)) return;
    const party: Party = {
      element,
      leg,
      hooks: {
        changed: (reason) => this.changed(element, reason),
        sync: () => this.syncElement(element),
      },
    };
    this.parties.set(element, party);
    element.setOffloadHooks(party.hooks);
    leg.setOffloadHooks(party.hooks);
    this.markDirty(element);
  }

  private unregister(element: MediaElement): void {
    const party = this.parties.get(element);
    if (!party) return;
    this.removeRoutesOf(element, 'release');
    this.parties.delete(element);
    element.setOffloadHooks(undefined);
    party.leg.setOffloadHooks(undefined);
  }

  /** The number of routes installed now. */
  get routeCount(): number {
    return this.routes.size;
  }

  /** Whether the packets from `element`'s peer go through the native relay now. */
  isRouted(element: MediaElement): boolean {
    return this.routes.has(element);
  }

  private changed(element: MediaElement, reason: string): void {
    this.removeRoutesOf(element, reason);
    const party = this.parties.get(element);
    if (party && reason === 'release') {
      this.unregister(element);
      return;
    }
    this.markDirty(element);
    for (const p of element.connectedPeers()) this.markDirty(p);
  }

  private markDirty(element: MediaElement): void {
    this.dirty.add(element);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const elements = [...this.dirty];
      this.dirty.clear();
      for (const e of elements) this.reconsider(e);
    });
  }

  /** Install the route from `a` when the simple case holds and it is not installed. */
  private reconsider(a: MediaElement): void {
    if (this.routes.has(a)) return;
    const from = this.parties.get(a);
    if (!from) return;
    const va = a.offloadView();
    if (va.released || !va.realClock || va.leg !== from.leg || va.audioSinks.length !== 1) return;
    const b = va.audioSinks[0]!;
    const to = this.parties.get(b);
    if (!to || b === a) return;
    const vb = b.offloadView();
    if (vb.released || !vb.realClock || vb.busy || vb.leg !== to.leg) return;
    if (va.codecs.send.size === 0 || vb.codecs.send.size === 0) return;
    const pa = from.leg.offloadPath();
    const pb = to.leg.offloadPath();
    if (isOffloadBlocked(pa) || isOffloadBlocked(pb)) {
      const why = isOffloadBlocked(pa) ? pa.blocked : (pb as { blocked: string }).blocked;
      if (!this.blockLogged.has(a)) {
        this.blockLogged.add(a);
        this.logger.debug('native relay: call stays in JavaScript', { element: a.id, why });
      }
      return;
    }
    if (!pa.canReceive || !pb.canSend) return;
    const state = newRouteState();
    writeRewriterState(b.exportRewriter(), state);
    writeReceptionState(from.leg.exportReception(), state);
    const { ptMap, clockRates } = payloadTypeMap(va.codecs, vb.codecs);
    try {
      this.relay.route(pa.socket, {
        peer: pa.peer,
        out: pb.socket,
        dest: pb.dest,
        outSsrc: pb.ssrc,
        ptMap,
        clockRates,
        receiveClockRate: pa.receiveClockRate,
        srtpIn: pa.srtpIn,
        srtpOut: pb.srtpOut,
        state,
      });
    } catch (err) {
      this.relay.unwatch(pa.socket);
      this.logger.warn('native relay: route refused; the call stays in JavaScript', { element: a.id, message: (err as Error).message });
      return;
    }
    const route: Route = { from, to, socket: pa.socket, out: pb.socket, state };
    this.routes.set(a, route);
    this.routesInto.set(b, route);
    from.leg.offloadRouted?.('in');
    to.leg.offloadRouted?.('out');
    this.installs++;
    this.armNotify(route);
  }

  /** The element figures (flow states, media state) follow the first packet of a quiet route at once. */
  private armNotify(route: Route): void {
    this.relay.notifyOnNextPacket(route.socket, () => {
      if (this.routes.get(route.from.element) === route) this.syncRoute(route);
    });
  }

  private removeRoutesOf(element: MediaElement, reason: string): void {
    const own = this.routes.get(element);
    if (own) this.removeRoute(own, reason);
    const into = this.routesInto.get(element);
    if (into) this.removeRoute(into, reason);
  }

  private removeRoute(route: Route, reason: string): void {
    if (this.routes.get(route.from.element) !== route) return;
    this.routes.delete(route.from.element);
    if (this.routesInto.get(route.to.element) === route) this.routesInto.delete(route.to.element);
    this.removals++;
    if (this.relay.unroute(route.socket, route.state)) this.apply(route);
    this.relay.unwatch(route.socket);
    route.from.leg.offloadUnrouted?.('in');
    route.to.leg.offloadUnrouted?.('out');
    this.logger.debug('native relay: route removed', { element: route.from.element.id, reason });
  }

  /**
   * A socket of a route is closing or was found closed while the route exists (the legs announce their own
   * closing first, so this is a socket closed by someone else: werift, a stray close()). The routes reading or
   * sending on it are removed now with their figures; the legs' next change brings them back if they still can.
   */
  private socketGone(socket: OffloadPath['socket']): void {
    for (const route of [...this.routes.values()]) {
      if (route.socket !== socket && route.out !== socket) continue;
      this.logger.warn('native relay: a routed socket was closed by someone else; its route is removed', { element: route.from.element.id });
      this.removeRoute(route, 'socket-closed');
    }
  }

  private syncElement(element: MediaElement): void {
    const own = this.routes.get(element);
    if (own) this.syncRoute(own);
    const into = this.routesInto.get(element);
    if (into && into !== own) this.syncRoute(into);
  }

  private syncRoute(route: Route): void {
    if (!this.relay.sync(route.socket, route.state)) return;
    const quiet = route.state[STATE.inPackets] === 0;
    this.apply(route);
    if (quiet) this.armNotify(route);
  }

  /** A route's figures (state as sync/unroute left it) into the JavaScript objects. */
  private apply(route: Route): void {
    const s = route.state;
    const reception = readReceptionState(s);
    route.from.leg.applyInbound({
      packets: s[STATE.inPackets]!,
      bytes: s[STATE.inBytes]!,
      lastAt: s[STATE.inLastAt]!,
      rtpReceived: s[STATE.rtpReceived]!,
      reception,
      sourceChanges: s[STATE.sourceChanges]!,
      srtpRefused: s[STATE.srtpRefused]!,
    });
    route.to.leg.applyOutbound({
      packets: s[STATE.outPackets]!,
      bytes: s[STATE.outBytes]!,
      payloadOctets: s[STATE.outPayload]!,
      lastAt: s[STATE.outLastAt]!,
      lastRtpTimestamp: s[STATE.outLastTs]!,
    });
    route.to.element.importRewriter(readRewriterState(s));
    const flow = { flowOut: s[STATE.flowOut]!, flowIn: s[STATE.flowIn]!, droppedNoCodec: s[STATE.droppedNoCodec]! };
    route.from.element.applyFlow(flow, true);
    route.to.element.applyFlow(flow, false);
  }
}

let controller: OffloadController | undefined;

/** This environment's controller (the native relay built and loaded on first use; throws when it cannot be). */
export function offloadControllerFor(logger: Logger): OffloadController {
  controller ??= new OffloadController(nativeRelay(), logger.child({ component: 'media.native' }));
  return controller;
}

/** This environment's controller when one runs (tests, /stats). */
export function currentOffloadController(): OffloadController | undefined {
  return controller;
}
