import { SipConfig, SipTrunk } from '../config/sip-config';
import { LegKind } from '../state/call-record';
import { natNextHop } from '../registrar/nat-next-hop';
import { isReachable } from '../registrar/qualify';
import { StateStore } from '../state/state-store';
import type { Registration } from '../state/registration';

/** Where a dialled number goes, or why it cannot (a SIP status for the caller). */
export type RouteResult =
  | { ok: true; uri: string; kind: LegKind; party: string; user?: string; trunk?: SipTrunk; record?: boolean; nextHop?: string }
  | { ok: false; status: number; reason: string };

/** A target a call can be sent to */
export type Routed = Extract<RouteResult, { ok: true }>;

/** one of a user's registrations as the target of a call routed to the user (`base`) */
function registrationTarget(base: Routed, reg: Registration): Routed {
  const { nextHop: _previous, ...rest } = base;
  // a UDP phone behind NAT is reached through the mapping its REGISTER came from, not its private Contact
  const nextHop = natNextHop(reg);
  return { ...rest, uri: reg.contact, kind: reg.webrtc ? 'webrtc' : 'rtp', ...(nextHop ? { nextHop } : {}) };
}

function newest(regs: readonly Registration[]): Registration | undefined {
  return regs.reduce<Registration | undefined>((a, b) => (!a || b.registeredAt > a.registeredAt ? b : a), undefined);
}

/**
 * The dial plan: first route whose pattern matches the dialled user part wins; `user` targets go
 * to the user's most recent registration (browser -> WebRTC leg, phone -> RTP leg), then, through
 * `candidates()`, to the user's other registrations one at a time; `trunk` targets to the trunk's address.
 */
export class CallRouter {
  constructor(private readonly config: SipConfig, private readonly store: StateStore) {}

  async route(dialled: string): Promise<RouteResult> {
    const route = this.config.routes.find((r) => r.match.test(dialled));
    if (!route) return { ok: false, status: 404, reason: 'Not Found' };
    const number = route.rewrite !== undefined ? dialled.replace(route.match, route.rewrite) : dialled;
    if (route.to.kind === 'trunk') {
      const name = route.to.trunk;
      const trunk = this.config.trunks.find((t) => t.name === name);
      if (!trunk) return { ok: false, status: 404, reason: 'Not Found' };
      const uri = `sip:${number}@${trunk.address}${trunk.transport === 'udp' ? '' : `;transport=${trunk.transport}`}`;
      return { ok: true, uri, kind: 'rtp', party: trunk.name, trunk, ...(route.record ? { record: true } : {}) };
    }
    const user = route.to.user ?? number;
    if (!this.config.users.some((u) => u.user === user)) return { ok: false, status: 404, reason: 'Not Found' };
    return this.userTarget(user, route.record);
  }

  /** a configured user's most recent registration as a target; 480 while the user has none */
  async userTarget(user: string, record?: boolean): Promise<RouteResult> {
    // a registration qualify marked unreachable is skipped until it answers a ping or registers again
    const reg = newest((await this.store.getRegistrations(user)).filter(isReachable));
    if (!reg) return { ok: false, status: 480, reason: 'Temporarily Unavailable' };
    return registrationTarget({ ok: true, uri: reg.contact, kind: 'rtp', party: user, user, ...(record ? { record: true } : {}) }, reg);
  }

  /**
   * The targets a call tries, one at a time: `first` (what route() gave), then, for a registered user,
   * each registration not tried yet, newest first. The store is read again before each one: a
   * registration forgotten meanwhile is not tried, one made meanwhile is. A trunk: `first` only. The
   * caller asks for the next one only after a try failed in a way that moves on (stale-binding.ts).
   */
  async *candidates(first: Routed): AsyncGenerator<Routed, void, undefined> {
    yield first;
    if (!first.user) return;
    const tried = new Set([first.uri]);
    for (;;) {
      const next = newest((await this.store.getRegistrations(first.user)).filter((r) => !tried.has(r.contact) && isReachable(r)));
      if (!next) return;
      tried.add(next.contact);
      yield registrationTarget(first, next);
    }
  }

  /**
   * The trunk an INVITE came from: the first whose acceptFrom lists exactly this transport, source
   * address and source port. Another transport or another port of the same host is not the trunk.
   */
  trunkFor(transport: string, address: string, port: number): SipTrunk | undefined {
    const t = transport.toLowerCase();
    return this.config.trunks.find((trunk) => trunk.acceptFrom.some((s) => s.transport === t && s.host === address && s.port === port));
  }

  /** the trunk whose inbound digest user name this is, when that trunk may call from this source */
  trunkByInboundUser(username: string, transport: string, address: string, port: number): SipTrunk | undefined {
    const trunk = this.config.trunks.find((x) => x.inboundAuth?.username === username);
    if (!trunk) return undefined;
    if (trunk.acceptFrom.length === 0) return trunk;
    const t = transport.toLowerCase();
    return trunk.acceptFrom.some((s) => s.transport === t && s.host === address && s.port === port) ? trunk : undefined;
  }
}
