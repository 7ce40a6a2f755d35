import { parseParams } from './sip-uri';

/** A From/To/Contact/Route value: optional display name, URI, and header parameters (tag, expires...). */
export interface NameAddr {
  display: string | undefined;
  uri: string;
  params: Map<string, string | null>;
  /** true when the URI was written in <...> */
  bracketed: boolean;
}

export function parseNameAddr(value: string): NameAddr | undefined {
  const v = value.trim();
  if (!v) return undefined;
  const lt = indexOutsideQuotes(v, '<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    if (gt < 0) return undefined;
    let display: string | undefined = v.slice(0, lt).trim();
    if (display.startsWith('"') && display.endsWith('"') && display.length >= 2) display = display.slice(1, -1);
    if (!display) display = undefined;
    const uri = v.slice(lt + 1, gt).trim();
    if (!uri) return undefined;
    const rest = v.slice(gt + 1).trim();
    if (rest && !rest.startsWith(';')) return undefined;
    return { display, uri, params: parseParams(rest.split(';').slice(1)), bracketed: true };
  }
  if (v.startsWith('"')) return undefined;
  if (v === '*') return { display: undefined, uri: '*', params: new Map(), bracketed: false };
  const [uri, ...ps] = v.split(';');
  if (!uri.includes(':')) return undefined;
  return { display: undefined, uri: uri.trim(), params: parseParams(ps), bracketed: false };
}

export function formatNameAddr(n: NameAddr): string {
  let s = n.display !== undefined ? `"${n.display}" <${n.uri}>` : `<${n.uri}>`;
  for (const [k, v] of n.params) s += v === null ? `;${k}` : `;${k}=${v}`;
  return s;
}

export function tagOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const n = parseNameAddr(value);
  const t = n?.params.get('tag');
  return t === null || t === undefined || t === '' ? undefined : t;
}

/** Adds ;tag=... to a From/To value unless it already has one. */
export function withTag(value: string, tag: string): string {
  return tagOf(value) ? value : `${value};tag=${tag}`;
}

function indexOutsideQuotes(s: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && quoted) { i++; continue; }
    if (s[i] === '"') quoted = !quoted;
    else if (!quoted && s[i] === ch) return i;
  }
  return -1;
}
