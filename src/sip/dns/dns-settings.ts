import dns from 'node:dns';
import net from 'node:net';
import { type Env, MAX_PORT } from '../../common/env';
import type { DnsServer } from './dns-client';

export const DNS_SERVERS_VARIABLE = 'FERRY_SIP_DNS_SERVERS';
export const DNS_TIMEOUT_VARIABLE = 'FERRY_SIP_DNS_TIMEOUT_MS';
export const DNS_CACHE_VARIABLE = 'FERRY_SIP_DNS_CACHE_ENTRIES';

/** How ferry sip asks DNS for request targets (docs/configuration.md, docs/sip-engine.md "How a target is resolved"). */
export interface DnsSettings {
  /** the servers asked, in order; absent: the system's resolver (/etc/resolv.conf, and /etc/hosts for names DNS does not know) */
  servers?: DnsServer[];
  /** how long one try waits for a server's answer */
  timeoutMs: number;
  /** answers kept at most (each for its TTL); 0: none kept */
  cacheEntries: number;
}

export const DEFAULT_DNS_SETTINGS: DnsSettings = { timeoutMs: 2000, cacheEntries: 1000 };

/**
 * FERRY_SIP_DNS_SERVERS (IP addresses, each with an optional port: `10.0.0.2`, `10.0.0.2:5353`, `[2001:db8::53]:53`,
 * `::1`; comma- or space-separated; unset or empty: the system's resolver), FERRY_SIP_DNS_TIMEOUT_MS (1 or more)
 * and FERRY_SIP_DNS_CACHE_ENTRIES (0 or more). A bad value is an Error whose message names the variable.
 */
export function dnsSettingsFromEnv(env: Env = process.env): DnsSettings {
  const raw = env[DNS_SERVERS_VARIABLE];
  const servers = raw === undefined || raw.trim() === '' ? undefined : parseDnsServers(raw);
  const timeoutMs = wholeNumber(DNS_TIMEOUT_VARIABLE, DEFAULT_DNS_SETTINGS.timeoutMs, 1, env, 'milliseconds');
  const cacheEntries = wholeNumber(DNS_CACHE_VARIABLE, DEFAULT_DNS_SETTINGS.cacheEntries, 0, env, 'entries');
  return { ...(servers ? { servers } : {}), timeoutMs, cacheEntries };
}

/** `host[:port]` entries; throws an Error naming FERRY_SIP_DNS_SERVERS and the bad entry. */
export function parseDnsServers(raw: string): DnsServer[] {
  const out: DnsServer[] = [];
  for (const entry of raw.split(/[\s,]+/).filter(Boolean)) {
    const server = parseServer(entry);
    if (!server) {
      throw new Error(`environment variable ${DNS_SERVERS_VARIABLE}=${JSON.stringify(raw)}: ${JSON.stringify(entry)} is not a DNS server: use an IP address with an optional port, such as 10.0.0.2, 10.0.0.2:5353 or [2001:db8::53]:53`);
    }
    out.push(server);
  }
  return out;
}

function parseServer(entry: string): DnsServer | undefined {
  let host = entry;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (!net.isIPv6(entry)) {
    const m = /^([^:]+)(?::(\d+))?$/.exec(entry);
    if (!m) return undefined;
    host = m[1]!;
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (!net.isIP(host) || !Number.isInteger(port) || port < 1 || port > MAX_PORT) return undefined;
  return { address: host, port };
}

/** The system resolver's servers (as /etc/resolv.conf lists them), 127.0.0.1:53 when it lists none. */
export function systemDnsServers(): DnsServer[] {
  const listed = dns.getServers().map(parseServer).filter((s): s is DnsServer => s !== undefined);
  return listed.length > 0 ? listed : [{ address: '127.0.0.1', port: 53 }];
}

function wholeNumber(name: string, fallback: number, min: number, env: Env, unit: string): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`environment variable ${name}=${JSON.stringify(raw)} is not a whole number of ${unit} of at least ${min}`);
  }
  return n;
}
