import { createHash, randomBytes } from 'node:crypto';

/**
 * The few pieces of SIP text handling the soak's webphone user agent needs: parse one message,
 * build requests and responses, and answer a digest challenge (RFC 2617, MD5, qop=auth).
 */
export interface SipText {
  startLine: string;
  /** header values by lower-case long name, in order */
  headers: Map<string, string[]>;
  body: string;
}

const COMPACT: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' };

export function parseSip(text: string): SipText | undefined {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return undefined;
  const [startLine, ...lines] = text.slice(0, split).split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const raw = line.slice(0, colon).trim().toLowerCase();
    const name = COMPACT[raw] ?? raw;
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return { startLine: startLine!, headers, body: text.slice(split + 4) };
}

export function header(m: SipText, name: string): string | undefined {
  return m.headers.get(name)?.[0];
}

export function statusOf(m: SipText): number {
  return m.startLine.startsWith('SIP/2.0') ? Number(m.startLine.split(' ')[1]) : 0;
}

export function methodOf(m: SipText): string {
  return m.startLine.startsWith('SIP/2.0') ? (header(m, 'cseq') ?? '').split(' ')[1] ?? '' : m.startLine.split(' ')[0]!;
}

export function tagOf(value: string | undefined): string {
  return /;\s*tag=([^;>\s]+)/i.exec(value ?? '')?.[1] ?? '';
}

export function uriOf(value: string): string {
  const angle = /<([^>]+)>/.exec(value);
  return (angle ? angle[1]! : value.split(';')[0]!).trim();
}

export function token(bytes = 6): string {
  return randomBytes(bytes).toString('hex');
}

export function buildMessage(startLine: string, headers: [string, string][], body = ''): string {
  return [startLine, ...headers.map(([n, v]) => `${n}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** The Authorization / Proxy-Authorization value answering `challenge` (a WWW-/Proxy-Authenticate value). */
export function digestAnswer(challenge: string, creds: { user: string; password: string }, method: string, uri: string): string {
  const params: Record<string, string> = {};
  const re = /([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(challenge))) params[p[1]!.toLowerCase()] = p[2] ?? p[3]!;
  const realm = params.realm ?? '';
  const nonce = params.nonce ?? '';
  const ha1 = md5(`${creds.user}:${realm}:${creds.password}`);
  const ha2 = md5(`${method}:${uri}`);
  const qop = params.qop?.split(',').map((q) => q.trim()).includes('auth') ? 'auth' : undefined;
  const cnonce = token(8);
  const nc = '00000001';
  const response = qop ? md5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
  const fields = [`username="${creds.user}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`, `response="${response}"`, 'algorithm=MD5'];
  if (qop) fields.push(`qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`);
  if (params.opaque) fields.push(`opaque="${params.opaque}"`);
  return `Digest ${fields.join(', ')}`;
}
