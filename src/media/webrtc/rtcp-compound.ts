/**
 * Plain (decrypted) RTCP compound packets for the WebRTC leg: a validating walk that reports whether a
 * BYE (PT 203) is inside (werift's own parser silently drops BYE, APP and XR), and builders for the SR,
 * SDES and BYE this leg sends. Pure functions over Buffers; they never throw on bad input.
 */
export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
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

function header(pt: number, count: number, lengthBytes: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = 0x80 | (count & 0x1f);
  b[1] = pt;
  b.writeUInt16BE(lengthBytes / 4 - 1, 2);
  return b;
}

export interface SenderInfo {
  ntpMs: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** SR without report blocks (werift's receiver sends the RRs for what we receive). */
export function buildSenderReport(ssrc: number, info: SenderInfo): Buffer {
  const b = Buffer.alloc(28);
  header(RTCP_SR, 0, 28).copy(b, 0);
  b.writeUInt32BE(ssrc >>> 0, 4);
  const seconds = Math.floor(info.ntpMs / 1000) + 2_208_988_800;
  const fraction = Math.floor(((info.ntpMs % 1000) / 1000) * 2 ** 32);
  b.writeUInt32BE(seconds >>> 0, 8);
  b.writeUInt32BE(fraction >>> 0, 12);
  b.writeUInt32BE(info.rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(info.packetCount >>> 0, 20);
  b.writeUInt32BE(info.octetCount >>> 0, 24);
  return b;
}

/** An RR with no report blocks: the mandatory first packet of a compound when we have sent nothing. */
export function buildEmptyReceiverReport(ssrc: number): Buffer {
  const b = Buffer.alloc(8);
  header(RTCP_RR, 0, 8).copy(b, 0);
  b.writeUInt32BE(ssrc >>> 0, 4);
  return b;
}

/** SDES with one chunk holding CNAME. */
export function buildSdesCname(ssrc: number, cname: string): Buffer {
  const text = Buffer.from(cname, 'utf8').subarray(0, 255);
  const itemLen = 2 + text.length;
  const chunkLen = Math.ceil((4 + itemLen + 1) / 4) * 4; // SSRC + item + at least one null terminator, padded
  const b = Buffer.alloc(4 + chunkLen);
  header(RTCP_SDES, 1, b.length).copy(b, 0);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b[8] = 1; // CNAME
  b[9] = text.length;
  text.copy(b, 10);
  return b;
}

/** BYE for one SSRC with an optional reason. */
export function buildBye(ssrc: number, reason?: string): Buffer {
  const r = reason ? Buffer.from(reason, 'utf8').subarray(0, 255) : Buffer.alloc(0);
  const body = 4 + (r.length > 0 ? Math.ceil((1 + r.length) / 4) * 4 : 0);
  const b = Buffer.alloc(4 + body);
  header(RTCP_BYE, 1, b.length).copy(b, 0);
  b.writeUInt32BE(ssrc >>> 0, 4);
  if (r.length > 0) {
    b[8] = r.length;
    r.copy(b, 9);
  }
  return b;
}
