import { isIPv6 } from 'node:net';
import type { Env } from './env';

/**
 * The key every per-source cap and lockout counts by (connections per source, the handshake rate, the
 * unrouted-request hold, authentication failures and lockouts, HTTP connections per source).
 *
 * An IPv4 address is its own key (one subscriber has one, or a few). An IPv6 subscriber is handed a whole
 * /64 (often a /56 or /48) and picks any address in it at will, so counting by address would give one
 * attacker 2^64 sources: IPv6 addresses are counted by their prefix instead, FERRY_SOURCE_IPV6_PREFIX bits
 * long (default 64; 48..128, 128 = by address). Every spelling of one address gives one key: zero
 * compression, upper or lower case, leading zeros, an embedded dotted quad, a zone id (`%eth0`) and
 * brackets make no difference; the key is the prefix in RFC 5952 form with its length
 * (`2001:db8:0:1::/64`). An IPv4-mapped address (`::ffff:192.0.2.1`, also spelled `::ffff:c000:201`, how a
 * dual-stack listener sees an IPv4 client) is that IPv4 address. A link-local address (`fe80::/10`:
 * every host of a link picks its own in the one fe80::/64) is counted by address, without its zone id.
 * Anything that is not an IP address is its own key, unchanged.
 */
export const SOURCE_IPV6_PREFIX_VARIABLE = 'FERRY_SOURCE_IPV6_PREFIX';
export const DEFAULT_SOURCE_IPV6_PREFIX = 64;
export const MIN_SOURCE_IPV6_PREFIX = 48;
export const MAX_SOURCE_IPV6_PREFIX = 128;

/** Maps a peer address to the key its caps count by. */
export type SourceKeyer = (address: string) => string;

/** FERRY_SOURCE_IPV6_PREFIX: an integer 48..128 (default 64), else an error naming the variable. */
export function sourceIpv6PrefixFromEnv(env: Env = process.env): number {
  const raw = env[SOURCE_IPV6_PREFIX_VARIABLE];
  if (raw === undefined || raw.trim() === '') return DEFAULT_SOURCE_IPV6_PREFIX;
  return checkedPrefix(Number(raw.trim()), `environment variable ${SOURCE_IPV6_PREFIX_VARIABLE}=${JSON.stringify(raw)}`);
}

/** A keyer for `ipv6Prefix` bits (checked: 48..128), by default the one FERRY_SOURCE_IPV6_PREFIX sets. */
export function sourceKeyer(ipv6Prefix: number = sourceIpv6PrefixFromEnv()): SourceKeyer {
  const bits = checkedPrefix(ipv6Prefix, `IPv6 source prefix ${ipv6Prefix}`);
  return (address) => sourceKey(address, bits);
}

function checkedPrefix(n: number, what: string): number {
  if (!Number.isInteger(n) || n < MIN_SOURCE_IPV6_PREFIX || n > MAX_SOURCE_IPV6_PREFIX) {
    throw new Error(`${what} is not a prefix length: use ${MIN_SOURCE_IPV6_PREFIX}..${MAX_SOURCE_IPV6_PREFIX} (IPv6 sources are counted by this many leading bits; 128 = by address)`);
  }
  return n;
}

/** The key of `address` (see above); `ipv6Prefix` bits of an IPv6 address, 0..128. */
export function sourceKey(address: string, ipv6Prefix: number = DEFAULT_SOURCE_IPV6_PREFIX): string {
  const groups = parseIpv6(address);
  if (!groups) return address;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  // a link-local address (fe80::/10) is chosen by each host of one link, not handed out as a prefix
  const linkLocal = (groups[0]! & 0xffc0) === 0xfe80;
  const bits = linkLocal ? 128 : Math.max(0, Math.min(128, Math.floor(ipv6Prefix)));
  const masked = groups.map((g, i) => {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    return keep === 0 ? 0 : g & ((0xffff << (16 - keep)) & 0xffff);
  });
  const text = formatIpv6(masked);
  return bits === 128 ? text : `${text}/${bits}`;
}

/** The eight 16-bit groups of an IPv6 address in any spelling (brackets and a zone id allowed), else undefined. */
export function parseIpv6(address: string): number[] | undefined {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (!isIPv6(a)) return undefined;
  const halves = a.split('::');
  const side = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const [w, x, y, z] = part.split('.').map(Number) as [number, number, number, number];
        out.push((w << 8) | x, (y << 8) | z);
      } else out.push(parseInt(part, 16));
    }
    return out;
  };
  const head = side(halves[0]!);
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const tail = side(halves[1]!);
  const zeros = 8 - head.length - tail.length;
  return zeros < 1 ? undefined : [...head, ...new Array<number>(zeros).fill(0), ...tail];
}

/** RFC 5952: lower-case hex without leading zeros; the longest run of two or more zero groups (the first of equals) as `::`. */
export function formatIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
