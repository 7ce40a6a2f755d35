/**
 * What the leg reads back from the SDP werift wrote (its answer or offer): the first audio m-line with a port,
 * its payload types in order, their rtpmap names (upper case) and its direction. A line scan, not a full SDP
 * parse: sdp-transform's parser tries every grammar rule on every line, and this runs once per call set-up on
 * text werift generated (well-formed, one attribute per line).
 */
export interface AudioLine {
  /** payload types in m-line order */
  payloads: number[];
  /** rtpmap encoding names by payload type, upper case */
  names: Map<number, string>;
  /** the m-line's a=sendrecv / sendonly / recvonly / inactive, undefined when it has none */
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' | undefined;
}

const DIRECTIONS = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

export function readAudioLine(sdp: string): AudioLine | undefined {
  let found: AudioLine | undefined;
  for (const raw of sdp.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('m=')) {
      if (found) break;
      const [type, port, , ...payloads] = line.slice(2).split(' ');
      if (type === 'audio' && Number(port) !== 0) found = { payloads: payloads.filter((p) => p !== '').map(Number), names: new Map(), direction: undefined };
      continue;
    }
    if (!line.startsWith('a=')) continue;
    const attr = line.slice(2);
    if (!found) continue;
    if (DIRECTIONS.has(attr)) {
      found.direction = attr as AudioLine['direction'];
      continue;
    }
    if (attr.startsWith('rtpmap:')) {
      const m = /^rtpmap:(\d+) ([^/\s]+)/.exec(attr);
      if (m) found.names.set(Number(m[1]), m[2]!.toUpperCase());
    }
  }
  return found;
}
