import { isIP } from 'node:net';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';

/**
 * Where requests to a phone registered from behind NAT must be sent. Such a phone writes its private
 * address in Contact (`sip:1001@192.168.1.20:5060`) while its REGISTER came from its router's public
 * address and mapped port: only that mapping leads back to it. The next hop is that source, as a SIP URI
 * for the UAC's outbound proxy; the Request-URI stays the Contact.
 *
 * - UDP: RFC 3581's `received`/`rport`, as the 200 to the REGISTER itself was sent.
 * - TCP, TLS: the connection the phone registered over, which ferry sip finds by that very remote address
 *   and port. Sent to the Contact instead, a request finds it only while ferry sip remembers the binding;
 *   once the connection closed (or after a restart of ferry sip) it would open a new connection to the
 *   private address, on ferry's own network. Through the source, ferry sip uses the phone's connection
 *   while it is open and otherwise connects at most to that public address.
 *
 * None (send to the Contact) for WebSocket (its Contacts are reached only over their connection, never
 * dialled), for a Contact naming a public address or a name (reachable where it says), and for a source
 * that is itself a private address (a phone on ferry's own network, no NAT in between).
 */
export function natNextHop(reg: { contact: string; transport: string; source?: string }): string | undefined {
  const transport = reg.transport.toLowerCase();
  if ((transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') || !reg.source) return undefined;
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)(?::(\d+))?/i.exec(reg.contact.trim());
  if (!m) return undefined;
  const host = plainAddress(m[1]!);
  if (!isBehindNatAddress(host)) return undefined;
  const colon = reg.source.lastIndexOf(':');
  if (colon <= 0) return undefined;
  // a connection is found by the remote address exactly as ferry sip reported it (an IPv4-mapped one too)
  const given = reg.source.slice(0, colon).replace(/^\[|\]$/g, '');
  const address = transport === 'udp' ? plainAddress(given) : given;
  const port = Number(reg.source.slice(colon + 1));
  if (!isIP(address) || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  if (isBehindNatAddress(address)) return undefined;
  if (transport === 'udp' && address === host && port === Number(m[2] ?? 5060)) return undefined;
  return `sip:${isIP(address) === 6 ? `[${address}]` : address}:${port}${transport === 'udp' ? '' : `;transport=${transport}`}`;
}
