import { WebhookReceiver } from './webhook-config';
import { QueuedWebhook } from './webhook-queue';
import { webhookSignature } from './webhook-signature';

export type SendOutcome = { ok: true; status: number } | { ok: false; status?: number; error: string };

/**
 * POSTs one event to a receiver, signed, bounded by the receiver's timeout (connect, send and
 * answer together) and by `stop` (the gateway stopping). A 2xx answer is delivery; anything else (another status, a refused connection,
 * the timeout) is a failure to retry. Redirects are not followed; the answer's body is not read.
 */
export async function sendWebhook(receiver: WebhookReceiver, item: QueuedWebhook, nowMs: number, attempt: number, stop?: AbortSignal): Promise<SendOutcome> {
  const timestamp = Math.floor(nowMs / 1000);
  try {
    const res = await fetch(receiver.url, {
      method: 'POST',
      redirect: 'manual',
      signal: stop ? AbortSignal.any([AbortSignal.timeout(receiver.timeoutMs), stop]) : AbortSignal.timeout(receiver.timeoutMs),
      headers: {
        'Content-Type': 'application/json',
        'User-Agent': 'ferry-webhooks/1',
        'X-Ferry-Event-Id': item.id,
        'X-Ferry-Event-Type': item.type,
        'X-Ferry-Timestamp': String(timestamp),
        'X-Ferry-Signature': webhookSignature(receiver.secret, timestamp, item.body),
        'X-Ferry-Attempt': String(attempt),
      },
      body: item.body,
    });
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    return { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const error = e.name === 'TimeoutError' ? `no answer within ${receiver.timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, error };
  }
}
