/** Kurento's error code for "cannot take more" (NOT_ENOUGH_RESOURCES): ferry media's quotas, a full KMS. */
export const KURENTO_NOT_ENOUGH_RESOURCES = 40009;

/** True when a media request failed because the media server is full (a later call may get through). */
export function isMediaOverloaded(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; data?: { type?: unknown } };
  return e.code === KURENTO_NOT_ENOUGH_RESOURCES || e.data?.type === 'NOT_ENOUGH_RESOURCES';
}
