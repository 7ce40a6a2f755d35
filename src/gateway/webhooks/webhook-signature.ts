import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures (docs/webhooks.md): `X-Ferry-Signature: v1=<hex>`, the HMAC-SHA256 with the
 * receiver's secret over `<timestamp>.<body>`, where timestamp is `X-Ferry-Timestamp` (unix
 * seconds when the POST was sent; each retry is signed afresh).
 */
export const SIGNATURE_VERSION = 'v1';
/** how far a receiver should accept a timestamp from its own clock */
export const DEFAULT_REPLAY_WINDOW_S = 300;

export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `${SIGNATURE_VERSION}=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export type VerifyResult = { ok: true } | { ok: false; problem: 'no-timestamp' | 'stale-timestamp' | 'no-signature' | 'bad-signature' };

/**
 * What a receiver does: the timestamp is within the replay window of its clock, and one of the
 * header's `v1=` signatures (comma-separated) matches, compared in constant time.
 */
export function verifyWebhook(opts: { secret: string; body: string; timestamp: string | undefined; signature: string | undefined; nowMs?: number; windowS?: number }): VerifyResult {
  const ts = Number(opts.timestamp);
  if (!opts.timestamp || !/^\d{1,12}$/.test(opts.timestamp) || !Number.isFinite(ts)) return { ok: false, problem: 'no-timestamp' };
  const now = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  if (Math.abs(now - ts) > (opts.windowS ?? DEFAULT_REPLAY_WINDOW_S)) return { ok: false, problem: 'stale-timestamp' };
  if (!opts.signature) return { ok: false, problem: 'no-signature' };
  const expected = Buffer.from(webhookSignature(opts.secret, ts, opts.body));
  for (const part of opts.signature.split(',')) {
    const given = Buffer.from(part.trim());
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, problem: 'bad-signature' };
}
