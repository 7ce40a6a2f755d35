/**
 * The benchmark's stamp inside each 160-byte G.711 payload. Media servers relay payload bytes
 * untouched (they may rewrite the RTP header), so the receiver identifies a packet by its stamp:
 *
 *   0..3  magic "FRYB"
 *   4..7  stream id (uint32, unique per call and direction within one phase)
 *   8     epoch (uint8): the measurement window the packet was sent in; 0 = not measured
 *   9     direction (0 = a-to-b, 1 = b-to-a)
 *   10..17 send time, process.hrtime.bigint() ns (CLOCK_MONOTONIC, comparable across processes)
 *   18..  0xff (PCMU silence)
 */
export const RTP_HEADER_BYTES = 12;
export const PAYLOAD_BYTES = 160;
export const PACKET_BYTES = RTP_HEADER_BYTES + PAYLOAD_BYTES;

const MAGIC = 0x46525942; // "FRYB"

export type Direction = 0 | 1;

export interface Stamp {
  streamId: number;
  epoch: number;
  direction: Direction;
  sentAtNs: bigint;
}

/** A 172-byte RTP packet buffer (PCMU, PT 0) whose header and stamp are rewritten in place per send. */
export function createPacketBuffer(ssrc: number, streamId: number, direction: Direction): Buffer {
  const buf = Buffer.alloc(PACKET_BYTES, 0xff);
  buf[0] = 0x80; // V=2, no padding, no extension, no CSRC
  buf[1] = 0x00; // M=0, PT=0 (PCMU)
  buf.writeUInt16BE(0, 2);
  buf.writeUInt32BE(0, 4);
  buf.writeUInt32BE(ssrc >>> 0, 8);
  buf.writeUInt32BE(MAGIC, RTP_HEADER_BYTES);
  buf.writeUInt32BE(streamId >>> 0, RTP_HEADER_BYTES + 4);
  buf[RTP_HEADER_BYTES + 9] = direction;
  return buf;
}

/** Advance the packet to its next sequence number / timestamp and stamp epoch and send time. */
export function stampNext(buf: Buffer, seq: number, epoch: number, nowNs: bigint): void {
  buf.writeUInt16BE(seq & 0xffff, 2);
  buf.writeUInt32BE((seq * 160) >>> 0, 4);
  buf[RTP_HEADER_BYTES + 8] = epoch & 0xff;
  buf.writeBigInt64BE(nowNs, RTP_HEADER_BYTES + 10);
}

/** Read the stamp from an RTP payload (the bytes after the RTP header); undefined when it is not ours. */
export function readStamp(payload: Buffer): Stamp | undefined {
  if (!hasStampAt(payload, 0)) return undefined;
  return {
    streamId: payload.readUInt32BE(4),
    epoch: payload[8] ?? 0,
    direction: payload[9] as Direction,
    sentAtNs: payload.readBigInt64BE(10),
  };
}

/** Whether `buf` carries a stamp of ours at `offset` (the start of an RTP payload): read its fields with the offsets above. */
export function hasStampAt(buf: Buffer, offset: number): boolean {
  if (offset < 0 || buf.length - offset < 18 || buf.readUInt32BE(offset) !== MAGIC) return false;
  const direction = buf[offset + 9];
  return direction === 0 || direction === 1;
}

/** The payload of a plain RTP packet (skipping CSRCs and a header extension), or undefined if it is not RTP. */
export function rtpPayload(packet: Buffer): Buffer | undefined {
  const offset = rtpPayloadOffset(packet);
  return offset < 0 ? undefined : packet.subarray(offset);
}

/** Where the payload of a plain RTP packet starts (after CSRCs and a header extension); -1 if it is not RTP. */
export function rtpPayloadOffset(packet: Buffer): number {
  if (packet.length < RTP_HEADER_BYTES || (packet[0]! & 0xc0) !== 0x80) return -1;
  const pt = packet[1]! & 0x7f;
  if (pt >= 72 && pt <= 79) return -1; // RTCP (SR/RR/SDES/BYE/APP... 200-207 with the marker bit)
  let offset = RTP_HEADER_BYTES + 4 * (packet[0]! & 0x0f);
  if (packet[0]! & 0x10) {
    if (packet.length < offset + 4) return -1;
    offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  }
  if (offset > packet.length) return -1;
  return offset;
}
