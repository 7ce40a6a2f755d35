import { randomBytes } from 'node:crypto';
import { SipHeaders } from '../message/sip-headers';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { parseNameAddr, tagOf, withTag } from '../message/name-addr';
import { parseSipUri, formatSipUri } from '../message/sip-uri';

export const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 183: 'Session Progress', 200: 'OK', 202: 'Accepted', 400: 'Bad Request',
  404: 'Not Found', 408: 'Request Timeout', 481: 'Call/Transaction Does Not Exist', 483: 'Too Many Hops',
  487: 'Request Terminated', 491: 'Request Pending', 500: 'Server Internal Error', 503: 'Service Unavailable',
};

export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

export function newBranch(): string {
  return `z9hG4bK${randomBytes(10).toString('hex')}`;
}

/** A response to `req` with Via/From/To/Call-ID/CSeq copied (RFC 3261 §8.2.6.2); To gets `toTag` unless 100. */
export function makeResponse(req: SipRequest, status: number, toTag?: string, reason?: string): SipResponse {
  const h = new SipHeaders();
  for (const v of req.headers.getAll('Via')) h.append('Via', v);
  h.append('From', req.headers.get('From') ?? '');
  const to = req.headers.get('To') ?? '';
  h.append('To', status > 100 && toTag ? withTag(to, toTag) : to);
  h.append('Call-ID', req.headers.get('Call-ID') ?? '');
  h.append('CSeq', req.headers.get('CSeq') ?? '');
  return { kind: 'response', status, reason: reason ?? REASONS[status] ?? 'Unknown', headers: h, body: Buffer.alloc(0) };
}

/** drachtio fills Content-Type for bodies that look like SDP. */
export function sniffContentType(headers: SipHeaders, body: Buffer): void {
  if (body.length && !headers.has('Content-Type') && body.subarray(0, 3).toString('latin1') === 'v=0') {
    headers.set('Content-Type', 'application/sdp');
  }
}

/** Replaces a `localhost` host in a From/Contact value by the engine's own address (drachtio behaviour). */
export function replaceLocalhost(value: string, host: string, port: number, transport: string | undefined): string {
  const n = parseNameAddr(value);
  if (!n) return value;
  const u = parseSipUri(n.uri);
  if (!u || u.host.toLowerCase() !== 'localhost') return value;
  u.host = host;
  u.port = port;
  if (transport && transport !== 'udp' && !u.params.has('transport')) u.params.set('transport', transport);
  const uri = formatSipUri(u);
  if (n.bracketed) return value.replace(n.uri, uri);
  // addr-spec form: params after the URI belong to the header, so rebuild as name-addr
  let s = `<${uri}>`;
  for (const [k, v] of n.params) s += v === null ? `;${k}` : `;${k}=${v}`;
  return s;
}

/** 503 with `Retry-After` (RFC 3261 §21.5.4): the client may try again after `retryAfterS` seconds. */
export function makeUnavailable(req: SipRequest, retryAfterS: number, toTag?: string, reason?: string): SipResponse {
  const res = makeResponse(req, 503, toTag, reason);
  res.headers.append('Retry-After', String(retryAfterS));
  return res;
}

export { tagOf };

/** Headers an app may not set on requests and responses (the engine owns them). */
export const ENGINE_OWNED = new Set(['via', 'content-length', 'record-route', 'rseq']);
