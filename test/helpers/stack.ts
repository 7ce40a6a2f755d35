import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { pollUntil } from './wait-for';

/**
 * Spawns the three ferry processes (`bin/ferry sip`, `bin/ferry media`, `bin/ferry gateway`) on
 * free ports for end-to-end tests, and kills them all on stop (call it from after(), also on
 * failure). Each part can be killed with any signal and restarted on its previous ports.
 *
 *   const stack = await startStack({ redisUrl: 'redis://127.0.0.1:6379', env: { FERRY_GATEWAY_LEASE_MS: '2000' } });
 *   ... stack.sipPort, stack.wsPort, stack.httpPort, stack.mediaPort ...
 *   await stack.kill('gateway', 'SIGKILL'); await stack.restart('gateway'); await stack.stop();
 */
export type Part = 'sip' | 'media' | 'gateway';

export interface StackOptions {
  /** Redis for the gateway's state store; omitted = in-memory store */
  redisUrl?: string;
  /** extra environment for every part (e.g. FERRY_MEDIA_DEAD_MS, FERRY_GATEWAY_LEASE_MS, FERRY_SIP_CONFIG) */
  env?: Record<string, string>;
  /** extra environment per part */
  partEnv?: Partial<Record<Part, Record<string, string>>>;
  /** start a second gateway on the same SIP engine, media server and store */
  secondGateway?: boolean;
  /** collects every output line of the parts (default: kept in `stack.output`, printed on failure by the caller) */
  onLine?: (part: string, line: string) => void;
}

export interface Stack {
  sipPort: number;
  wsPort: number;
  controlPort: number;
  mediaPort: number;
  httpPort: number;
  /** the second gateway's HTTP port when `secondGateway` was set */
  httpPort2?: number;
  /** key prefix the gateway uses in Redis (unique per stack) */
  redisPrefix: string;
  redisUrl?: string;
  output: string[];
  pid(part: Part | 'gateway2'): number | undefined;
  kill(part: Part | 'gateway2', signal?: NodeJS.Signals): Promise<void>;
  restart(part: Part | 'gateway2'): Promise<void>;
  stop(): Promise<void>;
}

const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');

interface Running {
  child: ChildProcess;
  info: Record<string, number>;
  exited: Promise<void>;
}

