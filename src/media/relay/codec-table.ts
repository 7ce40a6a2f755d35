/**
 * The payload types a leg negotiated, in both directions, keyed by codec name (`pcmu/8000`,
 * `pcma/8000`, `telephone-event/8000`: lower-case encoding name + clock rate). Elements map payload
 * types between legs by codec name; there is no transcoding, so a packet whose codec the sink did not
 * negotiate is dropped.
 */
export interface CodecTable {
  /** Payload type the peer sends -> codec key (index 0..127; undefined = not negotiated). */
  readonly receive: ReadonlyArray<string | undefined>;
  /** Codec key -> payload type we must use when sending to the peer. */
  readonly send: ReadonlyMap<string, number>;
  /** Clock rate of each codec key (for timestamp continuity). */
  readonly clockRates: ReadonlyMap<string, number>;
}

export function codecKey(encodingName: string, clockRate: number): string {
  return `${encodingName.toLowerCase()}/${clockRate}`;
}

export const EMPTY_CODECS: CodecTable = { receive: [], send: new Map(), clockRates: new Map() };

/** Build a table from `[pt, codecKey]` pairs; the same PT numbers are used both ways (the usual SDP rule). */
export function codecTableFrom(pairs: ReadonlyArray<readonly [number, string]>, sendPairs = pairs): CodecTable {
  const receive: (string | undefined)[] = new Array(128).fill(undefined);
  const clockRates = new Map<string, number>();
  for (const [pt, key] of pairs) {
    if (pt >= 0 && pt < 128) receive[pt] = key;
    clockRates.set(key, Number(key.split('/')[1]) || 8000);
  }
  const send = new Map<string, number>();
  for (const [pt, key] of sendPairs) {
    if (!send.has(key)) send.set(key, pt);
    clockRates.set(key, Number(key.split('/')[1]) || 8000);
  }
  return { receive, send, clockRates };
}
