/**
 * Plain (decrypted) RTCP compound packets for the WebRTC leg: a validating walk that reports whether a
 * BYE (PT 203) is inside (werift's own parser silently drops BYE, APP and XR), and the BYE this leg sends
 * (its SR/RR/SDES come from ../rtp/rtcp-packets.ts). Pure functions over Buffers; they never throw.
 */
export const RTCP_BYE = 203;

export interface RtcpCompoundInfo {
  valid: boolean;
  bye: boolean;
  /** SSRC of the first packet's sender (the reporter), when valid. */
  senderSsrc: number | undefined;
  packetTypes: number[];
}

/** Walk a compound RTCP packet (RFC 3550 §6.1). Invalid framing gives valid:false (and what was seen up to there). */
export function inspectRtcpCompound(buf: Buffer): RtcpCompoundInfo {
  const packetTypes: number[] = [];
  let bye = false;
  let pos = 0;
  if (buf.length < 4) return { valid: false, bye, senderSsrc: undefined, packetTypes };
  while (pos < buf.length) {
    if (pos + 4 > buf.length) return { valid: false, bye, senderSsrc: undefined, packetTypes };
    const b0 = buf[pos]!;
    const pt = buf[pos + 1]!;
    const words = buf.readUInt16BE(pos + 2);
    const len = (words + 1) * 4;
    if (b0 >> 6 !== 2 || pt < 192 || pt > 223 || pos + len > buf.length) {
      return { valid: false, bye, senderSsrc: undefined, packetTypes };
    }
    packetTypes.push(pt);
    if (pt === RTCP_BYE) bye = true;
    pos += len;
  }
  const senderSsrc = buf.length >= 8 ? buf.readUInt32BE(4) : undefined;
  return { valid: true, bye, senderSsrc, packetTypes };
}

/** BYE for one SSRC with an optional reason (appended to an SR/RR + SDES from ../rtp/rtcp-packets.ts). */
export function buildBye(ssrc: number, reason?: string): Buffer {
  const r = reason ? Buffer.from(reason, 'utf8').subarray(0, 255) : Buffer.alloc(0);
  const body = 4 + (r.length > 0 ? Math.ceil((1 + r.length) / 4) * 4 : 0);
  const b = Buffer.alloc(4 + body);
  b[0] = 0x81;
  b[1] = RTCP_BYE;
  b.writeUInt16BE(b.length / 4 - 1, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  if (r.length > 0) {
    b[8] = r.length;
    r.copy(b, 9);
  }
  return b;
}
