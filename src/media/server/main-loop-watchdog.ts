import { Worker } from 'node:worker_threads';

/**
 * Main-loop watchdog for ferry media (FERRY_MEDIA_WATCHDOG_MS, docs/media-server.md, "Main-loop watchdog").
 *
 * A main thread blocked for good answers no Kurento request, ping or /stats and reads no socket, yet the
 * process lives, so nobody sees a fault: the gateway only gives a media server up when its control
 * WebSocket closes. Here the main thread bumps a counter in a SharedArrayBuffer every second (a quarter of
 * a shorter limit); a worker thread (which keeps running while the main thread is stuck) checks it as often, and once it has not
 * moved for `stalledMs` it writes one JSON line to stderr (the main thread's logger cannot run) and kills
 * the whole process with SIGKILL: the control connections close, the gateway ends that server's calls,
 * and `ferry start` restarts the part.
 *
 * The worker is plain JavaScript (eval, no execArgv): no loader, nothing of the parent's flags.
 */

/** Beat and check period: every second, faster for a short limit so a late beat is never a stall. */
function beatMs(stalledMs: number): number {
  return Math.min(1000, Math.floor(stalledMs / 4));
}

/** Below this (other than 0 = off) a beat delayed by ordinary work would look like a stall. */
export const MIN_MEDIA_WATCHDOG_MS = 1000;

export const DEFAULT_MEDIA_WATCHDOG_MS = 20000;

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const counter = new Int32Array(workerData.buffer);
const limitMs = workerData.stalledMs;
let last = Atomics.load(counter, 0);
let checkedAt = Date.now();
// stall time counts only while this worker itself runs: a gap between its own checks of more than twice
// its period means the whole process (or the host) was paused — SIGSTOP, a suspended VM — and the main
// thread could not beat either; that pause counts as at most two periods, so a resume is never a stall
let stalledMs = 0;
const timer = setInterval(() => {
  const now = Date.now();
  const gap = Math.max(0, now - checkedAt);
  checkedAt = now;
  const value = Atomics.load(counter, 0);
  if (value !== last) { last = value; stalledMs = 0; return; }
  stalledMs += Math.min(gap, 2 * workerData.checkMs);
  if (stalledMs < limitMs) return;
  clearInterval(timer);
  const line = JSON.stringify({ level: 'error', component: workerData.component, message: 'main thread stalled: ending the process', stalledMs, limitMs, pid: process.pid, timestamp: new Date(now).toISOString() });
  try { fs.writeSync(2, line + '\\n'); } catch {}
  process.kill(process.pid, 'SIGKILL');
}, workerData.checkMs);
parentPort.once('message', () => { clearInterval(timer); parentPort.close(); });
`;

export interface MainLoopWatchdog {
  /** Stop beating and end the worker (a normal close). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Validates a FERRY_MEDIA_WATCHDOG_MS value: 0 (off) or at least MIN_MEDIA_WATCHDOG_MS. Throws naming the
 * variable otherwise.
 */
export function checkMediaWatchdogMs(ms: number): number {
  if (!Number.isInteger(ms) || ms < 0 || (ms !== 0 && ms < MIN_MEDIA_WATCHDOG_MS)) {
    throw new Error(`FERRY_MEDIA_WATCHDOG_MS=${ms} must be 0 (off) or at least ${MIN_MEDIA_WATCHDOG_MS} (how long the main thread may be stuck before the process is ended)`);
  }
  return ms;
}

/**
 * Starts the watchdog: the process is killed once the main thread has not run its beat for `stalledMs`.
 * 0 = off (returns a no-op). Neither the beat nor the worker keeps the process alive.
 */
export function startMainLoopWatchdog(stalledMs: number, component = 'media'): MainLoopWatchdog {
  checkMediaWatchdogMs(stalledMs);
  if (stalledMs === 0) return { stop: async () => undefined };
  const buffer = new SharedArrayBuffer(4);
  const counter = new Int32Array(buffer);
  const periodMs = beatMs(stalledMs);
  const beat = setInterval(() => Atomics.add(counter, 0, 1), periodMs);
  beat.unref();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { buffer, stalledMs, checkMs: periodMs, component },
    execArgv: [],
    stdout: false,
    stderr: false,
  });
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  // an error inside the worker ends only the watchdog, never the process
  worker.on('error', () => undefined);
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        clearInterval(beat);
        worker.postMessage('stop');
        await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
        await worker.terminate();
      })();
      return stopped;
    },
  };
}
