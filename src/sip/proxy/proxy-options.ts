import { SipParseError } from '../message/sip-parse-error';
import { parseSipMessage } from '../message/sip-parser';
import { parseSipUri } from '../message/sip-uri';
import type { AppProxyMessage } from '../control/control-server';

/** At most this many destinations in one `proxy` message. */
export const MAX_PROXY_DESTINATIONS = 16;
/** At most this many branches in one proxy operation, counting targets added by followed redirects. */
export const MAX_PROXY_BRANCHES = 32;
const MAX_DESTINATION_CHARS = 1024;
/** Longest timeout an app may give (one hour, in ms). */
const MAX_TIMEOUT_MS = 3_600_000;

/** Headers an app may not set on a proxied request: the proxy and the upstream client own them. */
const NOT_SETTABLE = new Set(['via', 'from', 'to', 'call-id', 'cseq', 'contact', 'content-length', 'content-type', 'record-route',
  'route', 'max-forwards', 'rseq', 'rack', 'path']);

/** What the app asked for, checked. */
export interface ProxyOptions {
  destinations: string[];
  recordRoute: boolean;
  followRedirects: boolean;
  simultaneous: boolean;
  /** ms without any response from a destination before the next one is tried */
  provisionalTimeoutMs: number | undefined;
  /** ms without a final response from a destination before it is cancelled and the next one tried */
  finalTimeoutMs: number | undefined;
  /** extra headers for every forwarded request (name, value) */
  headers: Array<[string, string]>;
}

export class ProxyOptionsError extends Error {}

/** The parts of the app's `proxy` message that say how to proxy. */
export type ProxyCommand = Pick<AppProxyMessage, 'destinations' | 'remainInDialog' | 'followRedirects' | 'simultaneous'
  | 'provisionalTimeout' | 'finalTimeout' | 'raw'>;

/**
 * Reads a drachtio duration as srf passes `provisionalTimeout` / `finalTimeout`: `''` (none),
 * `1500ms`, `2s`. Anything else is refused with a clear error.
 */
export function parseProxyDuration(name: string, value: string): number | undefined {
  const v = value.trim();
  if (v === '' || v === 'undefined') return undefined;
  const m = /^(\d{1,7})(ms|s)$/.exec(v);
  if (!m) throw new ProxyOptionsError(`invalid ${name} '${v.slice(0, 32)}' (use e.g. 1500ms or 2s)`);
  const ms = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  if (ms < 1 || ms > MAX_TIMEOUT_MS) throw new ProxyOptionsError(`${name} must be between 1ms and ${MAX_TIMEOUT_MS / 1000}s`);
  return ms;
}

/** A destination as srf normalises it (`sip:` added to a bare host[:port]), checked to be a sip/sips URI. */
export function parseProxyDestination(value: string): string {
  const d = value.trim();
  if (!d) throw new ProxyOptionsError('empty destination');
  if (d.length > MAX_DESTINATION_CHARS) throw new ProxyOptionsError('destination too long');
  const uri = /^(sips?|tel):/i.test(d) ? d : `sip:${d}`;
  const u = parseSipUri(uri);
  if (!u || u.scheme === 'tel') throw new ProxyOptionsError(`destination '${d.slice(0, 80)}' is not a sip: URI ferry sip can route to`);
  return uri;
}

/** The app's extra headers from the SIP text of its `proxy` message (srf puts `opts.headers` there). */
export function appHeaders(raw: string): Array<[string, string]> {
  if (!raw.trim()) return [];
  let msg;
  try {
    msg = parseSipMessage(Buffer.from(raw, 'utf8'), true, true);
  } catch (err) {
    throw new ProxyOptionsError(`invalid SIP message in proxy request: ${err instanceof SipParseError ? err.message : String(err)}`);
  }
  const out: Array<[string, string]> = [];
  for (const h of msg.headers.list()) {
    if (NOT_SETTABLE.has(h.name.toLowerCase())) continue;
    if (/[\r\n]/.test(h.value)) continue;
    out.push([h.name, h.value]);
  }
  return out;
}

/** Checks an app's `proxy` message; throws ProxyOptionsError with a reason the app can read. */
export function proxyOptionsFrom(m: ProxyCommand): ProxyOptions {
  const dests = m.destinations.filter((d) => d.trim() !== '');
  if (dests.length === 0) throw new ProxyOptionsError('no destination to proxy to');
  if (dests.length > MAX_PROXY_DESTINATIONS) throw new ProxyOptionsError(`too many destinations (at most ${MAX_PROXY_DESTINATIONS})`);
  return {
    destinations: dests.map(parseProxyDestination),
    recordRoute: m.remainInDialog,
    followRedirects: m.followRedirects,
    simultaneous: m.simultaneous,
    provisionalTimeoutMs: parseProxyDuration('provisionalTimeout', m.provisionalTimeout),
    finalTimeoutMs: parseProxyDuration('finalTimeout', m.finalTimeout),
    headers: appHeaders(m.raw),
  };
}
