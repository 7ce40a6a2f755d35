/**
 * Tones for audio tests: sine samples, and the Goertzel filter to find which of a set of frequencies
 * dominates a block of samples (how a test "hears" a tone in decoded G.711 or in a recorded WAV).
 */

/** `count` samples of a sine at `hz` (amplitude `amplitude` of full scale) at `rate`, starting at sample `from`. */
export function sineSamples(hz: number, rate: number, count: number, amplitude = 0.5, from = 0): Int16Array {
  const out = new Int16Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.round(Math.sin((2 * Math.PI * hz * (from + i)) / rate) * amplitude * 32767);
  return out;
}

/** Goertzel power of `hz` in `samples` at `rate`, normalised by the block length. */
export function goertzelPower(samples: ArrayLike<number>, rate: number, hz: number): number {
  const k = (2 * Math.PI * hz) / rate;
  const coeff = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < samples.length; i++) {
    const s0 = samples[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.length * samples.length);
}

/** The frequency among 100..3900 Hz (step `step`) with the most Goertzel power, and its share of the scanned power. */
export function dominantFrequency(samples: ArrayLike<number>, rate: number, step = 20): { hz: number; share: number } {
  let best = 0;
  let bestHz = 0;
  let total = 0;
  for (let hz = 100; hz < Math.min(3900, rate / 2); hz += step) {
    const p = goertzelPower(samples, rate, hz);
    total += p;
    if (p > best) {
      best = p;
      bestHz = hz;
    }
  }
  return { hz: bestHz, share: total > 0 ? best / total : 0 };
}

/** Root-mean-square level of `samples` (full scale 32768). */
export function rms(samples: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < samples.length; i++) acc += samples[i]! * samples[i]!;
  return samples.length ? Math.sqrt(acc / samples.length) : 0;
}
