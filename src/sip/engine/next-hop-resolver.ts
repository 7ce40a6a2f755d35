import net from 'node:net';
import { parseNameAddr } from '../message/name-addr';
import { parseSipUri } from '../message/sip-uri';
import { CachedDns } from '../dns/cached-dns';
import { DEFAULT_DNS_SETTINGS, type DnsSettings } from '../dns/dns-settings';
import { NoTargetError, type SipTarget, SipTargetResolver, type TargetProtocol } from '../dns/sip-targets';
import type { FlowBindings } from '../registrar/flow-bindings';
import { ConnectingFlow } from '../transport/connecting-flow';
import type { Flow, SipProtocol } from '../transport/flow';
import type { TcpTransport } from '../transport/tcp-transport';
import type { TlsTransport } from '../transport/tls-transport';
import type { UdpTransport } from '../transport/udp-transport';

/**
 * The next hop of a new request cannot be reached: drachtio-server accepts such a request (the app is
 * told it was sent) and its SIP stack then answers it with a final response of its own, which the app
 * gets like any response: `410 Gone` when the registered connection it was bound to has closed, `503`
 * when nothing can carry it (no connection for a `.invalid` or WebSocket Contact, a name that does not
 * resolve, a TCP or TLS connection refused), `408` when a TCP or TLS connection is not up within
 * 64·T1 (Timer B: sofia-sip's transaction times out while its transport still connects). Other
 * refusals (an unroutable URI, no TLS configured) stay a `NOK` answer, as in drachtio-server.
 * A new request from an app does not wait for its connection (`nextHop`): the refusal and the 408 reach
 * it through its transaction; requests that must have a connection first (`resolve`) get this error.
 */
export class UnreachableTargetError extends Error {
  constructor(readonly status: 408 | 410 | 503, message: string, readonly protocol: SipProtocol, readonly host: string, readonly port: number) {
    super(message);
    this.name = 'UnreachableTargetError';
  }
}

/**
 * Every address a name resolved to was refused by the caller's `refuse` (a dialog's peer named a host that
 * resolves to an address it may not have ferry sip send to: src/sip/dialog/dialog-flow.ts, `addressNotForPeer`).
 * Nothing was sent or connected.
 */
export class RefusedTargetError extends Error {
  constructor(readonly uri: string, readonly addresses: string[]) {
    super(`${uri} resolves only to addresses refused for this request (${addresses.slice(0, 5).join(', ')})`);
    this.name = 'RefusedTargetError';
  }
}

/** At most this many targets of one next hop are tried (RFC 3263 §4.3 failover). */
export const MAX_TARGETS = 5;
/** At most this many DNS lookups for one next hop. */
export const MAX_LOOKUPS_PER_REQUEST = 24;

/**
 * The targets of a next hop, in the order RFC 3263 gives them: `flow` is the first; `next()` gives the flow
 * of the following one, each once (undefined when none is left). A Contact bound to a connection and an IP
 * address have one target only.
 */
export interface NextHops {
  readonly flow: Flow;
  next(): Flow | undefined;
  /** targets not given yet */
  readonly left: number;
}

/** The targets of a next hop whose connections must be up before a request is sent on them (see resolveTargets). */
export interface ConnectedHops {
  readonly flow: Flow;
  /** the next target whose connection comes up (each target once; undefined when none is left) */
  next(): Promise<Flow | undefined>;
  /** targets not tried yet */
  readonly left: number;
}

/**
 * Picks the Flow for a request to a URI, resolving its host as RFC 3263 §4 says (NAPTR, SRV, then A/AAAA;
 * src/sip/dns/sip-targets.ts; docs/sip-engine.md "How a target is resolved"). `transport=tls` or a `sips:`
 * URI goes over TLS, the peer's certificate checked against the URI's host.
 * A Contact bound by a REGISTER over a connection wins; `.invalid` hosts are never resolved.
 */
export class NextHopResolver {
  private readonly targets: SipTargetResolver;
  readonly dns: CachedDns;

