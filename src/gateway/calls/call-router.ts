import { SipConfig, SipTrunk } from '../config/sip-config';
import { LegKind } from '../state/call-record';
import { natNextHop } from '../registrar/nat-next-hop';
import { StateStore } from '../state/state-store';

/** Where a dialled number goes, or why it cannot (a SIP status for the caller). */
export type RouteResult =
  | { ok: true; uri: string; kind: LegKind; party: string; user?: string; trunk?: SipTrunk; record?: boolean; nextHop?: string }
  | { ok: false; status: number; reason: string };

/**
 * The dial plan: first route whose pattern matches the dialled user part wins; `user` targets go
 * to the user's most recent registration (browser -> WebRTC leg, phone -> RTP leg), `trunk`
 * targets to the trunk's address.
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
    const regs = await this.store.getRegistrations(user);
    if (regs.length === 0) return { ok: false, status: 480, reason: 'Temporarily Unavailable' };
    const reg = regs.reduce((a, b) => (b.registeredAt > a.registeredAt ? b : a));
    // a UDP phone behind NAT is reached through the mapping its REGISTER came from, not its private Contact
    const nextHop = natNextHop(reg);
    return { ok: true, uri: reg.contact, kind: reg.webrtc ? 'webrtc' : 'rtp', party: user, user, ...(route.record ? { record: true } : {}), ...(nextHop ? { nextHop } : {}) };
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
