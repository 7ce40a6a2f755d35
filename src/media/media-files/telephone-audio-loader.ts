import { loadMediaBytes, mediaFileIdentity } from './media-file-access';
import type { MediaFilesConfig } from './media-files-config';
import type { MediaLocation } from './media-uri';
import { decodeTelephoneAudio } from './telephone-audio';

/**
 * Decoded files shared by every PlayerEndpoint playing the same file (hold music for a hundred held
 * calls is one copy in memory and one decode, not a hundred). Keyed by the file's identity (device,
 * inode, size, modification time), so a file replaced or edited is read again. Entries are weak: the
 * audio is freed once no player holds it. Loads of the same file under way at once are shared too.
 * URLs are fetched by each player (their content may differ per request).
 */
const decoded = new Map<string, WeakRef<Int16Array>>();
const inFlight = new Map<string, Promise<Int16Array>>();
const forget = new FinalizationRegistry<string>((key) => {
  if (decoded.get(key)?.deref() === undefined) decoded.delete(key);
});

export interface LoadedAudio {
  audio: Int16Array;
  /** Whether the decoded audio came from another player's load. */
  shared: boolean;
}

export async function loadTelephoneAudio(loc: MediaLocation, cfg: MediaFilesConfig, signal: AbortSignal): Promise<LoadedAudio> {
  const key = loc.kind === 'file' ? await mediaFileIdentity(loc.path, cfg) : undefined;
  if (key === undefined) return { audio: await readAndDecode(loc, cfg, signal), shared: false };
  const hit = decoded.get(key)?.deref();
  if (hit) return { audio: hit, shared: true };
  const running = inFlight.get(key);
  if (running) return { audio: await running, shared: true };
  // a file load is not cancelled by one player's release: another may be waiting for the same load
  const load = readAndDecode(loc, cfg, new AbortController().signal).then((audio) => {
    decoded.set(key, new WeakRef(audio));
    forget.register(audio, key);
    return audio;
  });
  inFlight.set(key, load);
  try {
    return { audio: await load, shared: false };
  } finally {
    inFlight.delete(key);
  }
}

async function readAndDecode(loc: MediaLocation, cfg: MediaFilesConfig, signal: AbortSignal): Promise<Int16Array> {
  const { bytes, name } = await loadMediaBytes(loc, cfg, signal);
  return decodeTelephoneAudio(bytes, name);
}
