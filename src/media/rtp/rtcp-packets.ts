/**
 * Hand-rolled RTCP (RFC 3550 §6) for the plain RTP leg: parse a compound packet far enough to see its
 * types and any BYE, and build SR/RR + SDES(CNAME) reports and BYE packets. Pure functions over Buffers;
 * parse never throws (invalid input is reported as a value).
 */
export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;

export interface RtcpSummary {
  valid: boolean;
  /** Packet types in order (200 SR, 201 RR, 202 SDES, 203 BYE, ...). */
  types: number[];
  bye: boolean;
  /** SSRC of the first packet's sender (SR/RR/BYE first SSRC). */
  senderSsrc: number | undefined;
}

const INVALID: RtcpSummary = { valid: false, types: [], bye: false, senderSsrc: undefined };

export function parseRtcpCompound(buf: Buffer): RtcpSummary {
  if (buf.length < 4) return INVALID;
  const types: number[] = [];
  let bye = false;
  let senderSsrc: number | undefined;
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 4) return INVALID;
    const b0 = buf[off]!;
    if (b0 >> 6 !== 2) return INVALID;
    const pt = buf[off + 1]!;
    const words = buf.readUInt16BE(off + 2);
    const len = (words + 1) * 4;
    if (off + len > buf.length) return INVALID;
    if (pt < 192 || pt > 223) return INVALID;
    types.push(pt);
    if (pt === RTCP_BYE) bye = true;
    if (senderSsrc === undefined && len >= 8 && (pt === RTCP_SR || pt === RTCP_RR || pt === RTCP_BYE)) {
      senderSsrc = buf.readUInt32BE(off + 4);
    }
    off += len;
  }
  return { valid: true, types, bye, senderSsrc };
}

export interface ReportBlock {
  ssrc: number;
  fractionLost: number;
  cumulativeLost: number;
  extendedHighestSeq: number;
  jitter: number;
}

export interface SenderInfo {
  ntpMs: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** SR (when `sender` is given) or RR, followed by SDES with one CNAME chunk. */
export function buildReport(ssrc: number, cname: string, sender: SenderInfo | undefined, blocks: ReportBlock[]): Buffer {
  const rc = Math.min(blocks.length, 31);
  const headLen = sender ? 28 : 8;
  const first = Buffer.alloc(headLen + rc * 24);
  first[0] = 0x80 | rc;
  first[1] = sender ? RTCP_SR : RTCP_RR;
  first.writeUInt16BE(first.length / 4 - 1, 2);
  first.writeUInt32BE(ssrc >>> 0, 4);
  if (sender) {
    const ntpSec = Math.floor(sender.ntpMs / 1000) + 2208988800;
    const frac = Math.floor(((sender.ntpMs % 1000) / 1000) * 0x100000000);
    first.writeUInt32BE(ntpSec >>> 0, 8);
    first.writeUInt32BE(frac >>> 0, 12);
    first.writeUInt32BE(sender.rtpTimestamp >>> 0, 16);
    first.writeUInt32BE(sender.packetCount >>> 0, 20);
    first.writeUInt32BE(sender.octetCount >>> 0, 24);
  }
  for (let i = 0; i < rc; i++) {
    const b = blocks[i]!;
    const o = headLen + i * 24;
    first.writeUInt32BE(b.ssrc >>> 0, o);
    first[o + 4] = b.fractionLost & 0xff;
    const lost = Math.max(-0x800000, Math.min(0x7fffff, b.cumulativeLost));
    first.writeIntBE(lost, o + 5, 3);
    first.writeUInt32BE(b.extendedHighestSeq >>> 0, o + 8);
    first.writeUInt32BE(b.jitter >>> 0, o + 12);
  }
  return Buffer.concat([first, buildSdesCname(ssrc, cname)]);
}

export function buildSdesCname(ssrc: number, cname: string): Buffer {
  const name = Buffer.from(cname, 'utf8').subarray(0, 255);
  const chunkLen = 4 + 2 + name.length + 1; // ssrc, type+len, text, END
  const padded = Math.ceil(chunkLen / 4) * 4;
  const b = Buffer.alloc(4 + padded);
  b[0] = 0x81;
  b[1] = RTCP_SDES;
  b.writeUInt16BE(b.length / 4 - 1, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b[8] = 1; // CNAME
  b[9] = name.length;
  name.copy(b, 10);
  return b;
}

/** An RR + SDES + BYE compound (a BYE must not travel alone, RFC 3550 §6.1). */
export function buildByeCompound(ssrcs: number[], cname: string, reason: string | undefined): Buffer {
  const list = ssrcs.slice(0, 31);
  const reasonBytes = reason ? Buffer.from(reason, 'utf8').subarray(0, 255) : Buffer.alloc(0);
  const reasonLen = reason ? 1 + reasonBytes.length : 0;
  const len = Math.ceil((4 + list.length * 4 + reasonLen) / 4) * 4;
  const bye = Buffer.alloc(len);
  bye[0] = 0x80 | list.length;
  bye[1] = RTCP_BYE;
  bye.writeUInt16BE(len / 4 - 1, 2);
  list.forEach((s, i) => bye.writeUInt32BE(s >>> 0, 4 + i * 4));
  if (reason) {
    bye[4 + list.length * 4] = reasonBytes.length;
    reasonBytes.copy(bye, 5 + list.length * 4);
  }
  return Buffer.concat([buildReport(list[0] ?? 0, cname, undefined, []), bye]);
}

/** RFC 5761 §4: with rtcp-mux, byte 1 in 192..223 marks RTCP. */
export function looksLikeRtcp(b: Buffer): boolean {
  if (b.length < 8) return false;
  const pt = b[1]!;
  return pt >= 192 && pt <= 223 && b[0]! >> 6 === 2;
}
