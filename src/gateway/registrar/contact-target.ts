import { classifyAddress } from '../calls/sdp-validator';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { sourceKey } from '../../common/source-key';

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
 * A Contact naming a public address must name the address the REGISTER came from (for IPv6 its /64, as
 * one source is counted): a phone on a public address registers from it, and one behind NAT writes its
 * private address (reached through its NAT's mapping, nat-next-hop.ts) or the public one its NAT gives it
 * (STUN), which is the source. Any other public address is a third party's: every call to the user would
 * send it INVITEs (one per registration, up to the ring-all fork cap, each retransmitted over UDP) and
 * qualify would ping it, so one REGISTER could aim ferry's traffic at a host that never asked for it. A
 * REGISTER from loopback (this host) may name any.
 */
export function contactTargetProblem(uri: string, source: string): string | undefined {
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
      return isThirdParty(host, source) ? `Contact host ${host} is not the address the REGISTER came from` : undefined;
    default:
      return undefined;
  }
}

/** a public Contact address other than the REGISTER's source (its /64 for IPv6); any from loopback is not */
function isThirdParty(host: string, source: string): boolean {
  const from = plainAddress(source);
  if (classifyAddress(from) === 'loopback' || from === '') return false;
  const to = plainAddress(host);
  if (isBehindNatAddress(to)) return false;
  return sourceKey(to) !== sourceKey(from);
}
