import { isIP } from 'node:net';
import { classifyAddress } from '../calls/sdp-validator';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { sourceKey } from '../../common/source-key';

/**
 * Where requests to a phone whose Contact does not lead back to it must be sent: to the address and port
 * its REGISTER came from (the flow it registered over), as a SIP URI for the UAC's outbound proxy; the
 * Request-URI stays the Contact. Two kinds of phone need it:
 *
 * - Behind NAT, writing its private address in Contact (`sip:1001@192.168.1.20:5060`) while its REGISTER
 *   came from its router's public address and mapped port: only that mapping leads back to it.
 * - Writing a public address other than the REGISTER's source (for IPv6, outside the source's /64): a desk
 *   phone on ferry's own network configured with a STUN server writes its NAT's public address while its
 *   packets come from its private one, and a Contact naming someone else's public address must never be
 *   sent anything (every call would send that third party INVITEs and qualify would ping it). Sent to the
 *   source, the phone gets its calls and the address the Contact names gets nothing.
 *
 * - UDP: RFC 3581's `received`/`rport`, as the 200 to the REGISTER itself was sent.
 * - TCP, TLS: the connection the phone registered over, which ferry sip finds by that very remote address
 *   and port. Sent to the Contact instead, a request finds it only while ferry sip remembers the binding;
 *   once the connection closed (or after a restart of ferry sip) it would open a new connection to the
 *   address the Contact names. Through the source, ferry sip uses the phone's connection while it is open
 *   and otherwise connects at most to that source address and port.
 *
 * None (send to the Contact) for WebSocket (its Contacts are reached only over their connection, never
 * dialled; the registrar refuses a WebSocket REGISTER naming another public address), for a Contact naming
 * the source's own address (for IPv6 its /64) or a name, for a private Contact from a private source (a
 * phone on ferry's own network, no NAT in between), and for a source on loopback (this host may name any).
 */
export function natNextHop(reg: { contact: string; transport: string; source?: string }): string | undefined {
  const transport = reg.transport.toLowerCase();
  if ((transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') || !reg.source) return undefined;
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)(?::(\d+))?/i.exec(reg.contact.trim());
  if (!m) return undefined;
  const host = plainAddress(m[1]!);
  const colon = reg.source.lastIndexOf(':');
  if (colon <= 0) return undefined;
  // a connection is found by the remote address exactly as ferry sip reported it (an IPv4-mapped one too)
  const given = reg.source.slice(0, colon).replace(/^\[|\]$/g, '');
  const address = transport === 'udp' ? plainAddress(given) : given;
  const port = Number(reg.source.slice(colon + 1));
  if (!isIP(address) || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  if (isBehindNatAddress(host)) {
    if (isBehindNatAddress(address)) return undefined;
    if (transport === 'udp' && address === host && port === Number(m[2] ?? 5060)) return undefined;
  } else if (!namesAnotherPublicAddress(host, address)) {
    return undefined;
  }
  return `sip:${isIP(address) === 6 ? `[${address}]` : address}:${port}${transport === 'udp' ? '' : `;transport=${transport}`}`;
}

/**
 * Whether a Contact host names a public address other than the REGISTER's source `from` (for IPv6 outside
 * its /64, as one source is counted): not for a source on loopback (this host), a private Contact, a name.
 */
export function namesAnotherPublicAddress(host: string, from: string): boolean {
  const source = plainAddress(from);
  if (source === '' || classifyAddress(source) === 'loopback') return false;
  const to = plainAddress(host);
  if (!isIP(to) || classifyAddress(to) !== 'unicast' || isBehindNatAddress(to)) return false;
  return sourceKey(to) !== sourceKey(source);
}
