/**
 * RTCP bytes for test peers, written independently of ferry's RTCP module (src/media/rtcp) so a mistake
 * there cannot be mirrored by the peer that checks it: walk a compound packet by its length fields
 * (RFC 3550 §6.1: length in 32-bit words minus one) and tell whether it carries a BYE (packet type 203).
 */

const RTCP_BYE = 203;
/** More packets than any compound a peer legitimately sends: a bound on the walk. */
const MAX_PACKETS_PER_COMPOUND = 64;

/** True if some packet of the compound is a BYE. A malformed compound yields the packets before the damage. */
export function rtcpCompoundHasBye(compound: Buffer): boolean {
  let at = 0;
  for (let n = 0; n < MAX_PACKETS_PER_COMPOUND && at + 4 <= compound.length; n++) {
    if (compound[at]! >> 6 !== 2) return false; // version 2 only
    if (compound[at + 1] === RTCP_BYE) return true;
    at += (compound.readUInt16BE(at + 2) + 1) * 4;
  }
  return false;
}
