import { isIP } from 'node:net';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';

/**
 * Where requests to a phone registered over UDP from behind NAT must be sent. Such a phone writes its
 * private address in Contact (`sip:1001@192.168.1.20:5060`) while its REGISTER came from its router's
 * public address and mapped port: only that mapping leads back to it (RFC 3581's `received`/`rport`, as
 * the 200 to the REGISTER itself was sent). The next hop is that source, as a SIP URI for the UAC's
 * outbound proxy; the Request-URI stays the Contact.
 *
 * None (send to the Contact) for a connection transport (ferry sip binds those Contacts to their
 * connection), for a Contact naming a public address or a name (reachable where it says), and for a source
 * that is itself a private address (a phone on ferry's own network, no NAT in between).
 */
export function natNextHop(reg: { contact: string; transport: string; source?: string }): string | undefined {
  if (reg.transport.toLowerCase() !== 'udp' || !reg.source) return undefined;
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)(?::(\d+))?/i.exec(reg.contact.trim());
  if (!m) return undefined;
  const host = plainAddress(m[1]!);
  if (!isBehindNatAddress(host)) return undefined;
  const colon = reg.source.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const address = plainAddress(reg.source.slice(0, colon));
  const port = Number(reg.source.slice(colon + 1));
  if (!isIP(address) || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  if (isBehindNatAddress(address)) return undefined;
  if (address === host && port === Number(m[2] ?? 5060)) return undefined;
  return `sip:${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
}
