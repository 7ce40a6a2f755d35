import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PACKAGE_ROOT, RUNNING_BUNDLED } from '../../common/package-root';
import { heapGrowingPercent } from '../server/heap-growing';
import type { RelayWorkerKind } from '../server/media-config';
import { RELAY_PROCESS_FLAG, type FromWorker, type RelayWorkerData, type ToRelayProcess, type ToWorker } from './worker-protocol';

/**
 * What carries the messages between the control plane and one relay worker: a worker thread
 * (`FERRY_MEDIA_WORKER_KIND=thread`, the default) or a child process (`process`). Both run the same
 * relay-worker code and structured-clone the same messages in order (a MessagePort, or an IPC channel
 * with `serialization: 'advanced'`); the pool (worker-pool.ts) does everything else the same way.
 */
export interface RelayTransport {
  readonly kind: RelayWorkerKind;
  /** The child process's pid (`process`); undefined for a thread. */
  readonly pid: number | undefined;
  send(m: ToWorker): void;
  /** Every message the worker sends, in the order it sent them. */
  onMessage(fn: (m: FromWorker) => void): void;
  /** Called once when the worker is gone (exit code, or the signal that ended a child process). */
  onExit(fn: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** An error of the worker itself (a thread's uncaught error, a child that could not start). */
  onError(fn: (err: Error) => void): void;
  /** Ends the worker at once; resolves when it is gone. */
  terminate(): Promise<void>;
}

/**
 * The relay worker's module. From the start-up bundle (bin/ferry-bundle.js, docs/architecture.md
 * "Process start-up") relay-worker.js is a bundle next to this one and needs no tsx. From the sources
 * (an embedding app or a test running ferry media in its own process through tsx) the worker uses the
 * same cache's relay-worker.js for the current source tree too, built if missing, since loading the
 * worker's modules one by one through tsx costs a second or more of CPU per worker start; FERRY_BUNDLE=0,
 * or a cache that cannot be used, registers tsx in the worker and loads relay-worker.ts as before.
 * A thread's start check compares workerData.module with its own __filename.
 */
export interface WorkerEntry {
  module: string;
  tsxApi?: string;
}

let workerEntry: WorkerEntry | undefined;

function resolveWorkerEntry(): WorkerEntry {
  if (RUNNING_BUNDLED) return { module: path.join(__dirname, 'relay-worker.js') };
  const fromSources = { module: path.join(__dirname, 'relay-worker.ts'), tsxApi: require.resolve('tsx/cjs/api') };
  if (process.env.FERRY_BUNDLE === '0') return fromSources;
  try {
    const bundle = require(path.join(PACKAGE_ROOT, 'bin', 'ferry-bundle.js')) as { bundledMain(root: string): string | undefined };
    const main = bundle.bundledMain(PACKAGE_ROOT); // marks the key in use by this process, so it is not pruned
    const worker = main ? path.join(path.dirname(main), 'relay-worker.js') : undefined;
    // the worker compares workerData.module with its own __filename, which Node gives with symbolic links
    // resolved (a node_modules that is a link, as in some monorepos and CI caches): compare like with like
    if (worker && fs.existsSync(worker)) return { module: fs.realpathSync(worker) };
  } catch {
    /* the cache helper missing or failing: the sources through tsx */
  }
  return fromSources;
}

/** Where relay workers load from: decided once per process, at the first worker start. */
export function relayWorkerEntry(): WorkerEntry {
  workerEntry ??= resolveWorkerEntry();
  return workerEntry;
}

/**
 * The relay workers' young generation limit (MiB; undefined = V8's default) from FERRY_MEDIA_SEMI_SPACE_MB,
 * as bin/ferry-media-memory.js computes it (docs/media-server.md, "Memory settings"): three semi-spaces.
 * Decided once per process.
 */
let youngGenerationMb: { mb: number | undefined } | undefined;

export function relayWorkerYoungGenerationMb(): number | undefined {
  if (!youngGenerationMb) {
    const memory = require(path.join(PACKAGE_ROOT, 'bin', 'ferry-media-memory.js')) as { workerYoungGenerationMb(env: NodeJS.ProcessEnv): number | undefined };
    youngGenerationMb = { mb: memory.workerYoungGenerationMb(process.env) };
  }
  return youngGenerationMb.mb;
}

// ---- thread ---------------------------------------------------------------------------------------

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
if (workerData.tsxApi) require(workerData.tsxApi).register();
else process.setSourceMapsEnabled(true);
require(workerData.module);
`;

/** A worker thread. execArgv is empty: a test runner's flags are not the worker's business. */
export function startThreadTransport(data: Omit<RelayWorkerData, 'module'>): RelayTransport {
  const entry = relayWorkerEntry();
  const youngMb = relayWorkerYoungGenerationMb();
  const worker = new Worker(BOOTSTRAP, {
    eval: true,
    workerData: { ...data, ...entry },
    execArgv: [],
    stdout: false,
    stderr: false,
    ...(youngMb !== undefined ? { resourceLimits: { maxYoungGenerationSizeMb: youngMb } } : {}),
  });
  return {
    kind: 'thread',
    pid: undefined,
    send: (m) => worker.postMessage(m),
    onMessage: (fn) => worker.on('message', fn),
    onExit: (fn) => worker.once('exit', (code) => fn(code, null)),
    onError: (fn) => worker.on('error', fn),
    terminate: async () => {
      await worker.terminate();
    },
  };
}

// ---- child process --------------------------------------------------------------------------------

/** A child asked to stop (its IPC channel closed) gets this long to exit before it is killed. */
const PROCESS_STOP_GRACE_MS = 300;

let pdeathsig: boolean | undefined;

/**
 * Whether `setpriv --pdeathsig SIGKILL` works here (util-linux): then a relay child is started through it
 * and the kernel kills it when ferry media dies, even while its own event loop is busy. Without it the
 * child still exits when its IPC channel closes (ferry media gone). Checked once per process.
 */
function pdeathsigAvailable(): boolean {
  pdeathsig ??= spawnSync('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  return pdeathsig;
}

/**
 * The Node options of a relay child process: what a worker thread gets from its process (tsx from the
 * sources, source maps for the bundle, V8's heap growing step) or from its resource limits (the young
 * generation: `--max-semi-space-size`, a third of the thread's young generation limit).
 */
export function relayProcessExecArgv(entry: WorkerEntry, youngMb: number | undefined, heapGrowing: number): string[] {
  const args = entry.tsxApi ? ['--require', require.resolve('tsx/cjs')] : ['--enable-source-maps'];
  if (youngMb !== undefined) args.push(`--max-semi-space-size=${Math.max(1, Math.round(youngMb / 3))}`);
  if (heapGrowing > 0) args.push(`--heap-growing-percent=${heapGrowing}`);
  return args;
}

/**
 * A child process (child_process.fork, `serialization: 'advanced'`: the messages are structured-cloned as
 * between threads). Its stdout and stderr are ferry media's own, so its winston lines go to the same
 * stream, one line per event, as a thread's do. It never outlives ferry media: it exits when its IPC
 * channel closes, and where setpriv is available the kernel also kills it when ferry media dies.
 */
export function startProcessTransport(data: Omit<RelayWorkerData, 'module'>): RelayTransport {
  const entry = relayWorkerEntry();
  const execArgv = relayProcessExecArgv(entry, relayWorkerYoungGenerationMb(), heapGrowingPercent());
  const viaSetpriv = pdeathsigAvailable();
  const child: ChildProcess = fork(entry.module, [RELAY_PROCESS_FLAG], {
    execPath: viaSetpriv ? 'setpriv' : process.execPath,
    execArgv: viaSetpriv ? ['--pdeathsig', 'SIGKILL', '--', process.execPath, ...execArgv] : execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let exited = false;
  let exitFn: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
  let markGone: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => {
    markGone = resolve;
  });
  const exit = (code: number | null, signal: NodeJS.Signals | null): void => {
    if (exited) return;
    exited = true;
    markGone();
    exitFn?.(code, signal);
  };
  // gone = exited and its IPC channel read to the end ('disconnect'), so every message the child sent
  // before it died has been handled before its death is; a channel that does not close within a second
  // of the exit (nothing should hold it) does not delay the report longer
  let exitStatus: [number | null, NodeJS.Signals | null] | undefined;
  const maybeGone = (): void => {
    if (exitStatus && !child.connected) exit(...exitStatus);
  };
  child.once('exit', (code, signal) => {
    exitStatus = [code, signal];
    maybeGone();
    if (!exited) setTimeout(() => exit(code, signal), 1000).unref();
  });
  child.once('disconnect', maybeGone);
  // a child that could not be started at all emits 'error' and never 'exit'
  child.on('error', () => {
    if (child.pid === undefined) exit(null, null);
  });
  const send = (m: ToRelayProcess): void => {
    // a closed channel means the child is gone or going: its 'exit' reports it
    if (child.connected) child.send(m, undefined, {}, () => undefined);
  };
  send({ k: 'init', data: { ...data, module: entry.module } });
  return {
    kind: 'process',
    get pid() {
      return child.pid;
    },
    send,
    onMessage: (fn) => child.on('message', (m) => fn(m as FromWorker)),
    onExit: (fn) => {
      exitFn = fn;
    },
    onError: (fn) => child.on('error', fn),
    terminate: async () => {
      if (exited || child.pid === undefined) return;
      if (child.connected) child.disconnect(); // the child exits when its channel closes
      const timer = setTimeout(() => child.kill('SIGKILL'), PROCESS_STOP_GRACE_MS);
      await gone;
      clearTimeout(timer);
    },
  };
}
