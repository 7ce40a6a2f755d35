import { FRAME_SAMPLES } from './mix-input';

/** A frame of silence, never written: what a mix subtracts when it leaves nobody out. */
export const SILENCE_FRAME: Int16Array = new Int16Array(FRAME_SAMPLES);

/**
 * One frame of a mix into `out`: `sum - minus` sample by sample, clipped to 16 bits. Returns how many
 * samples were clipped. Allocates nothing (the mixers call it for every port every 20 ms).
 */
export function clipFrame(sum: Int32Array, minus: Int16Array, out: Int16Array): number {
  let clipped = 0;
  for (let i = 0; i < FRAME_SAMPLES; i++) {
    const v = sum[i]! - minus[i]!;
    if (v > 32767) {
      out[i] = 32767;
      clipped++;
    } else if (v < -32768) {
      out[i] = -32768;
      clipped++;
    } else out[i] = v;
  }
  return clipped;
}
