import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { canInstallPackages, findProgram, installDebianPackages } from './debian-package';
import { defaultDataDir, PrivateRedis, preparePrivateRedis } from './private-redis';

/**
 * Where `ferry start`'s gateway keeps its calls and registrations, and which instance id it runs
 * under (the same id for every restart, so a restarted gateway resumes its own calls at once):
 * - REDIS_URL set: that Redis; the id lives as long as this `ferry start`;
 * - default: a private supervised redis-server (src/cli/private-redis.ts) in the data directory,
 *   installed from Debian's package when missing and this process may install it; the id is kept in
 *   the data directory, so it also survives restarts of `ferry start` itself;
 * - FERRY_STORE=memory (or no redis-server to be had): the in-memory store, announced by one warning
 *   line, because nothing then survives a gateway restart.
 */
export type StoreMode = 'redis' | 'private-redis' | 'memory';

export interface GatewayStateStore {
  mode: StoreMode;
  /** variables the gateway child gets: REDIS_URL and FERRY_GATEWAY_ID */
  gatewayEnv: Record<string, string>;
  privateRedis?: PrivateRedis;
}

export class StoreConfigError extends Error {}

type Env = Record<string, string | undefined>;

export const MEMORY_MODE_WARNING =
  'ferry start: WARNING: in-memory state store: calls and registrations do not survive a gateway restart ' +
  '(a restarted gateway cannot take over live calls; ferry sip ends them after FERRY_SIP_ORPHAN_DIALOG_MS). ' +
  'Unset FERRY_STORE to get a private Redis, or set REDIS_URL.';

function newGatewayId(): string {
  return `gw-${randomUUID().slice(0, 8)}`;
}

/** The gateway id kept in the data directory (created on first use). */
function persistentGatewayId(dataDir: string): string {
  const file = path.join(dataDir, 'gateway-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[\w.:-]{1,100}$/.test(id)) return id;
  } catch {
    /* first start on this data directory */
  }
  const id = newGatewayId();
  writeFileSync(file, `${id}\n`);
  return id;
}

function memoryMode(why: string, env: Env, out: (line: string) => void): GatewayStateStore {
  out(`${MEMORY_MODE_WARNING} (${why})`);
  return { mode: 'memory', gatewayEnv: { REDIS_URL: '', FERRY_GATEWAY_ID: env.FERRY_GATEWAY_ID || newGatewayId() } };
}

/** Finds redis-server, installing Debian's package when it is missing and this process may. */
async function redisServerProgram(out: (line: string) => void): Promise<string | undefined> {
  const found = findProgram('redis-server');
  if (found || !canInstallPackages()) return found;
  out('ferry start: redis-server is not installed; installing the Debian package redis-server (apt-get) for the private state store');
  if (!(await installDebianPackages(['redis-server']))) out('ferry start: installing redis-server failed');
  return findProgram('redis-server');
}

/**
 * Decides the store (and prepares the private Redis, not started yet). Throws StoreConfigError on
 * a bad FERRY_STORE, DataDirInUse when another `ferry start` holds the data directory.
 */
export async function chooseGatewayStateStore(env: Env, out: (line: string) => void): Promise<GatewayStateStore> {
  const wanted = env.FERRY_STORE ?? '';
  if (!['', 'redis', 'memory'].includes(wanted)) {
    throw new StoreConfigError(`environment: FERRY_STORE=${JSON.stringify(wanted)}: must be "redis" (the default) or "memory"`);
  }
  if (wanted === 'memory') return memoryMode('FERRY_STORE=memory', env, out);
  if (env.REDIS_URL) return { mode: 'redis', gatewayEnv: { REDIS_URL: env.REDIS_URL, FERRY_GATEWAY_ID: env.FERRY_GATEWAY_ID || newGatewayId() } };
  const redisServer = await redisServerProgram(out);
  if (!redisServer) return memoryMode('redis-server is not installed: apt-get install redis-server', env, out);
  const dataDir = path.resolve(env.FERRY_DATA_DIR || defaultDataDir());
  const privateRedis = await preparePrivateRedis(redisServer, dataDir, out);
  return {
    mode: 'private-redis',
    gatewayEnv: { REDIS_URL: privateRedis.url, FERRY_GATEWAY_ID: env.FERRY_GATEWAY_ID || persistentGatewayId(dataDir) },
    privateRedis,
  };
}
