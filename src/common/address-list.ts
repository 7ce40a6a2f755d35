import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { formatIpv6, parseIpv6 } from './source-key';

/**
 * A list of IP addresses and networks (`192.0.2.7`, `198.51.100.0/24`, `2001:db8::1`, `2001:db8:5::/48`),
 * written comma- or space-separated, read strictly: anything that is not an address or a network with a
 * prefix length in range, or a network with bits set past its prefix (`192.0.2.7/24`: which was meant?),
 * is an error naming the entry. A peer matches when its address is in one of the entries; an IPv4-mapped
 * IPv6 address (`::ffff:192.0.2.7`, how a dual-stack listener sees an IPv4 client) matches as the IPv4
 * address, and a zone id (`fe80::1%eth0`) is ignored.
 */
export class AddressList {
  private readonly list = new BlockList();

  private constructor(
    /** the entries as written, for logs */
    readonly entries: readonly string[],
  ) {}

  /** Parses `text` (entries separated by commas and/or spaces; empty: an empty list). Throws naming the first bad entry. */
  static parse(text: string): AddressList {
    const entries = text.split(/[\s,]+/).filter((e) => e !== '');
    const out = new AddressList(entries);
    for (const entry of entries) out.add(entry);
    return out;
  }

  get size(): number {
    return this.entries.length;
  }

  /** True when `address` is in one of the entries. */
  has(address: string): boolean {
    if (this.entries.length === 0) return false;
    let a = address.trim();
    if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
    const zone = a.indexOf('%');
    if (zone >= 0) a = a.slice(0, zone);
    if (isIPv4(a)) return this.list.check(a, 'ipv4');
    if (isIPv6(a)) return this.list.check(a, 'ipv6');
    return false;
  }

  private add(entry: string): void {
    const slash = entry.indexOf('/');
    const address = slash < 0 ? entry : entry.slice(0, slash);
    const family = address.includes('%') ? undefined : isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    if (!family) throw new Error(`${JSON.stringify(entry)} is not an IP address or network (write 192.0.2.7, 198.51.100.0/24, 2001:db8::1 or 2001:db8::/48)`);
    const max = family === 'ipv4' ? 32 : 128;
    if (slash < 0) {
      this.list.addAddress(address, family);
      return;
    }
    const lengthText = entry.slice(slash + 1);
    const length = Number(lengthText);
    if (!/^\d{1,3}$/.test(lengthText) || length > max) throw new Error(`${JSON.stringify(entry)} has no valid prefix length (0..${max} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'})`);
    const network = networkOf(address, family, length);
    if (!sameAddress(network, address, family)) {
      throw new Error(`${JSON.stringify(entry)} has bits set past its /${length} prefix (the network is ${network}/${length})`);
    }
    this.list.addSubnet(address, length, family);
  }
}

/** The network address of `address`/`length` in its usual spelling (RFC 5952 for IPv6). */
function networkOf(address: string, family: 'ipv4' | 'ipv6', length: number): string {
  if (family === 'ipv4') {
    const bytes = address.split('.').map(Number);
    return bytes.map((b, i) => b & ((0xff << (8 - Math.max(0, Math.min(8, length - i * 8)))) & 0xff)).join('.');
  }
  const groups = parseIpv6(address)!;
  return formatIpv6(groups.map((g, i) => g & ((0xffff << (16 - Math.max(0, Math.min(16, length - i * 16)))) & 0xffff)));
}

function sameAddress(a: string, b: string, family: 'ipv4' | 'ipv6'): boolean {
  if (family === 'ipv4') return a.split('.').map(Number).join('.') === b.split('.').map(Number).join('.');
  const x = parseIpv6(a);
  const y = parseIpv6(b);
  return !!x && !!y && x.every((v, i) => v === y[i]);
}
