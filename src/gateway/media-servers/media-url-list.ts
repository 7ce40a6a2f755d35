/**
 * FERRY_MEDIA_URL: one or more media servers (ferry media or Kurento Media Server) as a
 * comma-separated list of ws:// or wss:// URLs. One URL behaves exactly as a single server always
 * did; with several, each new call is placed on one of them (docs/gateway.md, "Several media servers").
 */

/** how many media servers one gateway may be given (each is one control connection and one /stats poll) */
export const MAX_MEDIA_SERVERS = 32;
const MAX_URL_LENGTH = 2048;

export type MediaUrlList = { ok: true; urls: string[] } | { ok: false; problems: string[] };

/** the form two spellings of one server compare equal in (scheme and host lower-cased, default port dropped) */
export function mediaUrlKey(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/**
 * Splits and checks the list; every problem is one line naming the variable. Empty entries (a
 * trailing comma) are ignored; the same server twice is refused (it would be counted as two).
 */
export function parseMediaUrlList(raw: string, name = 'FERRY_MEDIA_URL'): MediaUrlList {
  const prefix = `environment: ${name}=${JSON.stringify(raw.length > 300 ? `${raw.slice(0, 300)}...` : raw)}`;
  const entries = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) return { ok: false, problems: [`${prefix}: must be one or more ws:// or wss:// URLs, comma-separated`] };
  if (entries.length > MAX_MEDIA_SERVERS) return { ok: false, problems: [`${prefix}: ${entries.length} URLs given, at most ${MAX_MEDIA_SERVERS}`] };
  const problems: string[] = [];
  const which = (i: number): string => (entries.length === 1 ? '' : ` URL ${i + 1} (${JSON.stringify(entries[i]!.slice(0, 200))})`);
  const seen = new Map<string, number>();
  const urls: string[] = [];
  entries.forEach((entry, i) => {
    const problem = checkUrl(entry);
    if (problem) {
      problems.push(`${prefix}:${which(i)} ${problem}`);
      return;
    }
    const key = mediaUrlKey(entry);
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push(`${prefix}:${which(i)} names the same media server as URL ${first + 1}`);
      return;
    }
    seen.set(key, i);
    urls.push(entry);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, urls };
}

function checkUrl(entry: string): string | undefined {
  if (entry.length > MAX_URL_LENGTH) return `longer than ${MAX_URL_LENGTH} characters`;
  if (!/^wss?:\/\//i.test(entry)) return 'must be a ws:// or wss:// URL';
  let u: URL;
  try {
    u = new URL(entry);
  } catch {
    return 'is not a valid URL';
  }
  if (!u.hostname) return 'has no host';
  if (u.username || u.password) return 'must not carry credentials';
  if (u.search || u.hash) return 'must not carry a query or fragment';
  return undefined;
}

/** where a media server's GET /stats is: the same host and port, http:// for ws://, https:// for wss:// */
export function statsUrlOf(mediaUrl: string): string {
  const u = new URL(mediaUrl);
  const scheme = u.protocol === 'wss:' ? 'https:' : 'http:';
  return `${scheme}//${u.host}/stats`;
}
