/** An RTCP receiver report with no report blocks (RFC 3550 §6.4.2): the smallest valid RTCP packet. */
export function emptyReceiverReport(ssrc: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = 0x80;
  b[1] = 201;
  b.writeUInt16BE(1, 2);
  b.writeUInt32BE(ssrc, 4);
  return b;
}
