import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Addresses a host behind NAT writes about itself (in an SDP, in a Contact): private (RFC 1918, fc00::/7),
 * shared (100.64/10, a carrier's NAT) and link-local. Its packets then arrive from another address, the
 * NAT's. Loopback is not among them: no NAT stands between two programs on one host.
 */
const BEHIND_NAT = new BlockList();
BEHIND_NAT.addSubnet('10.0.0.0', 8, 'ipv4');
BEHIND_NAT.addSubnet('172.16.0.0', 12, 'ipv4');
BEHIND_NAT.addSubnet('192.168.0.0', 16, 'ipv4');
BEHIND_NAT.addSubnet('100.64.0.0', 10, 'ipv4');
BEHIND_NAT.addSubnet('169.254.0.0', 16, 'ipv4');
BEHIND_NAT.addSubnet('fc00::', 7, 'ipv6');
BEHIND_NAT.addSubnet('fe80::', 10, 'ipv6');

/** An address without brackets, zone id or IPv4-mapped prefix, lower case: the form two spellings compare in. */
export function plainAddress(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1]! : a;
}

/** True for an IP address a host behind NAT writes about itself (above); false for any other address or a name. */
export function isBehindNatAddress(address: string): boolean {
  const a = plainAddress(address);
  if (isIPv4(a)) return BEHIND_NAT.check(a, 'ipv4');
  if (isIPv6(a)) return BEHIND_NAT.check(a, 'ipv6');
  return false;
}
