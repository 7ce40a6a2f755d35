/**
 * RTCP wire format (RFC 3550 §6): the one compound parser and builder both media legs use (the plain RTP
 * leg and the WebRTC leg, which sees RTCP decrypted). Pure functions over Buffers; parsing never throws:
 * invalid input is reported as a value, and a hostile compound is bounded (at most MAX_PACKETS packets
 * and MAX_REPORT_BLOCKS report blocks are read from it).
 */
export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_APP = 204;

/** SDES item type of the canonical name (RFC 3550 §6.5.1). */
const SDES_CNAME = 1;
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2208988800;
/** Parsing limits: more packets in one compound, or report blocks in all, are not read. */
const MAX_PACKETS = 32;
const MAX_REPORT_BLOCKS = 64;
/** Largest compound we accept: a UDP payload. */
const MAX_COMPOUND_BYTES = 65507;

/** One reception report block (RFC 3550 §6.4.1). */
export interface ReportBlock {
  /** The source this block reports on. */
  ssrc: number;
  /** Fraction of packets lost since the previous report, in 1/256. */
  fractionLost: number;
  /** Cumulative number of packets lost (24-bit signed on the wire). */
  cumulativeLost: number;
  extendedHighestSeq: number;
  /** Interarrival jitter, in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR received from `ssrc` (0: none yet). */
  lsr?: number;
  /** Delay since that SR, in 1/65536 s (0 when lsr is 0). */
  dlsr?: number;
}

/** The sender-info part of an SR, as we build it. */
export interface SenderInfo {
  /** Wall-clock time of the report, ms since the Unix epoch (written as NTP). */
  ntpMs: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** A sender report as parsed. */
export interface ParsedSenderReport {
  ssrc: number;
  /** Middle 32 bits of its NTP timestamp (what a receiver echoes as LSR). */
  ntpMiddle: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** A report block as parsed, with the SSRC of the participant that sent it. */
export interface ParsedReportBlock extends Required<ReportBlock> {
  reporterSsrc: number;
}

export interface RtcpSummary {
  valid: boolean;
  /** Packet types in order (200 SR, 201 RR, 202 SDES, 203 BYE, ...). */
  types: number[];
  bye: boolean;
  /** SSRC of the first SR, RR or BYE in the compound (the reporter). */
  senderSsrc: number | undefined;
  /** The first SR in the compound, if any. */
  senderReport: ParsedSenderReport | undefined;
  /** Report blocks of every SR and RR in the compound. */
  reportBlocks: ParsedReportBlock[];
  /** SSRCs that said BYE. */
  byeSsrcs: number[];
}

function invalid(): RtcpSummary {
  return { valid: false, types: [], bye: false, senderSsrc: undefined, senderReport: undefined, reportBlocks: [], byeSsrcs: [] };
}

/**
 * Walk a compound RTCP packet (RFC 3550 §6.1): every packet version 2, type 192..223, its length inside
 * the buffer, and the lengths add up exactly. SR, RR and BYE bodies are read; others are skipped.
 */
export function parseRtcpCompound(buf: Buffer): RtcpSummary {
  if (buf.length < 4 || buf.length > MAX_COMPOUND_BYTES) return invalid();
  const out: RtcpSummary = { valid: true, types: [], bye: false, senderSsrc: undefined, senderReport: undefined, reportBlocks: [], byeSsrcs: [] };
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 4 || out.types.length >= MAX_PACKETS) return invalid();
    const b0 = buf[off]!;
    const pt = buf[off + 1]!;
    const len = (buf.readUInt16BE(off + 2) + 1) * 4;
    if (b0 >> 6 !== 2 || pt < 192 || pt > 223 || off + len > buf.length) return invalid();
    const count = b0 & 0x1f;
    out.types.push(pt);
    if (pt === RTCP_SR || pt === RTCP_RR) {
      const head = pt === RTCP_SR ? 28 : 8;
      if (len < head + count * 24) return invalid();
      const reporter = buf.readUInt32BE(off + 4);
      out.senderSsrc ??= reporter;
      if (pt === RTCP_SR && !out.senderReport) {
        out.senderReport = {
          ssrc: reporter,
          ntpMiddle: ((buf.readUInt16BE(off + 10) << 16) | buf.readUInt16BE(off + 12)) >>> 0,
          rtpTimestamp: buf.readUInt32BE(off + 16),
          packetCount: buf.readUInt32BE(off + 20),
          octetCount: buf.readUInt32BE(off + 24),
        };
      }
      for (let i = 0; i < count && out.reportBlocks.length < MAX_REPORT_BLOCKS; i++) {
        const o = off + head + i * 24;
        out.reportBlocks.push({
          reporterSsrc: reporter,
          ssrc: buf.readUInt32BE(o),
          fractionLost: buf[o + 4]!,
          cumulativeLost: buf.readIntBE(o + 5, 3),
          extendedHighestSeq: buf.readUInt32BE(o + 8),
          jitter: buf.readUInt32BE(o + 12),
          lsr: buf.readUInt32BE(o + 16),
          dlsr: buf.readUInt32BE(o + 20),
        });
      }
    } else if (pt === RTCP_BYE) {
      if (len < 4 + count * 4) return invalid();
      out.bye = true;
      if (count > 0) out.senderSsrc ??= buf.readUInt32BE(off + 4);
      for (let i = 0; i < count; i++) out.byeSsrcs.push(buf.readUInt32BE(off + 4 + i * 4));
    }
    off += len;
  }
  return out;
}

