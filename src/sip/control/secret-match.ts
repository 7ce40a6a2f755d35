import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Whether the secret an app sent on the drachtio control port is the configured one, compared in
 * constant time: both are hashed to equal-length SHA-256 digests first, so neither the position of the
 * first differing byte nor the length of the configured secret shows in the answer's timing.
 */
export function secretMatches(offered: string | undefined, configured: string): boolean {
  const a = createHash('sha256').update(offered ?? '', 'utf8').digest();
  const b = createHash('sha256').update(configured, 'utf8').digest();
  return timingSafeEqual(a, b) && offered !== undefined;
}
