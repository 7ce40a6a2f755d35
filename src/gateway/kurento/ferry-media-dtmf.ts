import type { KMediaObject } from './kurento-types';

/**
 * ferry media's `sendDtmf` extension (docs/kurento-protocol.md) called through the unmodified npm
 * kurento-client. The client generates methods only for the operations in its module definitions, so
 * this goes through `MediaObject.prototype._invoke(transaction, operation, params, callback)` — the
 * internal every generated method of kurento-client-core calls (it sends the same JSON-RPC `invoke`
 * on the client's own WebSocket session, with the client's reconnect and request queue).
 * test/unit/gateway-kurento-invoke-shape.test.ts pins that member on the installed kurento-client.
 */

/** The private member this module relies on, as kurento-client-core 7.x defines it. */
export const KURENTO_CLIENT_INVOKE = '_invoke';

/** Kurento's answer to an operation the server does not know (KMS and ferry media: MALFORMED_TRANSACTION). */
const KURENTO_MALFORMED_TRANSACTION = 40008;
const KURENTO_METHOD_NOT_FOUND = 40105;
/** ferry media's answer when the peer did not negotiate telephone-event/8000. */
export const KURENTO_UNSUPPORTED_MEDIA_TYPE = 40005;

export interface DtmfToneRequest {
  tones: string;
  durationMs: number;
  gapMs?: number;
}

export type DtmfOutcome =
  /** queued on the media server; `untilMs` until the last tone has been sent */
  | { ok: true; untilMs: number }
  /** the media server has no `sendDtmf` (a real KMS): the caller may fall back to SIP INFO */
  | { ok: false; reason: 'no-extension'; detail: string }
  /** the endpoint's peer did not negotiate telephone-event/8000 */
  | { ok: false; reason: 'not-negotiated'; detail: string };

type InvokeFn = (transaction: unknown, operation: string, params: Record<string, unknown>, callback: (err: unknown, value: unknown) => void) => unknown;

/** Send an operation kurento-client has no generated method for, on the object's own session. */
export function invokeOperation<T>(obj: KMediaObject, operation: string, params: Record<string, unknown>): Promise<T> {
  const fn = (obj as unknown as Record<string, unknown>)[KURENTO_CLIENT_INVOKE];
  if (typeof fn !== 'function') {
    return Promise.reject(new Error(`kurento-client MediaObject has no ${KURENTO_CLIENT_INVOKE}(): cannot call the ferry extension '${operation}'`));
  }
  return new Promise<T>((resolve, reject) => {
    (fn as InvokeFn).call(obj, undefined, operation, params, (err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

/** True when the server refused `operation` because it does not know it (KMS without ferry's extensions). */
export function isUnknownOperation(err: unknown, operation: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  const known = e.code === KURENTO_MALFORMED_TRANSACTION || e.code === KURENTO_METHOD_NOT_FOUND;
  return known && typeof e.message === 'string' && e.message.includes(`'${operation}'`);
}

/**
 * Ask the endpoint (RtpEndpoint or WebRtcEndpoint) to send RFC 4733 events to its peer. Other errors
 * (the leg ended, a bad parameter, the connection) are thrown as they came.
 */
export async function sendDtmfOnEndpoint(ep: KMediaObject, req: DtmfToneRequest): Promise<DtmfOutcome> {
  const params: Record<string, unknown> = { tones: req.tones, durationMs: req.durationMs };
  if (req.gapMs !== undefined) params.gapMs = req.gapMs;
  try {
    const untilMs = await invokeOperation<number>(ep, 'sendDtmf', params);
    return { ok: true, untilMs: typeof untilMs === 'number' ? untilMs : 0 };
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (isUnknownOperation(err, 'sendDtmf')) return { ok: false, reason: 'no-extension', detail: message };
    if ((err as { code?: unknown }).code === KURENTO_UNSUPPORTED_MEDIA_TYPE) return { ok: false, reason: 'not-negotiated', detail: message };
    throw err;
  }
}
