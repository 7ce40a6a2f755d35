/**
 * G.711 (ITU-T G.711) µ-law and A-law: 8-bit companded samples <-> 16-bit linear PCM, through tables
 * built once at load (256 entries to decode, 65 536 to encode), so the per-packet path is a lookup.
 */
const MULAW_BIAS = 0x84;
const MULAW_CLIP = 32635;

function mulawFromLinear(sample: number): number {
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > MULAW_CLIP) s = MULAW_CLIP;
  s += MULAW_BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function linearFromMulaw(code: number): number {
  const u = ~code & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

/** Segment end points of A-law's 13-bit magnitude. */
const ALAW_SEGMENT_ENDS = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

function alawFromLinear(sample: number): number {
  let v = sample >> 3;
  let mask: number;
  if (v >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    v = -v - 1;
  }
  let segment = 0;
  while (segment < 8 && v > ALAW_SEGMENT_ENDS[segment]!) segment++;
  if (segment >= 8) return 0x7f ^ mask;
  const mantissa = segment < 2 ? (v >> 1) & 0x0f : (v >> segment) & 0x0f;
  return ((segment << 4) | mantissa) ^ mask;
}

function linearFromAlaw(code: number): number {
  const a = code ^ 0x55;
  let t = (a & 0x0f) << 4;
  const segment = (a & 0x70) >> 4;
  if (segment === 0) t += 8;
  else t = (t + 0x108) << (segment - 1);
  return a & 0x80 ? t : -t;
}

function decodeTable(f: (code: number) => number): Int16Array {
  const t = new Int16Array(256);
  for (let i = 0; i < 256; i++) t[i] = f(i);
  return t;
}

function encodeTable(f: (sample: number) => number): Uint8Array {
  const t = new Uint8Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = f(i >= 32768 ? i - 65536 : i);
  return t;
}

export const MULAW_TO_LINEAR = decodeTable(linearFromMulaw);
export const ALAW_TO_LINEAR = decodeTable(linearFromAlaw);
const LINEAR_TO_MULAW = encodeTable(mulawFromLinear);
const LINEAR_TO_ALAW = encodeTable(alawFromLinear);

export type G711Law = 'mulaw' | 'alaw';

/** Encode `count` samples of `pcm` from `offset` into `out` (from `outOffset`); samples past the end are silence. */
export function encodeG711(law: G711Law, pcm: Int16Array, offset: number, count: number, out: Buffer, outOffset: number): void {
  const table = law === 'mulaw' ? LINEAR_TO_MULAW : LINEAR_TO_ALAW;
  for (let i = 0; i < count; i++) {
    const j = offset + i;
    const s = j < pcm.length ? pcm[j]! : 0;
    out[outOffset + i] = table[s & 0xffff]!;
  }
}

/** Decode G.711 bytes into linear samples written to `out` from `outOffset`. */
export function decodeG711(law: G711Law, bytes: Uint8Array, out: Int16Array, outOffset: number): void {
  const table = law === 'mulaw' ? MULAW_TO_LINEAR : ALAW_TO_LINEAR;
  for (let i = 0; i < bytes.length; i++) out[outOffset + i] = table[bytes[i]!]!;
}
