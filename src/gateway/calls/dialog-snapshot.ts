import { DialogSnapshot } from '../state/call-record';

interface SrfMessageLike {
  get(name: string): string | undefined;
  has(name: string): boolean;
  getParsedHeader(name: string): unknown;
}

interface SrfDialogLike {
  id: string;
  type?: string;
  sip: { callId: string; localTag: string; remoteTag: string };
  local: { uri?: string };
  remote: { uri?: string };
  req?: SrfMessageLike;
  res?: SrfMessageLike;
}

function uriOf(header: string | undefined): string {
  if (!header) return '';
  const m = /<([^>]+)>/.exec(header);
  return (m ? m[1]! : header.split(';')[0]!).trim();
}

/**
 * The identifiers of a live drachtio-srf dialog, enough for another gateway to send an in-dialog
 * request on it later (Call-ID, tags, CSeq, remote target, route set).
 */
export function snapshotDialog(d: SrfDialogLike, role: 'uas' | 'uac'): DialogSnapshot {
  const req = d.req;
  const res = d.res;
  const cseq = Number(/^\s*(\d+)/.exec(req?.get('CSeq') ?? '')?.[1] ?? 0);
  // route set: from the 2xx's Record-Route (reversed) as UAC, from the request's as UAS (RFC 3261 12.1)
  const rr = role === 'uac' ? res?.get('Record-Route') : req?.get('Record-Route');
  let routeSet = rr ? rr.split(/,(?=\s*<)/).map((s) => s.trim()).filter(Boolean) : [];
  if (role === 'uac') routeSet = routeSet.reverse();
  const from = uriOf(req?.get('From'));
  const to = uriOf(req?.get('To'));
  return {
    dialogId: d.id,
    callId: d.sip.callId,
    localTag: d.sip.localTag,
    remoteTag: d.sip.remoteTag,
    localCseq: role === 'uac' ? cseq : 0,
    remoteTarget: d.remote.uri ?? '',
    routeSet,
    localUri: role === 'uac' ? from : to,
    remoteUri: role === 'uac' ? to : from,
    role,
  };
}
