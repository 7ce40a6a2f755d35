import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Addresses a phone behind NAT writes in its SDP: private (RFC 1918, fc00::/7), shared (100.64/10, a
 * carrier's NAT) and link-local. Its RTP then arrives from another address (the NAT's), and only
 * latching to that source makes the call work. Loopback is not among them: no NAT stands between two
 * programs on one host (and the gateway accepts loopback media only from a SIP source on this host).
 */
const BEHIND_NAT = new BlockList();
BEHIND_NAT.addSubnet('10.0.0.0', 8, 'ipv4');
BEHIND_NAT.addSubnet('172.16.0.0', 12, 'ipv4');
BEHIND_NAT.addSubnet('192.168.0.0', 16, 'ipv4');
BEHIND_NAT.addSubnet('100.64.0.0', 10, 'ipv4');
BEHIND_NAT.addSubnet('169.254.0.0', 16, 'ipv4');
BEHIND_NAT.addSubnet('fc00::', 7, 'ipv6');
BEHIND_NAT.addSubnet('fe80::', 10, 'ipv6');

function plain(address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1]! : a;
}

/**
 * May RTP from `source` latch a leg whose SDP named `sdpAddress` (before a packet from the SDP address
 * itself has)? Yes when it comes from the SDP's own IP address (a NAT that kept the address, another
 * port), or when the SDP names an address a phone behind NAT writes (private, shared, link-local):
 * there the first plausible packet is the phone's NAT. No when the SDP names a public or loopback
 * address: that phone is reachable where it said, and a packet from anywhere else is a stranger who
 * sprayed the port range to be sent the call's audio before the phone's first packet (RTP bleed).
 */
export function mayLatchFrom(sdpAddress: string | undefined, source: string): boolean {
  if (sdpAddress === undefined) return false;
  const sdp = plain(sdpAddress);
  if (sdp === plain(source)) return true;
  if (isIPv4(sdp)) return BEHIND_NAT.check(sdp, 'ipv4');
  if (isIPv6(sdp)) return BEHIND_NAT.check(sdp, 'ipv6');
  // a name (not written by phones; the gateway refuses it): nothing to compare, keep NAT latching
  return true;
}
