import { encodeG711, MULAW_TO_LINEAR, ALAW_TO_LINEAR, type G711Law } from '../media-files/g711';

/**
 * What the hubs need of a G.711 RTP packet, read in place: which law a codec key is, where the payload
 * starts and ends (after CSRCs and a header extension, before padding), and the payload converted from
 * one law to the other (what KMS's agnosticbin does for a sink that negotiated the other law).
 * Nothing here allocates per packet.
 */

export const PCMU = 'pcmu/8000';
export const PCMA = 'pcma/8000';
const RTP_HEADER = 12;

/** The G.711 law of a codec key, undefined for anything else (telephone-event, ...). */
export function g711LawOf(codec: string): G711Law | undefined {
  return codec === PCMU ? 'mulaw' : codec === PCMA ? 'alaw' : undefined;
}

/** The other G.711 codec key (PCMU <-> PCMA), undefined for anything else. */
export function otherG711(codec: string): string | undefined {
  return codec === PCMU ? PCMA : codec === PCMA ? PCMU : undefined;
}

/** Offset of the payload of an RTP packet, -1 when the header does not fit in the packet. */
export function rtpPayloadStart(packet: Uint8Array): number {
  if (packet.length < RTP_HEADER) return -1;
  let offset = RTP_HEADER + (packet[0]! & 0x0f) * 4;
  if (packet[0]! & 0x10) {
    if (packet.length < offset + 4) return -1;
    offset += 4 + ((packet[offset + 2]! << 8) | packet[offset + 3]!) * 4;
  }
  return offset <= packet.length ? offset : -1;
}

/** End (exclusive) of the payload of an RTP packet: its length less the padding. */
export function rtpPayloadEnd(packet: Uint8Array): number {
  if (packet.length === 0) return 0;
  return packet[0]! & 0x20 ? packet.length - packet[packet.length - 1]! : packet.length;
}

function conversionTable(from: Int16Array, to: G711Law): Uint8Array {
  const out = Buffer.alloc(256);
  encodeG711(to, from, 0, 256, out, 0);
  return new Uint8Array(out);
}

/** PCMU byte -> the PCMA byte of the same sample, and back (through linear PCM, as a transcoder does). */
const MULAW_TO_ALAW = conversionTable(MULAW_TO_LINEAR, 'alaw');
const ALAW_TO_MULAW = conversionTable(ALAW_TO_LINEAR, 'mulaw');

/**
 * Converts the payload of a `from` packet (PCMU or PCMA) to the other law, in place; the header is left
 * as it is (the sink maps the payload type). Returns false, changing nothing, for anything else.
 */
export function transcodeG711InPlace(packet: Buffer, from: string): boolean {
  const table = from === PCMU ? MULAW_TO_ALAW : from === PCMA ? ALAW_TO_MULAW : undefined;
  if (table === undefined) return false;
  const start = rtpPayloadStart(packet);
  if (start < 0) return false;
  const end = rtpPayloadEnd(packet);
  for (let i = start; i < end; i++) packet[i] = table[packet[i]!]!;
  return true;
}
