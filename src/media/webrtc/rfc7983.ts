/**
 * RFC 7983 §7 demultiplexing of the datagrams arriving on a WebRTC leg's ICE socket, by first byte:
 *
 *   0–3 STUN · 16–19 ZRTP · 20–63 DTLS · 64–79 TURN channel · 128–191 RTP/RTCP · anything else: none of them
 *
 * and, among RTP/RTCP, RTCP by its packet type in the second byte (200–204 and the rest of 192–223
 * as RFC 5761 §4 reserves them, the marker bit included in RTP's view of that byte).
 */
export type DatagramKind = 'stun' | 'zrtp' | 'dtls' | 'turn-channel' | 'media' | 'other';

export function classifyDatagram(data: Buffer): DatagramKind {
  if (data.length === 0) return 'other';
  const b = data[0]!;
  if (b <= 3) return 'stun';
  if (b >= 20 && b <= 63) return 'dtls';
  if (b >= 128 && b <= 191) return 'media';
  if (b >= 16 && b <= 19) return 'zrtp';
  if (b >= 64 && b <= 79) return 'turn-channel';
  return 'other';
}

/** For a datagram classified 'media': is it (S)RTCP rather than (S)RTP? */
export function isRtcp(data: Buffer): boolean {
  const pt = data.length > 1 ? data[1]! : 0;
  return pt >= 192 && pt <= 223;
}
