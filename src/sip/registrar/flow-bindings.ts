import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { parseSipUri } from '../message/sip-uri';
import type { Flow } from '../transport/flow';

/**
 * Webphone flows: after a successful REGISTER over a connection, the
 * registered Contact (user@host) is bound to that connection, so later requests for that Contact
 * (whose host is usually `<random>.invalid`) go back over it. Forgotten when the connection closes.
 * Each binding remembers when its registration expires: until then its connection counts as in use
 * (the idle close of connections spares it).
 *
 * A binding whose connection closed before its registration lapsed is remembered as lost until then
 * (at most MAX_LOST of them, the oldest forgotten first), as drachtio-server keeps a registered
 * WebSocket's closed transport: a request to that Contact is then answered `410 Gone` rather than
 * `503` (docs/sip-engine.md, "A target that cannot be reached").
 */
export class FlowBindings {
  static readonly MAX_LOST = 10_000;
  /** `transport`: the transport the bound Contact names (transportOf): a request is sent over the binding only to a URI naming the same */
  private readonly byContact = new Map<string, { flow: Flow; expiresAt: number | undefined; transport: string; aor: string | undefined }>();
  /** contact key -> when its registration would have lapsed (undefined = never) */
  private readonly lost = new Map<string, number | undefined>();

  static keyOf(uri: string): string | undefined {
    const u = parseSipUri(uri);
    if (!u) return undefined;
    return `${(u.user ?? '').toLowerCase()}@${u.host.toLowerCase()}`;
  }

  /**
   * The transport a URI names: `tls` for `sips:` or `transport=tls`, `ws` for `transport=ws`/`wss`, `tcp`,
   * else `udp` (a Contact without a transport parameter is reached over UDP).
   */
  static transportOf(uri: string): string {
    const u = parseSipUri(uri);
    if (!u) return 'udp';
    const t = (u.params.get('transport') ?? '').toLowerCase();
    if (u.scheme === 'sips' || t === 'tls') return 'tls';
    if (t === 'ws' || t === 'wss') return 'ws';
    return t === 'tcp' ? 'tcp' : 'udp';
  }

  /**
   * `expiresAt` (ms, the engine's clock): when the registration lapses unless refreshed; undefined = never.
   * `aor`: the address of record the REGISTER was for (its To URI), so the bindings a registrar no longer
   * lists for it can be forgotten (keepOnly).
   */
  bind(contactUri: string, flow: Flow, expiresAt?: number, aor?: string): void {
    const k = FlowBindings.keyOf(contactUri);
    if (!k) return;
    this.byContact.set(k, { flow, expiresAt, transport: FlowBindings.transportOf(contactUri), aor: aor === undefined ? undefined : FlowBindings.keyOf(aor) });
    this.lost.delete(k);
  }

  /**
   * A registrar's 2xx to a REGISTER for `aor` over `flow` lists every Contact the address of record has
   * now (RFC 3261 10.3): the bindings of that address of record on that connection whose Contact it no
   * longer lists (replaced by newer ones past the registrar's cap, removed by another device) are
   * forgotten, so one connection cannot grow the table by registering new Contacts. Bindings of other
   * addresses of record on the same connection (a PBX registering many users over one) are left alone.
   */
  keepOnly(flow: Flow, aor: string, listed: readonly string[]): void {
    const a = FlowBindings.keyOf(aor);
    if (!a) return;
    const keep = new Set(listed.map((c) => FlowBindings.keyOf(c)).filter((k): k is string => k !== undefined));
    for (const [k, b] of this.byContact) if (b.flow === flow && b.aor === a && !keep.has(k)) this.byContact.delete(k);
  }

  /** Forgets a Contact's binding; with `flow`, only when it is bound to that very connection. */
  unbind(contactUri: string, flow?: Flow): void {
    const k = FlowBindings.keyOf(contactUri);
    if (!k) return;
    if (flow && this.byContact.get(k)?.flow !== flow) return;
    this.byContact.delete(k);
    this.lost.delete(k);
  }

