import { KMediaObject } from './kurento-types';

export type ProbeResult = { present: true } | { present: false; detail: string };

/** KMS / ferry media error code for an unknown object id */
const MEDIA_OBJECT_NOT_FOUND = 40101;

/**
 * Does the media server still have this object? One cheap request on it (getName). An error
 * answer (normally MEDIA_OBJECT_NOT_FOUND: the server restarted, or someone released it) or no
 * answer within `timeoutMs` means the object cannot be counted on.
 */
export function probeMediaObject(o: KMediaObject, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ present: false, detail: `${o.id}: no answer within ${timeoutMs} ms` }), timeoutMs);
    try {
      o.getName((err) => {
        clearTimeout(timer);
        if (!err) return resolve({ present: true });
        const code = (err as { code?: number }).code;
        resolve({ present: false, detail: `${o.id}: ${code === MEDIA_OBJECT_NOT_FOUND ? 'not found' : `${code ?? ''} ${err.message}`.trim()}` });
      });
    } catch (err) {
      clearTimeout(timer);
      resolve({ present: false, detail: `${o.id}: ${(err as Error).message}` });
    }
  });
}
