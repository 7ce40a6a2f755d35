import type { Dialog } from '../dialog/dialog';
import { SipHeaders } from '../message/sip-headers';
import type { SipRequest } from '../message/sip-message';
import { cseqOf, callIdOf } from '../message/sip-message';
import { ENGINE_OWNED, sniffContentType } from './message-builders';

/**
 * RFC 3261 §12.2.1.1: R-URI = remote target, Route = route set, From/To/Call-ID from the dialog, next
 * local CSeq (an ACK reuses the INVITE's). The app's own headers and body are kept, except those the
 * engine owns. drachtio: srf's `sip:placeholder` R-URI is always replaced by the remote target.
 */
export function buildInDialogRequest(dialog: Dialog, method: string, appReq: SipRequest | undefined): SipRequest {
  const h = new SipHeaders();
  for (const r of dialog.routeSet) h.append('Route', r);
  h.append('Max-Forwards', '70');
  h.append('From', dialog.localParty);
  h.append('To', dialog.remoteParty);
  h.append('Call-ID', dialog.callId);
  let seq: number;
  if (method === 'ACK') seq = dialog.lastInviteCSeq ?? dialog.localCSeq;
  else seq = ++dialog.localCSeq;
  if (method === 'INVITE') dialog.lastInviteCSeq = seq;
  h.append('CSeq', `${seq} ${method}`);
  const skip = new Set([...ENGINE_OWNED, 'route', 'from', 'to', 'call-id', 'cseq', 'max-forwards']);
  if (appReq) for (const x of appReq.headers.list()) if (!skip.has(x.name.toLowerCase())) h.append(x.name, x.value);
  if ((method === 'INVITE' || method === 'UPDATE') && !h.has('Contact') && dialog.localContact) h.append('Contact', dialog.localContact);
  const body = appReq?.body ?? Buffer.alloc(0);
  sniffContentType(h, body);
  return { kind: 'request', method, uri: dialog.remoteTarget, headers: h, body };
}

/** RFC 3261 §9.1: a CANCEL for a pending INVITE (same R-URI, top Via, Route, From, To, Call-ID, CSeq number). */
export function buildCancel(invite: SipRequest, appReq: SipRequest | undefined): SipRequest {
  const h = new SipHeaders();
  h.append('Via', invite.headers.getAll('Via')[0]);
  for (const r of invite.headers.getAll('Route')) h.append('Route', r);
  h.append('Max-Forwards', '70');
  h.append('From', invite.headers.get('From') ?? '');
  h.append('To', invite.headers.get('To') ?? '');
  h.append('Call-ID', callIdOf(invite));
  h.append('CSeq', `${cseqOf(invite).seq} CANCEL`);
  if (appReq) for (const x of appReq.headers.list()) if (x.name.toLowerCase() === 'reason') h.append(x.name, x.value);
  return { kind: 'request', method: 'CANCEL', uri: invite.uri, headers: h, body: Buffer.alloc(0) };
}
