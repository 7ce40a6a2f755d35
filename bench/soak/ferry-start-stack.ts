import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { freePort } from '../../test/helpers/free-port';
import type { KilledPart, SoakPart, SoakStack, SoakStackOptions } from './soak-stack';

const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');

/** children of `parent` (pid -> command line) */
async function childrenOf(parent: number): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      out.set(Number(entry), (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' '));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function isPart(cmdline: string, part: SoakPart): boolean {
  if (part === 'redis') return /redis-server/.test(cmdline);
  return new RegExp(`bin/ferry ${part}\\b`).test(cmdline);
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * The stack as a user starts it: one `ferry start` (its private Redis, its supervisor restarting a
 * killed part with back-off, the gateway with the same id), on free ports given to it up front so a
 * restarted part comes back where the others expect it. The soak only kills; `ferry start` restores.
 */
export async function startFerryStart(options: SoakStackOptions): Promise<SoakStack> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-soak-data-'));
  const ports = {
    sip: await freePort({ protocols: ['udp', 'tcp'] }),
    ws: await freePort({ protocols: ['tcp'] }),
    control: await freePort({ protocols: ['tcp'] }),
    media: await freePort({ protocols: ['tcp'] }),
    http: await freePort({ protocols: ['tcp'] }),
  };
  const redisPrefix = `ferry-soak-${process.pid}:`;
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...options.env };
  delete env.REDIS_URL;
  delete env.FERRY_STORE;
  Object.assign(env, {
    FERRY_SIP_PORT: String(ports.sip), FERRY_SIP_WS_PORT: String(ports.ws), FERRY_SIP_CONTROL_PORT: String(ports.control),
    FERRY_MEDIA_PORT: String(ports.media), FERRY_HTTP_PORT: String(ports.http), FERRY_DATA_DIR: dataDir, FERRY_REDIS_PREFIX: redisPrefix,
    // the soak's peers use no TLS: no SIP/TLS, WSS or HTTPS listener on their standard ports to collide with
    FERRY_TLS: '0',
  });
  const child = spawn(process.execPath, [BIN, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
  };
  let info: { redis?: number; pids?: Record<string, number> } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ferry start not ready within 60 s:\n${tail.slice(-30).join('\n')}`)), 60_000);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      if (line.startsWith('ferry ready ')) {
        info = JSON.parse(line.slice('ferry ready '.length)) as typeof info;
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`ferry start exited before it was ready:\n${tail.slice(-30).join('\n')}`)));
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    const stats = /^\[sip\] ferry sip stats (\{.*\})$/.exec(line);
    if (stats) options.onSipStats(stats[1]!);
    else keep(line);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  if (!info?.redis) {
    await stop();
    throw new Error(`ferry start did not run its private Redis: ${JSON.stringify(info)}`);
  }
  const redisUrl = `redis://127.0.0.1:${info.redis}`;
  const pids = new Map<SoakPart, number>(Object.entries(info.pids ?? {}) as [SoakPart, number][]);
  const refresh = async (): Promise<void> => {
    const kids = await childrenOf(child.pid!);
    for (const part of ['sip', 'media', 'gateway', 'redis'] as SoakPart[]) {
      const found = [...kids].find(([, cmd]) => isPart(cmd, part));
      if (found) pids.set(part, found[0]);
      else pids.delete(part);
    }
  };
  const readyAgain: Record<KilledPart, () => Promise<boolean>> = {
    gateway: () => answers(`http://127.0.0.1:${ports.http}/metrics`),
    media: () => answers(`http://127.0.0.1:${ports.media}/stats`),
    redis: () => redisAnswers(redisUrl),
  };
  let refreshing = false;
  const poller = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    void refresh().finally(() => (refreshing = false));
  }, 1000);
  poller.unref();
  return {
    how: 'one `ferry start` (its private Redis and supervisor; the soak only kills)',
    sipPort: ports.sip,
    wsPort: ports.ws,
    mediaPort: ports.media,
    httpPort: ports.http,
    redisUrl,
    redisPrefix,
    pid: (part) => pids.get(part),
    async killAndRestore(part) {
      await refresh();
      const old = pids.get(part);
      if (!old) throw new Error(`ferry start has no ${part} child to kill`);
      const killedAt = Date.now();
      process.kill(old, 'SIGKILL');
      const deadline = Date.now() + 30_000;
      for (;;) {
        await sleep(100);
        await refresh();
        const now = pids.get(part);
        if (now && now !== old && (await readyAgain[part]())) return { killedAt };
        if (Date.now() > deadline) throw new Error(`${part} not back within 30 s of its SIGKILL:\n${tail.slice(-20).join('\n')}`);
      }
    },
    async stop() {
      clearInterval(poller);
      await stop();
    },
  };
}
