import { classifyAddress } from '../calls/sdp-validator';
import { namesAnotherPublicAddress, natNextHop } from './nat-next-hop';

/**
 * Whether a Contact a REGISTER binds names a place the gateway may send calls to. A registered Contact
 * is where ferry sip sends every call for that user, over the transport the Contact names: one naming a
 * loopback address would make ferry sip open connections to the services of its own host (the private
 * Redis, the Kurento port) and write INVITEs into them; a link-local one reaches a cloud's metadata
 * service (169.254.169.254); multicast, unspecified (0.0.0.0, `::`) and reserved addresses name no
 * phone. Loopback is accepted from a REGISTER that itself came from loopback (a phone or test on this
 * host), as the SDP rule accepts loopback media. A host name (other than `localhost`, which is loopback,
 * and the `.invalid` names of webphone Contacts, which name no address at all and are reached over their
 * connection) is refused the same way: ferry sip resolves it when a call is sent (NAPTR, SRV, A/AAAA), so
 * whoever holds the name's DNS records chooses the address and the port at call time (this host's Redis,
 * its control ports, a metadata service) whatever it resolved to at registration. Phones write their
 * address; a name is accepted only from a REGISTER that came from loopback.
 *
 * A Contact naming a public address other than the one the REGISTER came from (for IPv6 outside its /64)
 * is accepted when requests to it can be sent to that source instead (natNextHop): a REGISTER over UDP,
 * TCP or TLS from a source that is not loopback. A desk phone on ferry's own network configured with a
 * STUN server writes its NAT's public address while its packets come from its private one; every request
 * to such a registration (the INVITEs of a call, qualify's OPTIONS) goes to the REGISTER's source address
 * and port, never to the address the Contact names, which may be a third party's. Refused where that
 * routing is impossible: a WebSocket REGISTER (its Contacts are never dialled through a source; one naming
 * an address would be dialled there) or one whose source address or port is unknown. A REGISTER from
 * loopback (this host) may name any, and its Contact is dialled where it says.
 */
export function contactTargetProblem(uri: string, source: string, flow?: { transport: string; port: number }): string | undefined {
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)/i.exec(uri.trim());
  if (!m) return undefined;
  const host = m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
  const cls = host === 'localhost' || host.endsWith('.localhost') ? 'loopback' : classifyAddress(host);
  if (cls === 'not-ip' && !host.endsWith('.invalid') && classifyAddress(source) !== 'loopback') {
    return `Contact host ${host} is a name: register the phone's address (calls go where the name resolves when they are sent)`;
  }
  switch (cls) {
    case 'loopback':
      return classifyAddress(source) === 'loopback' ? undefined : `Contact host ${host} is a loopback address`;
    case 'link-local':
      return `Contact host ${host} is a link-local address`;
    case 'multicast':
      return `Contact host ${host} is a multicast address`;
    case 'unspecified':
      return `Contact host ${host} names no host`;
    case 'reserved':
      return `Contact host ${host} is a reserved address`;
    case 'unicast':
      if (!namesAnotherPublicAddress(host, source)) return undefined;
      // sent to the REGISTER's source instead of the Contact, or refused
      return flow && natNextHop({ contact: uri, transport: flow.transport, source: `${source}:${flow.port}` }) !== undefined
        ? undefined
        : `Contact host ${host} is not the address the REGISTER came from`;
    default:
      return undefined;
  }
}
