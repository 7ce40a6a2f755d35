/** Canonical SIP header names and the RFC 3261 §7.3.3 compact forms. */
const COMPACT: Record<string, string> = {
  i: 'Call-ID', m: 'Contact', e: 'Content-Encoding', l: 'Content-Length', c: 'Content-Type',
  f: 'From', s: 'Subject', k: 'Supported', t: 'To', v: 'Via', o: 'Event', r: 'Refer-To',
  b: 'Referred-By', u: 'Allow-Events', x: 'Session-Expires', a: 'Accept-Contact',
  j: 'Reject-Contact', d: 'Request-Disposition', y: 'Identity',
};

const SPECIAL: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate', rseq: 'RSeq', rack: 'RAck',
  'mime-version': 'MIME-Version', 'min-se': 'Min-SE', 'p-asserted-identity': 'P-Asserted-Identity',
  'p-preferred-identity': 'P-Preferred-Identity',
};

/** Headers whose values may be written as a comma-separated list (RFC 3261 §7.3.1). */
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require',
  'proxy-require', 'unsupported', 'accept', 'accept-encoding', 'accept-language', 'allow-events', 'path']);

export function canonicalHeaderName(raw: string): string {
  const lower = raw.trim().toLowerCase();
  if (lower.length === 1 && COMPACT[lower]) return COMPACT[lower];
  if (SPECIAL[lower]) return SPECIAL[lower];
  return lower.split('-').map((p) => (p ? p[0].toUpperCase() + p.slice(1) : p)).join('-');
}

export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(name.toLowerCase());
}
