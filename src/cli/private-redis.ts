import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ChildSpec, SupervisedChild } from './supervisor/child-process-supervisor';
import { PACKAGE_ROOT } from '../common/package-root';

/**
 * The private Redis `ferry start` runs when no REDIS_URL is given: Debian's `redis-server` on a free
 * loopback port, with its own data directory and an append-only file, supervised (restarted on the
 * same port if it dies; it dies with `ferry start`). The gateway's calls and registrations live
 * there, so a restarted gateway finds them again (README.md, "State").
 *
 * The data directory (FERRY_DATA_DIR, default `<package root>/.ferry`) belongs to one `ferry start`
 * at a time: a lock file names the owner's pid, and a second `ferry start` on the same directory is
 * refused rather than letting two Redis servers write one append-only file.
 */
export interface PrivateRedis {
  port: number;
  url: string;
  dataDir: string;
  child: SupervisedChild;
}

export function defaultDataDir(): string {
  return path.join(PACKAGE_ROOT, '.ferry');
}

export class DataDirInUse extends Error {}

const LOCK_FILE = 'ferry-start.pid';

function isRunningFerry(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // a recycled pid belongs to some other program: only a ferry process holds the lock
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ferry');
  } catch {
    return true;
  }
}

/** Takes the data directory for this process (released when it exits); throws DataDirInUse. */
export function lockDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true });
  const lock = path.join(dataDir, LOCK_FILE);
  let holder = NaN;
  try {
    holder = Number(readFileSync(lock, 'utf8').trim());
  } catch {
    /* no lock yet */
  }
  if (isRunningFerry(holder)) {
    throw new DataDirInUse(`data directory ${dataDir} is in use by another ferry start (pid ${holder}); stop it, or run this one with its own FERRY_DATA_DIR and its own ports (FERRY_SIP_PORT, FERRY_SIP_WS_PORT, FERRY_SIP_CONTROL_PORT, FERRY_MEDIA_PORT and FERRY_HTTP_PORT set to 0 take free ones, the TLS ports with them)`);
  }
  writeFileSync(lock, `${process.pid}\n`);
  process.once('exit', () => {
    try {
      if (Number(readFileSync(lock, 'utf8').trim()) === process.pid) rmSync(lock, { force: true });
    } catch {
      /* already gone */
    }
  });
}

/** A TCP port nothing listens on right now, on the loopback interface. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Redis's own log lines at notice level or below (`<pid>:<role> <date> * …`); warnings (`#`) are kept. */
const QUIET_REDIS_LINE = /^\[redis\] \d+:[A-Z] .*\d [*.-] /;
/** Redis's start-up banner, logged at warning level on every start, and its advice about kernel settings */
const REDIS_BANNER = /Redis is starting|Redis version=|Configuration loaded|Server initialized|WARNING Memory overcommit|WARNING The TCP backlog/;

/** Passes on what matters from the private Redis's output: its real warnings and the supervisor's lines. */
export function redisOutputFilter(out: (line: string) => void): (line: string) => void {
  return (line) => {
    if (!QUIET_REDIS_LINE.test(line) && !REDIS_BANNER.test(line)) out(line);
  };
}

export function privateRedisSpec(redisServer: string, port: number, redisDir: string): ChildSpec {
  return {
    name: 'redis',
    command: redisServer,
    args: [
      '--bind', '127.0.0.1',
      '--port', String(port),
      '--protected-mode', 'yes',
      '--dir', redisDir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--save', '',
      '--daemonize', 'no',
      '--logfile', '',
    ],
    ready: (line) => (/Ready to accept connections/.test(line) ? { port } : undefined),
  };
}

/**
 * Locks the data directory and prepares the supervised redis-server (not started yet: the caller
 * starts it, so it can register it for shutdown first).
 */
export async function preparePrivateRedis(redisServer: string, dataDir: string, out: (line: string) => void): Promise<PrivateRedis> {
  lockDataDir(dataDir);
  const redisDir = path.join(dataDir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  const port = await freeLoopbackPort();
  const child = new SupervisedChild(privateRedisSpec(redisServer, port, redisDir), redisOutputFilter(out));
  return { port, url: `redis://127.0.0.1:${port}`, dataDir, child };
}
