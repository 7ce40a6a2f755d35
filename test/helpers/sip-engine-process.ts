/**
 * Starting the SIP server that drachtio-srf apps talk to in tests: `bin/ferry sip` as a child process
 * on free ports (every port 0, read back from its ready line), or a real drachtio-server when
 * DRACHTIO_URL (host:port[:secret]) is set. Every child started here is killed by `stop()` and, as
 * a safety net, when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export interface SipEnginePorts {
  sip: number;
  ws: number;
  control: number;
}

export interface SipEngineProcess {
  ports: SipEnginePorts;
  child: ChildProcess;
  /** Everything the engine wrote to stderr so far. */
  stderr: () => string;
  /** Everything the engine wrote to stdout so far (its JSON log lines). */
  stdout: () => string;
  /** True while the child runs. */
  running: () => boolean;
  /** Kills the engine (SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const READY_LINE = /ferry sip ready (\{[^\n]*\})/;

/**
 * Spawns `bin/ferry sip` with every port 0 (overridable through `env`, e.g. FERRY_SIP_T1_MS) and
 * waits for its ready line `ferry sip ready {"sip":..,"ws":..,"control":..}`.
 */
export async function spawnSipEngine(env: Record<string, string> = {}, startTimeoutMs = 20_000): Promise<SipEngineProcess> {
  const bin = path.resolve(__dirname, '../../bin/ferry');
  const child = spawn(process.execPath, [bin, 'sip'], {
    env: {
      ...process.env,
      FERRY_SIP_HOST: '127.0.0.1',
      FERRY_SIP_PORT: '0',
      FERRY_SIP_WS_PORT: '0',
      FERRY_SIP_CONTROL_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    if (!running()) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  };
  const ports = await new Promise<SipEnginePorts>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`ferry sip printed no ready line within ${startTimeoutMs} ms; stderr: ${err.slice(-2000)}`)),
      startTimeoutMs,
    );
    const onData = () => {
      const m = READY_LINE.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      try {
        resolve(parsePorts(m[1]));
      } catch (e) {
        reject(e);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`ferry sip exited (code ${code}, signal ${signal}) before it was ready: ${err.slice(-2000)}`));
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { ports, child, stderr: () => err, stdout: () => out, running, stop };
}

function parsePorts(json: string): SipEnginePorts {
  const p = JSON.parse(json) as Partial<SipEnginePorts>;
  for (const k of ['sip', 'ws', 'control'] as const) {
    if (!Number.isInteger(p[k]) || (p[k] as number) <= 0) throw new Error(`ready line has no valid "${k}" port: ${json}`);
  }
  return p as SipEnginePorts;
}

/** Where a drachtio-srf app connects, and what runs there. */
export interface SipServerTarget {
  kind: 'ferry-sip' | 'drachtio-server';
  /** One line for test output: which server the suite ran against. */
  description: string;
  control: { host: string; port: number; secret: string };
  /** SIP over WebSocket port, when known (ferry sip only). */
  wsPort?: number;
  /** The spawned engine (ferry sip only). */
  engine?: SipEngineProcess;
  stop(): Promise<void>;
}

/** Parses DRACHTIO_URL `host:port[:secret]` (secret defaults to cymru). */
export function parseDrachtioUrl(url: string): { host: string; port: number; secret: string } {
  const [host, port, ...rest] = url.trim().split(':');
  const n = Number(port);
  if (!host || !Number.isInteger(n) || n <= 0) {
    throw new Error(`DRACHTIO_URL must be host:port[:secret], got ${JSON.stringify(url)}`);
  }
  return { host, port: n, secret: rest.length ? rest.join(':') : 'cymru' };
}

/**
 * The server the srf-level acceptance suites run against: a real drachtio-server when DRACHTIO_URL
 * is set, otherwise a fresh `bin/ferry sip` (engineEnv lets a suite shorten the RFC 3261 timers;
 * those settings do not apply to a real drachtio-server).
 */
export async function startSipServerTarget(engineEnv: Record<string, string> = {}): Promise<SipServerTarget> {
  const url = process.env.DRACHTIO_URL;
  if (url) {
    const control = parseDrachtioUrl(url);
    return {
      kind: 'drachtio-server',
      description: `ran against the real drachtio-server at ${control.host}:${control.port} (DRACHTIO_URL)`,
      control,
      stop: async () => {},
    };
  }
  const engine = await spawnSipEngine(engineEnv);
  const timers = Object.keys(engineEnv).length ? ` with ${JSON.stringify(engineEnv)}` : '';
  return {
    kind: 'ferry-sip',
    description:
      `ran against ferry sip only (bin/ferry sip on sip ${engine.ports.sip}, control ${engine.ports.control}${timers}); ` +
      'no drachtio-server reachable: set DRACHTIO_URL=host:port[:secret] to run the same tests against one',
    control: { host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' },
    wsPort: engine.ports.ws,
    engine,
    stop: () => engine.stop(),
  };
}
