import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KurentoErrors } from '../errors/kurento-error';

/** Where a UriEndpoint's media lives once its `uri` is checked. */
export type MediaLocation = { kind: 'file'; path: string } | { kind: 'http'; url: URL };

const MAX_URI_LENGTH = 4096;

/**
 * Checks a PlayerEndpoint/RecorderEndpoint `uri` without touching the disk: `file://` URIs (host empty
 * or `localhost`) and relative URIs (taken relative to the media files directory, as KMS takes them
 * relative to its default path) must name a path strictly inside `filesDir` after `.`/`..` are
 * resolved; an encoded `/` is refused. `http(s)://` is allowed only where `allowHttp`. Every other URI
 * is a KurentoError (40107 for a bad or outside URI, 40006 for a scheme ferry media does not read).
 * Symbolic links are checked later, when the file is opened (media-file-access.ts).
 */
export function resolveMediaUri(uri: string, filesDir: string, allowHttp: boolean): MediaLocation {
  if (uri.length === 0 || uri.length > MAX_URI_LENGTH) throw KurentoErrors.illegalParam(`uri must be 1 to ${MAX_URI_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(uri)) throw KurentoErrors.illegalParam('uri contains control characters');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'file', path: inside(filesDir, path.resolve(filesDir, uri)) };
  if (scheme === 'file') {
    let url: URL;
    let p: string;
    try {
      url = new URL(uri);
      if (url.hostname !== '' && url.hostname !== 'localhost') throw new Error('remote host');
      p = fileURLToPath(url);
    } catch {
      throw KurentoErrors.illegalParam('uri is not a usable file:// URI (file:///absolute/path, no host, no encoded "/")');
    }
    return { kind: 'file', path: inside(filesDir, path.resolve(p)) };
  }
  if ((scheme === 'http' || scheme === 'https') && allowHttp) {
    try {
      return { kind: 'http', url: new URL(uri) };
    } catch {
      throw KurentoErrors.illegalParam('uri is not a valid http(s) URL');
    }
  }
  throw KurentoErrors.notImplemented(`uri scheme '${scheme}' is not supported by ferry media (${allowHttp ? 'file://, http://, https://' : 'file:// only'})`);
}

/** `p` when it lies strictly inside `dir` (lexically), else 40107 (the directory is not named: the client may be hostile). */
function inside(dir: string, p: string): string {
  if (!isInside(dir, p)) throw KurentoErrors.illegalParam('uri must name a file inside the media files directory (FERRY_MEDIA_FILES_DIR)');
  return p;
}

export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
