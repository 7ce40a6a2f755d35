/**
 * Sample-rate conversion to the telephone rate (8 kHz) for files recorded at other rates: a windowed-sinc
 * low-pass (cut-off a little below the lower Nyquist frequency, Blackman window, 8 lobes each side)
 * evaluated through a polyphase table of 256 fractional positions, each phase normalised to unit DC gain.
 * Runs once per file when it is loaded, never per packet, and gives the event loop back every
 * YIELD_EVERY output samples so a long file never holds up the packets of running calls.
 */
const PHASES = 256;
const LOBES = 8;
const YIELD_EVERY = 4000;

export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function resampleTo(input: Float32Array, fromRate: number, toRate: number): Promise<Float32Array> {
  if (fromRate === toRate) return input;
  const ratio = fromRate / toRate; // input samples per output sample
  // cut-off relative to the input's Nyquist frequency (1 = fromRate / 2)
  const cutoff = Math.min(1, toRate / fromRate) * 0.92;
  const halfWidth = LOBES / cutoff;
  const m = Math.ceil(halfWidth);
  const taps = 2 * m;
  const table = new Float32Array((PHASES + 1) * taps);
  for (let p = 0; p <= PHASES; p++) {
    const frac = p / PHASES;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const x = frac - (j - m + 1); // distance from the output instant to input sample k0 + (j - m + 1)
      const v = Math.abs(x) >= halfWidth ? 0 : cutoff * sinc(cutoff * x) * blackman(x / halfWidth);
      table[p * taps + j] = v;
      sum += v;
    }
    if (sum !== 0) for (let j = 0; j < taps; j++) table[p * taps + j]! /= sum;
  }
  const outLength = Math.floor((input.length * toRate) / fromRate);
  const out = new Float32Array(outLength);
  const last = input.length - 1;
  for (let n = 0; n < outLength; n++) {
    if (n % YIELD_EVERY === YIELD_EVERY - 1) await yieldToEventLoop();
    const t = n * ratio;
    const k0 = Math.floor(t);
    const p = Math.round((t - k0) * PHASES);
    const base = p * taps;
    let acc = 0;
    for (let j = 0; j < taps; j++) {
      const k = k0 + j - m + 1;
      if (k < 0 || k > last) continue;
      acc += input[k]! * table[base + j]!;
    }
    out[n] = acc;
  }
  return out;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

/** Blackman window over u in [-1, 1]. */
function blackman(u: number): number {
  const a = Math.PI * (u + 1);
  return 0.42 - 0.5 * Math.cos(a) + 0.08 * Math.cos(2 * a);
}