  constructor(
    private readonly udp: UdpTransport,
    private readonly tcp: TcpTransport,
    private readonly bindings: FlowBindings,
    /** absent when ferry sip has no certificate (then TLS targets cannot be reached) */
    private readonly tls?: TlsTransport,
    /** the engine's clock (when a lost binding's registration lapses; DNS TTLs) */
    private readonly now: () => number = Date.now,
    /** how long a new TCP or TLS connection may take (64·T1) */
    private readonly connectTimeoutMs = 32_000,
    dnsSettings: DnsSettings = DEFAULT_DNS_SETTINGS,
    random: () => number = Math.random,
  ) {
    this.dns = new CachedDns(dnsSettings, now);
    const transports = new Set<TargetProtocol>(tls ? ['udp', 'tcp', 'tls'] : ['udp', 'tcp']);
    this.targets = new SipTargetResolver(this.dns.lookup, {
      transports, maxTargets: MAX_TARGETS, maxLookups: MAX_LOOKUPS_PER_REQUEST, random,
      families: (protocol) => (protocol === 'udp' ? this.udpFamilies() : { v4: true, v6: true }),
      hosts: this.dns.hosts,
    });
  }

  /**
   * The flow for a request to a URI, its connection up: tries the URI's targets in turn until a TCP or TLS
   * connection comes up, all of them within 64·T1 (then 408; every one refused: 503). A connection that
   * comes up after that is not kept.
   */
  async resolve(uriOrNameAddr: string, refuse?: (address: string) => boolean): Promise<Flow> {
    return (await this.resolveTargets(uriOrNameAddr, refuse)).flow;
  }

  /**
   * As resolve(), keeping the targets after the one that connected: `next()` gives the following target
   * whose connection comes up (again within 64·T1), for a request that failed at the first (the proxy core).
   */
  async resolveTargets(uriOrNameAddr: string, refuse?: (address: string) => boolean): Promise<ConnectedHops> {
    const hops = await this.nextHops(uriOrNameAddr, refuse);
    const flow = await this.firstConnected(hops, hops.flow);
    return {
      flow,
      next: async () => {
        const n = hops.next();
        return n ? this.firstConnected(hops, n).catch(() => undefined) : undefined;
      },
      get left() { return hops.left; },
    };
  }

  /** `flow`'s connection, else the next target's whose connection comes up, all within 64·T1. */
  private async firstConnected(hops: NextHops, first: Flow): Promise<Flow> {
    const deadline = this.now() + this.connectTimeoutMs;
    for (let flow: Flow | undefined = first; ; ) {
      try {
        return await this.connected(flow, Math.max(0, deadline - this.now()));
      } catch (err) {
        if (!(err instanceof UnreachableTargetError) || err.status !== 503) throw err;
        flow = hops.next();
        if (!flow) throw err;
      }
    }
  }

