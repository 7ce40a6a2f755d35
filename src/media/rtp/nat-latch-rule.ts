import { isIPv4, isIPv6 } from 'node:net';
import { isThisHostAddress } from '../../common/host-addresses';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';

/**
 * May RTP from `source` latch a leg whose SDP named `sdpAddress` (before a packet from the SDP address
 * itself has)? Yes when it comes from the SDP's own IP address (a NAT that kept the address, another
 * port), or when the SDP names an address a phone behind NAT writes (private, shared, link-local):
 * there the first plausible packet is the phone's NAT. No when the SDP names a public or loopback
 * address: that phone is reachable where it said, and a packet from anywhere else is a stranger who
 * sprayed the port range to be sent the call's audio before the phone's first packet (RTP bleed).
 * Except on this host: a phone on ferry media's own host that writes one of the host's addresses in its
 * SDP sends from a loopback address (or another address of the host) when it reaches ferry over loopback,
 * and only a program on this host can send from there. And except from behind NAT: a packet from a
 * private, shared or link-local address when the SDP names a public one is a phone on ferry's own network
 * configured with a STUN server (its SDP names its NAT's public address, its RTP comes from its private
 * one, and the SDP address never sends); only a host on a network that reaches ferry media at such an
 * address can send from there (a forged one from the internet would have the audio sent to that private
 * address, not to the forger).
 */
export function mayLatchFrom(sdpAddress: string | undefined, source: string): boolean {
  if (sdpAddress === undefined) return false;
  const sdp = plainAddress(sdpAddress);
  if (sdp === plainAddress(source)) return true;
  if (isThisHostAddress(sdp) && isThisHostAddress(source) && !isLoopbackOnly(sdp, source)) return true;
  if (isIPv4(sdp) || isIPv6(sdp)) return isBehindNatAddress(sdp) || (isBehindNatAddress(source) && !isLoopback(sdp));
  // a name (not written by phones; the gateway refuses it): nothing to compare, keep NAT latching
  return true;
}

/**
 * Both loopback: the SDP named one loopback address and the packet came from another (127.0.0.1 and
 * 127.0.0.7): programs on this host that chose different addresses, each reachable where it said; the
 * rule for a loopback SDP holds (a stranger on this host stays one).
 */
function isLoopbackOnly(a: string, b: string): boolean {
  const loop = (x: string): boolean => plainAddress(x).startsWith('127.') || plainAddress(x) === '::1';
  return loop(a) && loop(b);
}

function isLoopback(a: string): boolean {
  const p = plainAddress(a);
  return p.startsWith('127.') || p === '::1';
}
