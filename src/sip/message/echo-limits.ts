import type { SipResponse } from './sip-message';
import { SipHeaders } from './sip-headers';
import { tagOf } from './name-addr';
import { branchOf } from './via';

/**
 * Every response to a request carries the request's Via headers, From, To, Call-ID and CSeq back to the
 * address the request names (RFC 3261 §8.2.6.2): what a request puts there is reflected, over UDP to
 * whatever source address it forges, and for an INVITE twice (100 Trying, then the final answer, which
 * is retransmitted until acknowledged). RFC 3261 sets no length for these values; ferry sip refuses a new
 * request whose echoed values exceed these bounds before any transaction or app sees it (docs/security.md,
 * "Echoed header values"). The bounds are far above what phones, JsSIP and proxies send (tokens of 10 to
 * 80 characters; RFC 4475's "longreq" torture message, built to stress parsers, has a Call-ID of 141, a
 * From tag of 155 and a branch of 215 characters, 34 Vias and about 3 kB echoed in all).
 */
export const ECHO_LIMITS = {
  /** Call-ID, in bytes */
  callId: 256,
  /** the From tag and the To tag, each */
  tag: 256,
  /** the top Via's branch */
  branch: 256,
  /** the Via headers, From, To, Call-ID and CSeq together, as a response carries them */
  total: 8192,
} as const;

/** Why the values a response to these request headers would echo are over ECHO_LIMITS, or undefined. */
export function overLongEcho(headers: SipHeaders): string | undefined {
  const callId = headers.get('Call-ID') ?? '';
  if (Buffer.byteLength(callId) > ECHO_LIMITS.callId) return `Call-ID longer than ${ECHO_LIMITS.callId} bytes`;
  for (const name of ['From', 'To'] as const) {
    const tag = tagOf(headers.get(name));
    if (tag && Buffer.byteLength(tag) > ECHO_LIMITS.tag) return `${name} tag longer than ${ECHO_LIMITS.tag} bytes`;
  }
  const vias = headers.getAll('Via');
  const branch = branchOf(vias[0]);
  if (branch && Buffer.byteLength(branch) > ECHO_LIMITS.branch) return `Via branch longer than ${ECHO_LIMITS.branch} bytes`;
  let total = Buffer.byteLength(callId);
  for (const v of vias) total += Buffer.byteLength(v);
  for (const name of ['From', 'To', 'CSeq']) total += Buffer.byteLength(headers.get(name) ?? '');
  if (total > ECHO_LIMITS.total) return `Via, From, To, Call-ID and CSeq longer than ${ECHO_LIMITS.total} bytes together`;
  return undefined;
}

/** A value for the log: at most 64 characters of it and its length. */
export function forLog(value: string | undefined): string | undefined {
  if (value === undefined || value.length <= 64) return value;
  return `${value.slice(0, 64)}… (${value.length} characters)`;
}

/** Each value a refusal of an over-long request may carry back, at most this long. */
const REFUSAL_VALUE_BYTES = 512;

/**
 * The small 400 a request with over-long echoed values gets over a connection (TCP, TLS, WebSocket: its
 * source is the connection's peer, which cannot be forged): the top Via, From, To, Call-ID and CSeq only
 * where each is within its bound, the others left out, so the answer stays under about 2 kB whatever the
 * request held. Over UDP such a request is not answered at all.
 */
export function overLongRefusal(headers: SipHeaders, why: string): SipResponse {
  const h = new SipHeaders();
  const short = (v: string | undefined): v is string => v !== undefined && Buffer.byteLength(v) <= REFUSAL_VALUE_BYTES;
  const via = headers.getAll('Via')[0];
  const branch = branchOf(via);
  if (short(via) && (!branch || Buffer.byteLength(branch) <= ECHO_LIMITS.branch)) h.append('Via', via);
  for (const name of ['From', 'To']) {
    const v = headers.get(name);
    const tag = tagOf(v);
    if (short(v) && (!tag || Buffer.byteLength(tag) <= ECHO_LIMITS.tag)) h.append(name, v);
  }
  const callId = headers.get('Call-ID');
  if (callId !== undefined && Buffer.byteLength(callId) <= ECHO_LIMITS.callId) h.append('Call-ID', callId);
  const cseq = headers.get('CSeq');
  if (cseq !== undefined && cseq.length <= 64) h.append('CSeq', cseq);
  return { kind: 'response', status: 400, reason: `Bad Request (${why})`, headers: h, body: Buffer.alloc(0) };
}