  private async connected(flow: Flow, waitMs: number): Promise<Flow> {
    if (!(flow instanceof ConnectingFlow)) return flow;
    const what = `${flow.protocol.toUpperCase()} connection to ${flow.remoteAddress}:${flow.remotePort}`;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        flow.drop();
        reject(new UnreachableTargetError(408, `no ${what} within ${this.connectTimeoutMs} ms`, flow.protocol, flow.remoteAddress, flow.remotePort));
      }, waitMs);
    });
    try {
      return await Promise.race([flow.ready, deadline]);
    } catch (err) {
      if (err instanceof UnreachableTargetError) throw err;
      throw new UnreachableTargetError(503, `no ${what}: ${(err as Error).message}`, flow.protocol, flow.remoteAddress, flow.remotePort);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The first target's flow for a new request (see nextHops). */
  async nextHop(uriOrNameAddr: string): Promise<Flow> {
    return (await this.nextHops(uriOrNameAddr)).flow;
  }

  /**
   * The targets for a new request to a URI, without waiting for a connection: each an open flow, or a
   * ConnectingFlow that holds what is sent on it until its TCP or TLS connection is up (whoever uses it
   * handles `ready` failing and drops it when giving up). Names are resolved first (DNS, cached).
   * `refuse`: targets whose address it refuses are left out before any connection or send (a Contact bound
   * to a registration's connection is not judged); none left: RefusedTargetError.
   */
  async nextHops(uriOrNameAddr: string, refuse?: (address: string) => boolean): Promise<NextHops> {
    // a Route value is <uri>;params, a Request-URI is a bare uri whose ;params belong to it
    const n = uriOrNameAddr.includes('<') ? parseNameAddr(uriOrNameAddr) : undefined;
    const text = n ? n.uri : uriOrNameAddr.trim();
    const bound = this.bindings.lookup(text);
    if (bound) return single(bound);
    const u = parseSipUri(text.startsWith('sip') ? text : `sip:${text}`);
    if (!u || u.scheme === 'tel') throw new Error(`cannot route to ${text}`);
    const host = u.host.replace(/^\[|\]$/g, '');
    const transport = (u.params.get('transport') ?? 'udp')?.toLowerCase();
    const secure = u.scheme === 'sips' || transport === 'tls' || transport === 'wss';
    const protocol: SipProtocol = transport === 'ws' || transport === 'wss' || transport === 'tcp' ? transport : secure ? 'tls' : 'udp';
    const port = u.port ?? (secure ? 5061 : 5060);
    const unreachable = (why: string): UnreachableTargetError =>
      this.bindings.wasLost(text, this.now())
        ? new UnreachableTargetError(410, `the connection ${text} registered over has closed`, protocol, host, port)
        : new UnreachableTargetError(503, why, protocol, host, port);
    if (host.toLowerCase().endsWith('.invalid')) throw unreachable(`no connection for ${text}`);
    if (transport === 'ws' || transport === 'wss') throw unreachable(`no WebSocket connection for ${text}`);
    if (secure && !this.tls) throw new Error(`no TLS transport (FERRY_TLS_CERT/FERRY_TLS_KEY unset) for ${text}`);
    const explicit = u.params.get('transport')?.toLowerCase();
    let targets: SipTarget[];
    try {
      targets = await this.targets.resolve({
        host, port: u.port, secure: u.scheme === 'sips',
        transport: explicit === 'tls' || (explicit === 'tcp' && u.scheme === 'sips') ? 'tls' : explicit === 'tcp' ? 'tcp' : explicit === 'udp' ? 'udp' : undefined,
      });
    } catch (err) {
      if (!(err instanceof NoTargetError)) throw err;
      throw new UnreachableTargetError(503, err.message, protocol, host, port);
    }
    if (refuse) {
      const allowed = targets.filter((t) => !refuse(t.address));
      if (allowed.length === 0) throw new RefusedTargetError(text, targets.map((t) => t.address));
      targets = allowed;
    }
    let i = 0;
    const flowOf = (t: SipTarget): Flow => this.flowTo(t, host);
    return {
      flow: flowOf(targets[i++]!),
      next: () => (i < targets.length ? flowOf(targets[i++]!) : undefined),
      get left() { return targets.length - i; },
    };
  }

  private flowTo(t: SipTarget, host: string): Flow {
    const { address, port } = t;
    if (t.protocol === 'tls') {
      const tls = this.tls;
      if (!tls) throw new Error(`no TLS transport (FERRY_TLS_CERT/FERRY_TLS_KEY unset) for ${host}`);
      return tls.openTo(address, port) ?? new ConnectingFlow('tls', address, port, (signal) => tls.connect(address, port, host, signal));
    }
    if (t.protocol === 'tcp') return this.tcp.openTo(address, port) ?? new ConnectingFlow('tcp', address, port, (signal) => this.tcp.connect(address, port, signal));
    return this.udp.flowTo(address, port);
  }

  /** The address families the UDP socket can send to: its own (both when it listens on every IPv6 address). */
  private udpFamilies(): { v4: boolean; v6: boolean } {
    let local: string;
    try {
      local = this.udp.flowTo('127.0.0.1', 9).localAddress;
    } catch {
      return { v4: true, v6: true };
    }
    if (local === '::') return { v4: true, v6: true };
    return net.isIPv6(local) ? { v4: false, v6: true } : { v4: true, v6: false };
  }
}

function single(flow: Flow): NextHops {
  return { flow, next: () => undefined, left: 0 };
}
