import net from 'node:net';
import type { DnsAnswer } from './dns-client';
import type { RecordType, SrvData } from './dns-message';
import { orderSrv } from './srv-order';

/** The transports ferry sip can send a request over to a resolved target. */
export type TargetProtocol = 'udp' | 'tcp' | 'tls';

/** One place to send a request: transport, IP address and port (RFC 3263 §4). */
export interface SipTarget {
  protocol: TargetProtocol;
  address: string;
  port: number;
}

/** What the URI (Request-URI, Route or outbound proxy) says about where to go. */
export interface TargetQuery {
  host: string;
  port?: number;
  /** the URI's `transport` parameter (udp, tcp or tls) */
  transport?: TargetProtocol;
  /** a `sips:` URI: TLS only (RFC 3263 §4.1) */
  secure: boolean;
}

/** A DNS lookup of one record type (cached); throws when the name server gives no answer. */
export type DnsLookup = (name: string, type: RecordType) => Promise<DnsAnswer>;

export interface SipTargetOptions {
  /** the transports ferry sip has (TLS only with a certificate) */
  transports: ReadonlySet<TargetProtocol>;
  /** IP families a transport can reach (UDP: its socket's family) */
  families(protocol: TargetProtocol): { v4: boolean; v6: boolean };
  /** at most this many targets in the list (what failover may try) */
  maxTargets: number;
  /** at most this many DNS lookups for one resolution */
  maxLookups: number;
  /** addresses the hosts file lists for a name (when resolving with the system's resolver): used as they are, no DNS */
  hosts?: (name: string) => Promise<string[]>;
  random?: () => number;
}

/** The URI's host resolves to no target ferry sip can use. */
export class NoTargetError extends Error {}

const NAPTR_SERVICES: Record<string, TargetProtocol> = { 'SIP+D2U': 'udp', 'SIP+D2T': 'tcp', 'SIPS+D2T': 'tls' };
const SRV_PREFIX: Record<TargetProtocol, string> = { udp: '_sip._udp', tcp: '_sip._tcp', tls: '_sips._tcp' };

export function defaultPort(protocol: TargetProtocol): number {
  return protocol === 'tls' ? 5061 : 5060;
}

/**
 * RFC 3263 §4: the ordered list of targets for a SIP URI.
 * - an IP address: that address, the URI's port or 5060/5061;
 * - a name with a port: its A and AAAA records (no SRV);
 * - a name with a `transport`: the SRV records of that transport, else A/AAAA with the default port;
 * - otherwise NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T, only transports ferry sip has; `sips:` only SIPS+D2T),
 *   each chosen record's SRV; without usable NAPTR, SRV of _sip._udp, _sip._tcp, _sips._tcp in that order
 *   (`sips:` only _sips._tcp); without SRV, A/AAAA with the default port over UDP (TLS for `sips:`).
 * A name the hosts file lists (system resolver only) is those addresses, as an A/AAAA answer would be.
 * SRV records are ordered by priority and weight (RFC 2782); each SRV target's IPv4 addresses come before
 * its IPv6 ones. The list is cut at `maxTargets`; a lookup that fails counts as "no records".
 */
export class SipTargetResolver {
  constructor(private readonly lookup: DnsLookup, private readonly options: SipTargetOptions) {}

