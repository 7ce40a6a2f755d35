/** One entry of a Contact header: the URI and its `expires` parameter. */
export interface ContactEntry {
  uri: string;
  expires?: number;
}

/**
 * Splits a Contact header value into entries (`<uri>;params, <uri>;params` or a bare URI),
 * respecting quoted display names and angle brackets. Bad input yields fewer entries, never throws.
 */
export function parseContacts(value: string): ContactEntry[] {
  const out: ContactEntry[] = [];
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of value) {
    if (ch === '"' && depth === 0) quoted = !quoted;
    if (!quoted && ch === '<') depth++;
    if (!quoted && ch === '>') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0 && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  for (const part of parts) {
    const bracket = /<([^>]*)>(.*)$/.exec(part);
    let uri: string;
    let params: string;
    if (bracket) {
      uri = bracket[1]!.trim();
      params = bracket[2]!;
    } else {
      const [u, ...rest] = part.trim().split(';');
      uri = (u ?? '').trim();
      params = rest.length ? `;${rest.join(';')}` : '';
    }
    if (!/^sips?:/i.test(uri)) continue;
    const exp = /;\s*expires\s*=\s*(\d+)/i.exec(params);
    out.push({ uri, ...(exp ? { expires: Number(exp[1]) } : {}) });
  }
  return out;
}