  /**
   * Whether a Contact registered over `flow` may be bound to it (at `now`, the engine's clock):
   * - a `.invalid` host (a webphone's: it names no address, only its connection reaches it): yes;
   * - the connection's own remote address: yes;
   * - an address a phone behind NAT writes about itself (private, shared, link-local) over a connection
   *   from an address that is not one (the phone's connection comes from its NAT's public address): yes,
   *   unless that Contact is bound now — registration unexpired, its connection open — to a connection
   *   from another address (the phone that holds it keeps it; a phone that reconnects from the same
   *   address, or after its old connection closed, binds again), and only when the Contact names a connection
   *   transport (`transport=tcp|tls|ws`, `sips:`). From a private address the Contact must name that address:
   *   no NAT stands between two hosts of one network;
   * - any other address (a public one, a name): no. Another user could otherwise register a desk phone's
   *   Contact (`sip:1001@<its address>`) over a connection of their own and have that phone's calls sent to
   *   them; requests to such a Contact go to the address it names, as drachtio-server sends them.
   */
  mayBind(contactUri: string, flow: Flow, now: number): boolean {
    const u = parseSipUri(contactUri);
    if (!u) return false;
    const host = plainAddress(u.host);
    if (host.endsWith('.invalid')) return true;
    const remote = plainAddress(flow.remoteAddress);
    if (host === remote) return true;
    if (!isBehindNatAddress(host) || isBehindNatAddress(remote)) return false;
    // a phone behind NAT registering over a connection names that connection's kind of transport; a Contact
    // without one names UDP — a desk phone on the LAN, which a user from outside must not take over
    if (FlowBindings.transportOf(contactUri) === 'udp') return false;
    const held = this.byContact.get(FlowBindings.keyOf(contactUri)!);
    if (!held || held.flow === flow || held.flow.closed || (held.expiresAt !== undefined && held.expiresAt <= now)) return true;
    return plainAddress(held.flow.remoteAddress) === remote;
  }

  /** True when `uri` was bound to a connection that closed before its registration lapsed (and it was not bound again). */
  wasLost(uri: string, now: number): boolean {
    const k = FlowBindings.keyOf(uri);
    if (!k || !this.lost.has(k)) return false;
    const until = this.lost.get(k);
    if (until !== undefined && until <= now) {
      this.lost.delete(k);
      return false;
    }
    return true;
  }

  lookup(uri: string): Flow | undefined {
    const k = FlowBindings.keyOf(uri);
    const b = k ? this.byContact.get(k) : undefined;
    // the binding serves only URIs naming the transport its Contact named: sip:1001@192.168.1.50;transport=tcp
    // bound over a connection never captures requests to sip:1001@192.168.1.50 (a UDP phone)
    const f = b && b.transport === FlowBindings.transportOf(uri) ? b.flow : undefined;
    return f && !f.closed ? f : undefined;
  }

  /** True while a registration that has not expired at `now` is bound to `flow`. */
  holdsFlow(flow: Flow, now: number): boolean {
    for (const b of this.byContact.values()) if (b.flow === flow && (b.expiresAt === undefined || b.expiresAt > now)) return true;
    return false;
  }

  /** The connection closed: its bindings go; those whose registration had not lapsed at `now` are remembered as lost. */
  forgetFlow(flow: Flow, now?: number): void {
    for (const [k, b] of this.byContact) {
      if (b.flow !== flow) continue;
      this.byContact.delete(k);
      if (now !== undefined && (b.expiresAt === undefined || b.expiresAt > now)) {
        this.lost.delete(k);
        this.lost.set(k, b.expiresAt);
      }
    }
    if (now !== undefined) for (const [k, until] of this.lost) if (until !== undefined && until <= now) this.lost.delete(k);
    while (this.lost.size > FlowBindings.MAX_LOST) this.lost.delete(this.lost.keys().next().value as string);
  }

  get lostCount(): number {
    return this.lost.size;
  }

  get size(): number {
    return this.byContact.size;
  }
}
