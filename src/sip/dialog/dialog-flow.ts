import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { parseSipUri } from '../message/sip-uri';
import type { Flow } from '../transport/flow';

/**
 * The flow a new dialog keeps for its in-dialog requests (else they go to its remote target, RFC 3261
 * 12.2.1.1): a connection, always; over UDP, the peer's address and port when the remote target names an
 * address a host behind NAT writes about itself (private, shared, link-local) while the dialog's messages
 * came from an address that is not one — a phone behind a NAT router, whose Contact names its private
 * address and whom only the router's mapping reaches (the address and port its INVITE or 2xx came from:
 * its ACK, BYE and re-INVITEs go there, as the responses to its requests do by `rport`). Otherwise none.
 */
export function dialogFlow(remoteTarget: string, flow: Flow): Flow | undefined {
  if (flow.reliable) return flow;
  if (flow.protocol !== 'udp') return undefined;
  const host = parseSipUri(remoteTarget)?.host;
  if (host === undefined || !isBehindNatAddress(host)) return undefined;
  return isBehindNatAddress(plainAddress(flow.remoteAddress)) ? undefined : flow;
}
