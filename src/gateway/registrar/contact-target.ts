import { classifyAddress } from '../calls/sdp-validator';

/**
 * Whether a Contact a REGISTER binds names a place the gateway may send calls to. A registered Contact
 * is where ferry sip sends every call for that user, over the transport the Contact names: one naming a
 * loopback address would make ferry sip open connections to the services of its own host (the private
 * Redis, the Kurento port) and write INVITEs into them; a link-local one reaches a cloud's metadata
 * service (169.254.169.254); multicast, unspecified (0.0.0.0, `::`) and reserved addresses name no
 * phone. Loopback is accepted from a REGISTER that itself came from loopback (a phone or test on this
 * host), as the SDP rule accepts loopback media. Host names are not resolved here (`localhost` is
 * loopback); `.invalid` webphone Contacts name no address at all.
 */
export function contactTargetProblem(uri: string, source: string): string | undefined {
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]*\]|[^:;?>]+)/i.exec(uri.trim());
  if (!m) return undefined;
  const host = m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
  const cls = host === 'localhost' || host.endsWith('.localhost') ? 'loopback' : classifyAddress(host);
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
    default:
      return undefined;
  }
}
