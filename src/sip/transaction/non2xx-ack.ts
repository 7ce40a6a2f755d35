import { SipHeaders } from '../message/sip-headers';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { cseqOf } from '../message/sip-message';

/** RFC 3261 §17.1.1.3: the ACK a client INVITE transaction sends for a 3xx-6xx response. */
export function buildNon2xxAck(invite: SipRequest, response: SipResponse): SipRequest {
  const h = new SipHeaders();
  h.append('Via', invite.headers.getAll('Via')[0]);
  for (const r of invite.headers.getAll('Route')) h.append('Route', r);
  h.append('Max-Forwards', '70');
  h.append('From', invite.headers.get('From') ?? '');
  h.append('To', response.headers.get('To') ?? invite.headers.get('To') ?? '');
  h.append('Call-ID', invite.headers.get('Call-ID') ?? '');
  h.append('CSeq', `${cseqOf(invite).seq} ACK`);
  return { kind: 'request', method: 'ACK', uri: invite.uri, headers: h, body: Buffer.alloc(0) };
}