/** RFC 5761 §4: with rtcp-mux, byte 1 in 192..223 marks RTCP. */
export function looksLikeRtcp(b: Buffer): boolean {
  if (b.length < 8) return false;
  const pt = b[1]!;
  return pt >= 192 && pt <= 223 && b[0]! >> 6 === 2;
}

/** ms since the Unix epoch as the two 32-bit words of an NTP timestamp. */
export function toNtp(ms: number): { seconds: number; fraction: number } {
  const whole = Math.floor(ms / 1000);
  return { seconds: (whole + NTP_UNIX_OFFSET_S) >>> 0, fraction: Math.floor(((ms - whole * 1000) / 1000) * 0x100000000) >>> 0 };
}

/** The middle 32 bits of the NTP timestamp of `ms` (the LSR/RTT unit: 1/65536 s). */
export function ntpMiddle(ms: number): number {
  const { seconds, fraction } = toNtp(ms);
  return (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;
}

/** SR (when `sender` is given) or RR, followed by SDES with one CNAME chunk. At most 31 report blocks. */
export function buildReport(ssrc: number, cname: string, sender: SenderInfo | undefined, blocks: readonly ReportBlock[]): Buffer {
  const rc = Math.min(blocks.length, 31);
  const headLen = sender ? 28 : 8;
  const first = Buffer.alloc(headLen + rc * 24);
  first[0] = 0x80 | rc;
  first[1] = sender ? RTCP_SR : RTCP_RR;
  first.writeUInt16BE(first.length / 4 - 1, 2);
  first.writeUInt32BE(ssrc >>> 0, 4);
  if (sender) {
    const ntp = toNtp(sender.ntpMs);
    first.writeUInt32BE(ntp.seconds, 8);
    first.writeUInt32BE(ntp.fraction, 12);
    first.writeUInt32BE(sender.rtpTimestamp >>> 0, 16);
    first.writeUInt32BE(sender.packetCount >>> 0, 20);
    first.writeUInt32BE(sender.octetCount >>> 0, 24);
  }
  for (let i = 0; i < rc; i++) {
    const b = blocks[i]!;
    const o = headLen + i * 24;
    first.writeUInt32BE(b.ssrc >>> 0, o);
    first[o + 4] = Math.max(0, Math.min(255, b.fractionLost));
    first.writeIntBE(Math.max(-0x800000, Math.min(0x7fffff, b.cumulativeLost)), o + 5, 3);
    first.writeUInt32BE(b.extendedHighestSeq >>> 0, o + 8);
    first.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.floor(b.jitter))), o + 12);
    first.writeUInt32BE((b.lsr ?? 0) >>> 0, o + 16);
    first.writeUInt32BE((b.dlsr ?? 0) >>> 0, o + 20);
  }
  return Buffer.concat([first, buildSdesCname(ssrc, cname)]);
}

/** An SDES packet with one chunk: our SSRC and its CNAME (truncated to 255 bytes). */
export function buildSdesCname(ssrc: number, cname: string): Buffer {
  const name = Buffer.from(cname, 'utf8').subarray(0, 255);
  const chunkLen = 4 + 2 + name.length + 1; // ssrc, type+len, text, END
  const padded = Math.ceil(chunkLen / 4) * 4;
  const b = Buffer.alloc(4 + padded);
  b[0] = 0x81;
  b[1] = RTCP_SDES;
  b.writeUInt16BE(b.length / 4 - 1, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b[8] = SDES_CNAME;
  b[9] = name.length;
  name.copy(b, 10);
  return b;
}

/** A BYE packet for up to 31 SSRCs with an optional reason (truncated to 255 bytes). Send it after a report (RFC 3550 §6.1). */
export function buildBye(ssrcs: readonly number[], reason?: string): Buffer {
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
  return bye;
}