function launch(name: Part, label: string, env: Record<string, string>, output: string[], onLine?: (p: string, l: string) => void): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, name], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const marker = `ferry ${name} ready `;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} not ready within 30 s:\n${output.slice(-30).join('\n')}`));
    }, 30000);
    const keep = (line: string): void => {
      output.push(`[${label}] ${line}`);
      if (output.length > 5000) output.splice(0, 1000);
      onLine?.(label, line);
    };
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      if (line.startsWith(marker)) {
        clearTimeout(timer);
        resolve({ child, info: JSON.parse(line.slice(marker.length)) as Record<string, number>, exited });
      }
    });
    readline.createInterface({ input: child.stderr! }).on('line', keep);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${signal ?? code}) before ready:\n${output.slice(-30).join('\n')}`));
    });
  });
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const output: string[] = [];
  const redisPrefix = `ferry-test-${randomUUID().slice(0, 8)}:`;
  const common = { NODE_ENV: 'test', FERRY_LOG_LEVEL: process.env.FERRY_LOG_LEVEL ?? 'info', ...(opts.env ?? {}) };
  const running = new Map<string, Running>();
  const envs = new Map<string, Record<string, string>>();
  const parts = new Map<string, Part>();

  const stopAll = async (): Promise<void> => {
    const order = ['gateway2', 'gateway', 'media', 'sip'];
    for (const name of order) {
      const r = running.get(name);
      if (!r) continue;
      running.delete(name);
      if (r.child.exitCode === null && r.child.signalCode === null) {
        const t = setTimeout(() => r.child.kill('SIGKILL'), 5000);
        r.child.kill('SIGTERM');
        await r.exited;
        clearTimeout(t);
      }
    }
  };

  const run = async (label: string, part: Part, env: Record<string, string>): Promise<Running> => {
    envs.set(label, env);
    parts.set(label, part);
    const r = await launch(part, label, env, output, opts.onLine);
    running.set(label, r);
    return r;
  };

  try {
    const sipEnv = { ...common, FERRY_SIP_HOST: '127.0.0.1', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', ...(opts.partEnv?.sip ?? {}) };
    const mediaEnv = { ...common, FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', ...(opts.partEnv?.media ?? {}) };
    const [sip, media] = await Promise.all([run('sip', 'sip', sipEnv), run('media', 'media', mediaEnv)]);
    // restarts reuse the same ports
    envs.set('sip', { ...sipEnv, FERRY_SIP_PORT: String(sip.info.sip), FERRY_SIP_WS_PORT: String(sip.info.ws), FERRY_SIP_CONTROL_PORT: String(sip.info.control) });
    envs.set('media', { ...mediaEnv, FERRY_MEDIA_PORT: String(media.info.port) });
    const gwEnv: Record<string, string> = {
      ...common,
      FERRY_SIP_CONTROL_URL: `127.0.0.1:${sip.info.control}`,
      FERRY_MEDIA_URL: `ws://127.0.0.1:${media.info.port}/kurento`,
      FERRY_WEBPHONE_WS_URL: `ws://127.0.0.1:${sip.info.ws}`,
      FERRY_HTTP_HOST: '127.0.0.1',
      FERRY_HTTP_PORT: '0',
      FERRY_API_TOKEN: TEST_API_TOKEN,
      FERRY_REDIS_PREFIX: redisPrefix,
      REDIS_URL: opts.redisUrl ?? '',
      ...(opts.partEnv?.gateway ?? {}),
    };
    const gw = await run('gateway', 'gateway', { ...gwEnv, FERRY_GATEWAY_ID: `gw-a-${redisPrefix}` });
    envs.set('gateway', { ...gwEnv, FERRY_GATEWAY_ID: `gw-a-${redisPrefix}`, FERRY_HTTP_PORT: String(gw.info.http) });
    let gw2: Running | undefined;
    if (opts.secondGateway) {
      gw2 = await run('gateway2', 'gateway', { ...gwEnv, FERRY_GATEWAY_ID: `gw-b-${redisPrefix}` });
      envs.set('gateway2', { ...gwEnv, FERRY_GATEWAY_ID: `gw-b-${redisPrefix}`, FERRY_HTTP_PORT: String(gw2.info.http) });
    }
    return {
      sipPort: sip.info.sip!,
      wsPort: sip.info.ws!,
      controlPort: sip.info.control!,
      mediaPort: media.info.port!,
      httpPort: gw.info.http!,
      ...(gw2 ? { httpPort2: gw2.info.http! } : {}),
      redisPrefix,
      ...(opts.redisUrl ? { redisUrl: opts.redisUrl } : {}),
      output,
      pid: (part) => running.get(part)?.child.pid,
      async kill(part, signal = 'SIGKILL') {
        const r = running.get(part);
        if (!r) return;
        running.delete(part);
        r.child.kill(signal);
        await r.exited;
      },
      async restart(part) {
        const r = running.get(part);
        if (r) {
          running.delete(part);
          r.child.kill('SIGTERM');
          await r.exited;
        }
        await run(part, parts.get(part) ?? (part as Part), envs.get(part)!);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** the same as startStack (the name the lifecycle tests were promised) */
export const start = startStack;

/** the HTTP API bearer token test stacks (and `ferry start` in tests) run with */
export const TEST_API_TOKEN = 'ferry-test-api-token-0123456789';

/** GET a JSON document from a local port (with the test API token) */
export async function getJson<T = unknown>(port: number, p: string, token = TEST_API_TOKEN): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${p}: ${res.status}`);
  return (await res.json()) as T;
}

/** poll `fn` until it returns a truthy value or `timeoutMs` passes */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 10000, stepMs = 50, what = 'condition'): Promise<NonNullable<T>> {
  return pollUntil(fn, { timeoutMs, stepMs, what });
}

/** a media port for SIPp: it binds the port, +1 and, with -rtp_echo, +2/+3 (video), so four free UDP ports */
export async function sippMediaPort(): Promise<number> {
  const { freePort } = await import('./free-port');
  return freePort({ protocols: ['udp'], count: 4, even: true });
}
