/** SIP URI (RFC 3261 §19.1) parsing and formatting; enough for routing: scheme, user, host, port, params. */
export interface SipUri {
  scheme: 'sip' | 'sips' | 'tel';
  user: string | undefined;
  password: string | undefined;
  host: string;
  port: number | undefined;
  params: Map<string, string | null>;
  headers: string | undefined;
}

export function parseSipUri(text: string): SipUri | undefined {
  const t = text.trim();
  const m = /^(sips?|tel):(.*)$/i.exec(t);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase() as SipUri['scheme'];
  let rest = m[2];
  let headers: string | undefined;
  const q = rest.indexOf('?');
  if (q >= 0) {
    headers = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (scheme === 'tel') {
    const [num, ...ps] = rest.split(';');
    if (!num) return undefined;
    return { scheme, user: num, password: undefined, host: '', port: undefined, params: parseParams(ps), headers };
  }
  let userinfo: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  const [hostport, ...ps] = rest.split(';');
  let host: string;
  let port: number | undefined;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) return undefined;
    host = hostport.slice(0, end + 1);
    const after = hostport.slice(end + 1);
    if (after) {
      if (!/^:\d{1,5}$/.test(after)) return undefined;
      port = Number(after.slice(1));
    }
  } else {
    const c = hostport.indexOf(':');
    host = c >= 0 ? hostport.slice(0, c) : hostport;
    if (c >= 0) {
      const p = hostport.slice(c + 1);
      if (!/^\d{1,5}$/.test(p)) return undefined;
      port = Number(p);
    }
  }
  if (!host || !/^[A-Za-z0-9.\-_[\]:]+$/.test(host)) return undefined;
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const c = userinfo.indexOf(':');
    user = c >= 0 ? userinfo.slice(0, c) : userinfo;
    password = c >= 0 ? userinfo.slice(c + 1) : undefined;
  }
  return { scheme, user, password, host, port, params: parseParams(ps), headers };
}

export function parseParams(parts: string[]): Map<string, string | null> {
  const params = new Map<string, string | null>();
  for (const p of parts) {
    if (!p.trim()) continue;
    const eq = p.indexOf('=');
    if (eq < 0) params.set(p.trim().toLowerCase(), null);
    else params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
  }
  return params;
}

export function formatSipUri(u: SipUri): string {
  let s = `${u.scheme}:`;
  if (u.user !== undefined) s += u.password !== undefined ? `${u.user}:${u.password}@` : `${u.user}@`;
  s += u.host;
  if (u.port !== undefined) s += `:${u.port}`;
  for (const [k, v] of u.params) s += v === null ? `;${k}` : `;${k}=${v}`;
  if (u.headers) s += `?${u.headers}`;
  return s;
}
