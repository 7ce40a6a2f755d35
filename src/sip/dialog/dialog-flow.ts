import { isIP, isIPv4 } from 'node:net';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { parseSipUri } from '../message/sip-uri';
import type { Flow } from '../transport/flow';
import type { Dialog } from './dialog';

/**
 * The flow a new dialog keeps for its in-dialog requests (else they go to its remote target, RFC 3261
 * 12.2.1.1): a connection, always; over UDP, the peer's address and port when a NAT stands between the
 * address the remote target names and the one the dialog's messages came from, in either direction:
 * - the remote target names an address a host behind NAT writes about itself (private, shared,
 *   link-local) while the messages came from an address that is not one: a phone behind a NAT router,
 *   whose Contact names its private address and whom only the router's mapping reaches;
 * - the remote target names a public address while the messages came from a private, shared or
 *   link-local one: a phone on ferry's own network configured with a STUN server, whose Contact names its
 *   NAT's public address (reached from inside only if the router loops packets back, and a third party's
 *   if the phone lied) while it sends from its private address.
 * Its ACK, BYE and re-INVITEs go to the address and port its INVITE or 2xx came from, as the responses to
 * its requests do by `rport`. Otherwise none.
 */
export function dialogFlow(remoteTarget: string, flow: Flow): Flow | undefined {
  if (flow.reliable) return flow;
  if (flow.protocol !== 'udp') return undefined;
  const host = parseSipUri(remoteTarget)?.host;
  if (host === undefined) return undefined;
  const peerBehindNat = isBehindNatAddress(plainAddress(flow.remoteAddress));
  if (isBehindNatAddress(host)) return peerBehindNat ? undefined : flow;
  return peerBehindNat && isPublicAddress(host) ? flow : undefined;
}

/** a unicast IP address that is neither behind NAT nor loopback (not a name) */
function isPublicAddress(host: string): boolean {
  const a = plainAddress(host);
  if (!isIP(a) || isBehindNatAddress(a)) return false;
  if (isIPv4(a)) return !/^(0|127|22[4-9]|2[3-5]\d)\./.test(a);
  return a !== '::' && a !== '::1' && !a.startsWith('ff');
}

/**
 * A phone behind NAT whose router forgot its mapping (an idle timeout, a reboot) is mapped again on another
 * public port when it next sends; its REGISTER over UDP, answered 2xx, comes from there. Its dialogs kept
 * over UDP at the same public address (dialogFlow) whose remote target is a Contact the 2xx lists follow it
 * to that new mapping: their BYE and re-INVITEs reach the phone again (the old mapping leads nowhere).
 * Returns how many moved.
 */
export function followNatMapping(dialogs: Iterable<Dialog>, flow: Flow, contacts: readonly string[]): number {
  if (flow.reliable || flow.protocol !== 'udp') return 0;
  const keys = new Set(contacts.map(contactKey).filter((k): k is string => k !== undefined));
  let moved = 0;
  for (const d of dialogs) {
    const f = d.flow;
    if (!f || f === flow || f.reliable || f.protocol !== 'udp') continue;
    if (plainAddress(f.remoteAddress) !== plainAddress(flow.remoteAddress)) continue;
    const k = contactKey(d.remoteTarget);
    if (k === undefined || !keys.has(k)) continue;
    d.flow = flow;
    moved++;
  }
  return moved;
}

/**
 * Whether a request in `dialog` that arrived over UDP `flow` moves the dialog there: the dialog is kept at a
 * NAT mapping (dialogFlow) and the request comes from the same public address on another port — the phone's
 * router forgot the mapping and made a new one, and the phone's request (a re-INVITE, an INFO, a BYE) is
 * the first ferry sees of it; ferry's requests in the dialog go there from now on.
 */
export function followsNatPeer(dialog: Dialog, flow: Flow): boolean {
  const f = dialog.flow;
  if (!f || f === flow || f.reliable || f.protocol !== 'udp' || flow.protocol !== 'udp') return false;
  if (plainAddress(f.remoteAddress) !== plainAddress(flow.remoteAddress)) return false;
  return dialogFlow(dialog.remoteTarget, flow) === flow;
}

/** user@host:port of a SIP URI, lower case (the port 5060 when none is given) */
function contactKey(uri: string): string | undefined {
  const u = parseSipUri(uri);
  return u ? `${(u.user ?? '').toLowerCase()}@${plainAddress(u.host)}:${u.port ?? 5060}` : undefined;
}
