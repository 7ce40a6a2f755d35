import path from 'node:path';
import { envInt, type Env } from '../../common/env';
import { PACKAGE_ROOT } from '../../common/package-root';

/** Where PlayerEndpoint and RecorderEndpoint may read and write, and how much they may fetch. */
export interface MediaFilesConfig {
  /** The only directory `file://` URIs (and relative URIs) may name, for reading and for recording. */
  dir: string;
  /** Largest media a PlayerEndpoint loads, from a file or over HTTP (bytes). */
  maxFileBytes: number;
  /** A PlayerEndpoint's HTTP(S) fetch must be complete within this (ms); a RecorderEndpoint's HTTP(S) upload may go this long without progress. */
  httpTimeoutMs: number;
}


/**
 * FERRY_MEDIA_FILES_DIR (default `<FERRY_DATA_DIR>/media`, FERRY_DATA_DIR defaulting to `<package root>/.ferry`),
 * FERRY_MEDIA_FILE_MAX_BYTES (64 MiB), FERRY_MEDIA_HTTP_TIMEOUT_MS (10 000).
 */
export function mediaFilesConfigFromEnv(env: Env = process.env): MediaFilesConfig {
  const dataDir = env.FERRY_DATA_DIR || path.join(PACKAGE_ROOT, '.ferry');
  const maxFileBytes = envInt('FERRY_MEDIA_FILE_MAX_BYTES', 64 * 1024 * 1024, env);
  const httpTimeoutMs = envInt('FERRY_MEDIA_HTTP_TIMEOUT_MS', 10_000, env);
  if (maxFileBytes < 1) throw new Error('FERRY_MEDIA_FILE_MAX_BYTES must be at least 1');
  if (httpTimeoutMs < 1) throw new Error('FERRY_MEDIA_HTTP_TIMEOUT_MS must be at least 1');
  return { dir: path.resolve(env.FERRY_MEDIA_FILES_DIR || path.join(dataDir, 'media')), maxFileBytes, httpTimeoutMs };
}
