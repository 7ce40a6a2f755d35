import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';
import { isBehindNatAddress, plainAddress } from '../../common/nat-addresses';
import { parseNameAddr } from '../message/name-addr';
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

/** Addresses a peer elsewhere never legitimately asks ferry sip to send its dialog's requests to (peerOnlyTarget). */
const NOT_FOR_PEERS = new BlockList();
NOT_FOR_PEERS.addSubnet('0.0.0.0', 8, 'ipv4'); // unspecified, "this network"
NOT_FOR_PEERS.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local: a cloud's metadata service
NOT_FOR_PEERS.addSubnet('224.0.0.0', 3, 'ipv4'); // multicast, reserved, broadcast
NOT_FOR_PEERS.addAddress('::', 'ipv6');
NOT_FOR_PEERS.addSubnet('fe80::', 10, 'ipv6');
NOT_FOR_PEERS.addSubnet('ff00::', 8, 'ipv6');

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** loopback in any spelling (an IPv4-mapped IPv6 address is judged as its IPv4 address) */
function isLoopbackAddress(a: string): boolean {
  if (a === 'localhost') return true;
  if (isIPv4(a)) return LOOPBACK.check(a, 'ipv4');
  return isIPv6(a) && LOOPBACK.check(a, 'ipv6');
}

/**
 * The target of a dialog's next in-dialog request (its first loose route, else its remote target: the peer's
 * Record-Route and Contact) is the peer's to choose, and ferry sip sends there from its own address. A peer
 * elsewhere must not choose one of ferry's own host (loopback: its Redis, its control ports) or an address no
 * peer can be at (link-local, where a cloud's metadata service answers; multicast; unspecified; reserved):
 * true when `target` names such an address and it is not the peer's own (a peer on loopback may name
 * loopback). The engine then sends the dialog's requests to the peer's address instead, as a registration's
 * Contact is treated (docs/security.md, "Inside a call"). A name is judged by the addresses it resolves to,
 * when the request is sent (`addressNotForPeer`, the resolver's `refuse`).
 */
export function peerOnlyTarget(target: string, peerAddress: string): boolean {
  const uri = parseSipUri(parseNameAddr(target)?.uri ?? target);
  if (!uri) return false;
  const host = plainAddress(uri.host);
  if (host !== 'localhost' && !isIP(host)) return false;
  return addressNotForPeer(host, peerAddress, false);
}

/**
 * The rule of peerOnlyTarget for one address (a resolved one, or a literal): true when a dialog whose peer is
 * at `peerAddress` may not have its requests sent to `address`. A dialog rebuilt from an app's snapshot has
 * no recorded peer (`peerAddress` undefined): it may never be sent to a link-local, multicast, unspecified
 * or reserved address, nor to loopback unless ferry sip itself listens on loopback only (`localOnly`: every
 * peer is on this host).
 */
export function addressNotForPeer(address: string, peerAddress: string | undefined, localOnly: boolean): boolean {
  const host = plainAddress(address);
  const peer = peerAddress === undefined ? undefined : plainAddress(peerAddress);
  if (peer !== undefined && host === peer) return false;
  if (isLoopbackAddress(host)) return peer === undefined ? !localOnly : !isLoopbackAddress(peer);
  if (isIPv4(host)) return NOT_FOR_PEERS.check(host, 'ipv4');
  if (isIPv6(host)) return NOT_FOR_PEERS.check(host, 'ipv6');
  return false;
}

/** True for a loopback address in any spelling (`localhost`, 127.0.0.0/8, ::1, an IPv4-mapped one). */
export function isLoopbackHost(address: string): boolean {
  return isLoopbackAddress(plainAddress(address));
}

/** A SIP URI naming the peer's address, port and transport (where its INVITE or 2xx came from). */
export function peerUri(peer: { address: string; port: number; protocol: string }): string {
  const a = plainAddress(peer.address);
  const host = isIPv6(a) ? `[${a}]` : a;
  return `sip:${host}:${peer.port}${peer.protocol === 'udp' ? '' : `;transport=${peer.protocol}`}`;
}
