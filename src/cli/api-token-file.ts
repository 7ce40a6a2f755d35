import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultDataDir } from './private-redis';

type Env = Record<string, string | undefined>;

export interface ApiTokenSetup {
  /** what the gateway child gets: the token file and, for a generated token, loopback-only use */
  gatewayEnv: Record<string, string>;
  /** the token file, when ferry start keeps one (never the token itself) */
  file?: string;
}

/**
 * `ferry start` without FERRY_API_TOKEN (or FERRY_API_TOKEN_FILE): a random token kept in
 * `<data dir>/api-token` (mode 0600, reused by later starts on the same directory), handed to the
 * gateway as a file path, usable from loopback clients only. The token never appears in output.
 */
export function setUpApiToken(env: Env): ApiTokenSetup {
  if (env.FERRY_API_TOKEN || env.FERRY_API_TOKEN_FILE) return { gatewayEnv: {} };
  const dataDir = path.resolve(env.FERRY_DATA_DIR || defaultDataDir());
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'api-token');
  let token = '';
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch {
    /* none yet */
  }
  if (token.length < 32) {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return { gatewayEnv: { FERRY_API_TOKEN_FILE: file, FERRY_API_LOOPBACK_ONLY: '1' }, file };
}
