import { parseParams } from './sip-uri';

/** One Via element (RFC 3261 §20.42): SIP/2.0/UDP host:port;branch=...;rport;received=... */
export interface Via {
  protocol: string;
  host: string;
  port: number | undefined;
  params: Map<string, string | null>;
}

export function parseVia(value: string): Via | undefined {
  const m = /^\s*SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+)\s*(;.*)?$/i.exec(value);
  if (!m) return undefined;
  const hostport = m[2];
  let host = hostport;
  let port: number | undefined;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) return undefined;
    host = hostport.slice(0, end + 1);
    const rest = hostport.slice(end + 1);
    if (rest) {
      if (!/^:\d{1,5}$/.test(rest)) return undefined;
      port = Number(rest.slice(1));
    }
  } else {
    const c = hostport.lastIndexOf(':');
    if (c >= 0) {
      if (!/^\d{1,5}$/.test(hostport.slice(c + 1))) return undefined;
      host = hostport.slice(0, c);
      port = Number(hostport.slice(c + 1));
    }
  }
  if (!host) return undefined;
  return { protocol: m[1].toUpperCase(), host, port, params: parseParams((m[3] ?? '').split(';').slice(1)) };
}

export function formatVia(v: Via): string {
  let s = `SIP/2.0/${v.protocol} ${v.host}${v.port !== undefined ? `:${v.port}` : ''}`;
  for (const [k, val] of v.params) s += val === null ? `;${k}` : `;${k}=${val}`;
  return s;
}

export function branchOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const b = parseVia(value)?.params.get('branch');
  return b ? b : undefined;
}
