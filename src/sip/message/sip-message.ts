import { SipHeaders } from './sip-headers';

/** A parsed SIP request (RFC 3261 §7.1). The body is raw bytes; Content-Length is recomputed on send. */
export interface SipRequest {
  readonly kind: 'request';
  method: string;
  uri: string;
  headers: SipHeaders;
  body: Buffer;
  /** the Request-Line's SIP-Version when it is not SIP/2.0 (such a request is answered 505) */
  version?: string;
}

/** A parsed SIP response (RFC 3261 §7.2). */
export interface SipResponse {
  readonly kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string | undefined): CSeq | undefined {
  if (!value) return undefined;
  const m = /^\s*(\d{1,10})\s+([A-Za-z0-9!%*_+`'~.-]+)\s*$/.exec(value);
  if (!m) return undefined;
  const seq = Number(m[1]);
  if (seq > 2 ** 31 - 1) return undefined;
  return { seq, method: m[2].toUpperCase() };
}

export function cseqOf(msg: SipMessage): CSeq {
  const c = parseCSeq(msg.headers.get('CSeq'));
  if (!c) throw new Error('message has no valid CSeq');
  return c;
}

export function callIdOf(msg: SipMessage): string {
  return msg.headers.get('Call-ID') ?? '';
}
