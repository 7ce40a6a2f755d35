import { setFlagsFromString } from 'node:v8';
import { envInt, type Env } from '../../common/env';

/**
 * How far V8 lets ferry media's old generation grow past what the last full collection kept before the next
 * one, in per cent (V8's `--heap-growing-percent`). V8's own rule lets a heap grow by a factor of up to 4
 * (at least 1.1, depending on how busy the collector was), so a media server whose live calls hold tens of
 * MiB carries as much again of garbage between collections, and that is resident memory per call.
 * A smaller step collects more often (the marking runs mostly on helper threads, concurrently) and keeps
 * the resident memory nearer to what the calls hold. Process-wide (every relay worker's heap too);
 * FERRY_MEDIA_HEAP_GROWING_PERCENT, 0 = V8's own rule. docs/media-server.md, "Memory settings".
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 25;

/** The setting from the environment (0 = V8's own rule), checked: a whole number from 0 to 400. */
export function heapGrowingPercent(env: Env = process.env): number {
  const n = envInt('FERRY_MEDIA_HEAP_GROWING_PERCENT', DEFAULT_HEAP_GROWING_PERCENT, env);
  if (!Number.isInteger(n) || n < 0 || n > 400) throw new Error(`FERRY_MEDIA_HEAP_GROWING_PERCENT=${n} must be a whole number from 0 to 400`);
  return n;
}

/** Applies the setting to this process (V8 reads the flag at each collection); returns what was applied. */
export function applyHeapGrowingPercent(env: Env = process.env): number {
  const n = heapGrowingPercent(env);
  if (n > 0) setFlagsFromString(`--heap-growing-percent=${n}`);
  return n;
}
