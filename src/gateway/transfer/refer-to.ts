/**
 * The target of a transfer as a REFER's Refer-To header names it (RFC 3515 §2.1), and the dialog a
 * Replaces header or `?Replaces=` URI header names (RFC 3891 §6.1). Pure parsing with size caps: a
 * value that does not fit is an error with a message, never a partial result.
 */

/** a Refer-To or Replaces value longer than this is refused */
export const MAX_REFER_TO_LENGTH = 1024;
const MAX_USER_LENGTH = 64;
const MAX_TOKEN_LENGTH = 256;

export interface DialogRef {
  callId: string;
  toTag: string;
  fromTag: string;
  earlyOnly: boolean;
}

export type ReferTarget =
  | { ok: true; user: string; uri: string; replaces?: DialogRef }
  | { ok: false; problem: string };

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * `<sip:8001@host;transport=udp?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>` → user 8001, replaces.
 * A bare number (`8001`) or `tel:8001` is taken as the number to dial.
 */
export function parseReferTo(value: string | undefined): ReferTarget {
  if (!value) return { ok: false, problem: 'no Refer-To header' };
  if (value.length > MAX_REFER_TO_LENGTH) return { ok: false, problem: 'Refer-To too long' };
  let v = value.trim();
  const angle = /<([^>]*)>/.exec(v);
  if (angle) v = angle[1]!.trim();
  else v = v.split(';')[0]!.trim();
  let uriPart = v;
  let headersPart = '';
  const q = v.indexOf('?');
  if (q >= 0) {
    uriPart = v.slice(0, q);
    headersPart = v.slice(q + 1);
  }
  let user: string | undefined;
  const sip = /^sips?:([^@;?]+)@[^;?]+/i.exec(uriPart);
  if (sip) user = decode(sip[1]!);
  else if (/^tel:/i.test(uriPart)) user = decode(uriPart.slice(4).split(';')[0]!);
  else if (/^[^:@;?\s]+$/.test(uriPart)) user = uriPart;
  else return { ok: false, problem: 'Refer-To is not a sip:, sips: or tel: URI with a user part' };
  if (!user || user.length > MAX_USER_LENGTH || !/^[A-Za-z0-9+*#._~!$&'()=,-]+$/.test(user)) return { ok: false, problem: 'Refer-To user part is empty, too long or not a plain number or name' };
  let replaces: DialogRef | undefined;
  for (const h of headersPart ? headersPart.split('&') : []) {
    const eq = h.indexOf('=');
    const name = (eq < 0 ? h : h.slice(0, eq)).toLowerCase();
    const raw = eq < 0 ? '' : h.slice(eq + 1);
    if (name === 'replaces') {
      const decoded = decode(raw);
      if (decoded === undefined) return { ok: false, problem: 'Replaces in Refer-To is badly escaped' };
      const parsed = parseReplaces(decoded);
      if (!parsed.ok) return parsed;
      replaces = parsed.ref;
    } else if (name === 'method' && raw.toUpperCase() !== 'INVITE') {
      return { ok: false, problem: `Refer-To asks for method ${raw.slice(0, 16)}; only INVITE is supported` };
    }
  }
  return { ok: true, user, uri: uriPart, ...(replaces ? { replaces } : {}) };
}

/** `callid;to-tag=a;from-tag=b[;early-only]` (RFC 3891 §6.1) */
export function parseReplaces(value: string | undefined): { ok: true; ref: DialogRef } | { ok: false; problem: string } {
  if (!value) return { ok: false, problem: 'empty Replaces' };
  if (value.length > MAX_REFER_TO_LENGTH) return { ok: false, problem: 'Replaces too long' };
  const [callId, ...params] = value.split(';').map((p) => p.trim());
  let toTag: string | undefined;
  let fromTag: string | undefined;
  let earlyOnly = false;
  for (const p of params) {
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (name === 'to-tag') toTag = val;
    else if (name === 'from-tag') fromTag = val;
    else if (name === 'early-only') earlyOnly = true;
  }
  const tokenOk = (t: string | undefined): t is string => !!t && t.length <= MAX_TOKEN_LENGTH && !/[\s<>"]/.test(t);
  if (!tokenOk(callId) || !tokenOk(toTag) || !tokenOk(fromTag)) return { ok: false, problem: 'Replaces needs a call-id, a to-tag and a from-tag' };
  return { ok: true, ref: { callId, toTag, fromTag, earlyOnly } };
}

/** the NOTIFY body (message/sipfrag) for a status line */
export function sipfrag(status: number, reason: string): string {
  return `SIP/2.0 ${status} ${reason.replace(/[\r\n]/g, ' ').slice(0, 100)}\r\n`;
}