  async resolve(q: TargetQuery): Promise<SipTarget[]> {
    const run = new Resolution(this.lookup, this.options);
    const host = q.host.replace(/^\[|\]$/g, '');
    const protocol: TargetProtocol = q.secure ? 'tls' : q.transport ?? 'udp';
    if (q.secure && q.transport === 'udp') throw new NoTargetError(`a sips: URI cannot go over UDP (${host})`);
    if (net.isIP(host)) return [{ protocol, address: host, port: q.port ?? defaultPort(protocol) }];
    if (host.toLowerCase() === 'localhost') return [{ protocol, address: '127.0.0.1', port: q.port ?? defaultPort(protocol) }];
    let targets: SipTarget[];
    const listed = await this.options.hosts?.(host).catch(() => [] as string[]) ?? [];
    if (listed.length > 0) {
      targets = run.fromAddresses(listed, protocol, q.port ?? defaultPort(protocol));
    } else if (q.port !== undefined) {
      targets = await run.addresses(host, protocol, q.port);
    } else if (q.transport) {
      targets = await run.srv(`${SRV_PREFIX[protocol]}.${host}`, protocol);
      if (targets.length === 0) targets = await run.addresses(host, protocol, defaultPort(protocol));
    } else {
      targets = await run.naptr(host, q.secure);
      if (targets.length === 0) targets = await run.srvOfEachTransport(host, q.secure);
      if (targets.length === 0) targets = await run.addresses(host, protocol, defaultPort(protocol));
    }
    const seen = new Set<string>();
    const unique = targets.filter((t) => {
      const key = `${t.protocol}/${t.address}/${t.port}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }).slice(0, this.options.maxTargets);
    if (unique.length === 0) throw new NoTargetError(run.why(host));
    return unique;
  }
}

/** One resolution: its lookup budget and what went wrong, for the message when nothing is found. */
class Resolution {
  private lookups = 0;
  private readonly problems: string[] = [];

  constructor(private readonly dns: DnsLookup, private readonly o: SipTargetOptions) {}

  why(host: string): string {
    return `${host} does not resolve${this.problems.length ? ` (${this.problems.slice(0, 3).join('; ')})` : ''}`;
  }

  private async records(name: string, type: RecordType): Promise<DnsAnswer['records']> {
    if (++this.lookups > this.o.maxLookups) {
      if (this.lookups === this.o.maxLookups + 1) this.problems.push(`more than ${this.o.maxLookups} DNS lookups`);
      return [];
    }
    try {
      return (await this.dns(name, type)).records;
    } catch (err) {
      this.problems.push((err as Error).message);
      return [];
    }
  }

  async naptr(host: string, secure: boolean): Promise<SipTarget[]> {
    const usable = (await this.records(host, 'NAPTR'))
      .flatMap((r) => (r.type === 'NAPTR' ? [r.naptr] : []))
      .filter((n) => n.flags.toLowerCase() === 's' && n.replacement !== '')
      .map((n) => ({ n, protocol: NAPTR_SERVICES[n.service.toUpperCase()] }))
      .filter((x): x is { n: typeof x.n; protocol: TargetProtocol } => x.protocol !== undefined && this.o.transports.has(x.protocol) && (!secure || x.protocol === 'tls'))
      .sort((a, b) => a.n.order - b.n.order || a.n.preference - b.n.preference);
    const out: SipTarget[] = [];
    for (const { n, protocol } of usable) {
      if (out.length >= this.o.maxTargets) break;
      out.push(...await this.srv(n.replacement, protocol));
    }
    return out;
  }

  async srvOfEachTransport(host: string, secure: boolean): Promise<SipTarget[]> {
    const protocols = (['udp', 'tcp', 'tls'] as const).filter((p) => this.o.transports.has(p) && (!secure || p === 'tls'));
    const lists = await Promise.all(protocols.map((p) => this.srv(`${SRV_PREFIX[p]}.${host}`, p)));
    return lists.flat();
  }

  async srv(name: string, protocol: TargetProtocol): Promise<SipTarget[]> {
    const srv: SrvData[] = (await this.records(name, 'SRV')).flatMap((r) => (r.type === 'SRV' ? [r.srv] : []));
    const ordered = orderSrv(srv, this.o.random).slice(0, this.o.maxTargets);
    const lists = await Promise.all(ordered.map((s) => this.addresses(s.target, protocol, s.port)));
    return lists.flat();
  }

  async addresses(name: string, protocol: TargetProtocol, port: number): Promise<SipTarget[]> {
    const { v4, v6 } = this.o.families(protocol);
    const [a, aaaa] = await Promise.all([v4 ? this.records(name, 'A') : [], v6 ? this.records(name, 'AAAA') : []]);
    const addresses = [...a, ...aaaa].flatMap((r) => (r.type === 'A' || r.type === 'AAAA' ? [r.address] : []));
    return addresses.map((address) => ({ protocol, address, port }));
  }

  /** Listed addresses (hosts file): IPv4 first, only the families the transport reaches. */
  fromAddresses(addresses: string[], protocol: TargetProtocol, port: number): SipTarget[] {
    const { v4, v6 } = this.o.families(protocol);
    const usable = [...addresses.filter((ip) => net.isIPv4(ip) && v4), ...addresses.filter((ip) => net.isIPv6(ip) && v6)];
    if (usable.length === 0) this.problems.push('the hosts file lists no address this transport reaches');
    return usable.map((address) => ({ protocol, address, port }));
  }
}
