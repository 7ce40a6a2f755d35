import path from 'node:path';
import { PACKAGE_ROOT } from '../../common/package-root';

/** CDR and recording settings, read once at start (docs/cdr.md, docs/recording.md). */
export interface CdrConfig {
  /** FERRY_CDR_FILE: the JSON-lines file CDRs are appended to; unset: no file */
  file: string | undefined;
  /** FERRY_CDR_RETENTION_MS: how long Redis keeps a CDR (default 30 days) */
  retentionMs: number;
  /** FERRY_CDR_STATS_INTERVAL_MS: getStats of a live call's endpoints every this often (default 10 s; 0: only at the end) */
  statsIntervalMs: number;
  /** FERRY_CDR_END_STATS_WAIT_MS: the end-path getStats waits at most this long (default 1000) */
  endStatsWaitMs: number;
  /** FERRY_MEDIA_FILES_DIR as ferry media reads it: where recordings are (default `<FERRY_DATA_DIR>/media`) */
  mediaFilesDir: string;
}

type Env = Record<string, string | undefined>;


export function cdrConfigFromEnv(env: Env = process.env): CdrConfig {
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`environment: ${name}=${JSON.stringify(raw)}: must be an integer between ${min} and ${max}`);
    return n;
  };
  const dataDir = env.FERRY_DATA_DIR || path.join(PACKAGE_ROOT, '.ferry');
  return {
    file: env.FERRY_CDR_FILE ? path.resolve(env.FERRY_CDR_FILE) : undefined,
    retentionMs: int('FERRY_CDR_RETENTION_MS', 30 * 86_400_000, 60_000, 3650 * 86_400_000),
    statsIntervalMs: int('FERRY_CDR_STATS_INTERVAL_MS', 10_000, 0, 3_600_000),
    endStatsWaitMs: int('FERRY_CDR_END_STATS_WAIT_MS', 1000, 50, 10_000),
    mediaFilesDir: path.resolve(env.FERRY_MEDIA_FILES_DIR || path.join(dataDir, 'media')),
  };
}
