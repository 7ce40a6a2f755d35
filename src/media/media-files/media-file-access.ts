import { constants as fsc, createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, realpath, rm, stat, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { MediaFilesConfig } from './media-files-config';
import type { MediaLocation } from './media-uri';
import { isInside } from './media-uri';

/** Why media could not be loaded, as the Kurento `Error` event type a PlayerEndpoint emits. */
export class MediaSourceError extends Error {
  constructor(
    readonly kind: 'INVALID_URI' | 'INVALID_MEDIA',
    message: string,
  ) {
    super(message);
    this.name = 'MediaSourceError';
  }
}

/** The file's real path when it is inside the real media directory (symbolic links resolved), else undefined. */
async function realInside(dir: string, p: string): Promise<string | undefined> {
  try {
    const [realDir, real] = await Promise.all([realpath(dir), realpath(p)]);
    return isInside(realDir, real) ? real : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bytes of a checked media location (media-uri.ts) and a name to guess a raw format from.
 * Files: resolved through symbolic links and required to stay inside the media directory, opened
 * without following a link, regular files only, at most `maxFileBytes`. HTTP(S): one GET that must be
 * complete within `httpTimeoutMs` and at most `maxFileBytes` long (Content-Length checked first, the
 * body counted as it arrives), cancelled by `signal`. Every failure is a MediaSourceError whose message
 * names no path outside what the client gave.
 */
export async function loadMediaBytes(loc: MediaLocation, cfg: MediaFilesConfig, signal: AbortSignal): Promise<{ bytes: Buffer; name: string }> {
  if (loc.kind === 'file') return { bytes: await readMediaFile(loc.path, cfg), name: loc.path };
  return { bytes: await fetchMedia(loc.url, cfg, signal), name: loc.url.pathname };
}

/**
 * What identifies a file's content for the decoded-audio cache (device, inode, size, modification time),
 * or undefined when it is not a readable regular file inside the directory (loading it then reports why).
 */
export async function mediaFileIdentity(p: string, cfg: MediaFilesConfig): Promise<string | undefined> {
  const real = await realInside(cfg.dir, p);
  if (!real) return undefined;
  try {
    const st = await stat(real);
    return st.isFile() ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : undefined;
  } catch {
    return undefined;
  }
}

async function readMediaFile(p: string, cfg: MediaFilesConfig): Promise<Buffer> {
  const notReadable = new MediaSourceError('INVALID_URI', 'file not found or not readable inside the media files directory');
  const real = await realInside(cfg.dir, p);
  if (!real) throw notReadable;
  let fh: FileHandle;
  try {
    fh = await open(real, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    throw notReadable;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notReadable;
    if (st.size > cfg.maxFileBytes) throw new MediaSourceError('INVALID_MEDIA', `file is larger than FERRY_MEDIA_FILE_MAX_BYTES (${cfg.maxFileBytes} bytes)`);
    const bytes = Buffer.alloc(st.size);
    let filled = 0;
    while (filled < st.size) {
      const { bytesRead } = await fh.read(bytes, filled, st.size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return bytes.subarray(0, filled);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function fetchMedia(url: URL, cfg: MediaFilesConfig, signal: AbortSignal): Promise<Buffer> {
  const timeout = AbortSignal.timeout(cfg.httpTimeoutMs);
  const both = AbortSignal.any([timeout, signal]);
  const tooBig = () => new MediaSourceError('INVALID_MEDIA', `media is larger than FERRY_MEDIA_FILE_MAX_BYTES (${cfg.maxFileBytes} bytes)`);
  try {
    const res = await fetch(url, { signal: both, redirect: 'follow', headers: { accept: 'audio/*' } });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new MediaSourceError('INVALID_URI', `HTTP ${res.status} from the media URL`);
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > cfg.maxFileBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw tooBig();
    }
    const chunks: Buffer[] = [];
    let total = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > cfg.maxFileBytes) {
          await reader.cancel().catch(() => undefined);
          throw tooBig();
        }
        chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      }
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (err instanceof MediaSourceError) throw err;
    if (timeout.aborted) throw new MediaSourceError('INVALID_URI', `no complete answer from the media URL within ${cfg.httpTimeoutMs} ms`);
    if (signal.aborted) throw new MediaSourceError('INVALID_URI', 'fetch cancelled');
    throw new MediaSourceError('INVALID_URI', `media URL not reachable (${(err as Error).message})`);
  }
}

/**
 * Opens (creating or truncating) a recording file at a checked path inside the media directory:
 * missing parent directories are created, but only after the deepest existing one is found (with
 * symbolic links resolved) inside the real media directory; the file is opened without following a
 * link and must be a regular file. Throws MediaSourceError('INVALID_URI') otherwise.
 */
export async function openRecordingFile(p: string, cfg: MediaFilesConfig): Promise<FileHandle> {
  const refused = new MediaSourceError('INVALID_URI', 'cannot create the recording file inside the media files directory');
  let realDir: string;
  try {
    await mkdir(cfg.dir, { recursive: true });
    realDir = await realpath(cfg.dir);
  } catch {
    throw refused;
  }
  const parent = path.dirname(p);
  let existing = parent;
  let realExisting: string | undefined;
  for (;;) {
    try {
      realExisting = await realpath(existing);
      break;
    } catch {
      const up = path.dirname(existing);
      if (up === existing) throw refused;
      existing = up;
    }
  }
  if (realExisting !== realDir && !isInside(realDir, realExisting)) throw refused;
  const realParent = path.join(realExisting, path.relative(existing, parent));
  let fh: FileHandle;
  try {
    await mkdir(realParent, { recursive: true });
    const checked = await realpath(realParent);
    if (checked !== realDir && !isInside(realDir, checked)) throw refused;
    fh = await open(path.join(checked, path.basename(p)), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o640);
  } catch {
    throw refused;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close().catch(() => undefined);
    throw refused;
  }
  return fh;
}

/**
 * A private temporary file for a recording whose URI is `http(s)://` (uploaded at the end by
 * uploadRecording): `<tmpdir>/ferry-recording-XXXXXX/recording.wav`, opened for writing. `remove()`
 * deletes it and its directory.
 */
export async function openUploadSpool(): Promise<{ fh: FileHandle; path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-recording-'));
  const p = path.join(dir, 'recording.wav');
  const fh = await open(p, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  return { fh, path: p, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Uploads a finished recording to an `http(s)://` RecorderEndpoint URI as KMS does (its recorder's
 * sink is GStreamer's curlhttpsink): one HTTP POST of the file, `user:password@` in the URI sent as
 * Basic authentication and left out of the request line. The connection may stay silent for at most
 * `cfg.httpTimeoutMs` at a time; the answer must be 2xx. Rejects with MediaSourceError('INVALID_URI')
 * naming the host, never the whole URI (it may carry credentials).
 */
export async function uploadRecording(url: URL, filePath: string, cfg: MediaFilesConfig, signal?: AbortSignal): Promise<void> {
  const size = (await stat(filePath)).size;
  const target = new URL(url.href);
  const headers: Record<string, string> = { 'content-type': 'audio/wav', 'content-length': String(size) };
  if (target.username || target.password) {
    const user = decodeURIComponent(target.username);
    const pass = decodeURIComponent(target.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const where = `${target.protocol}//${target.host}`;
  const client = target.protocol === 'https:' ? https : http;
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => reject(new MediaSourceError('INVALID_URI', `recording upload to ${where} failed: ${why}`));
    const req = client.request(target, { method: 'POST', headers, signal }, (res) => {
      res.resume();
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else fail(`HTTP ${status}`);
      });
      res.on('error', (e) => fail(e.message));
    });
    req.setTimeout(cfg.httpTimeoutMs, () => req.destroy(new Error(`no progress within ${cfg.httpTimeoutMs} ms`)));
    req.on('error', (e) => fail(signal?.aborted ? 'cancelled' : e.message));
    const body = createReadStream(filePath);
    body.on('error', (e) => req.destroy(e));
    body.pipe(req);
  });
}
