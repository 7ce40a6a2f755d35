import type { Logger } from './logger';
import { createLogger } from './logger';

/**
 * Faults a ferry process survives instead of dying of them: a promise rejected with nobody
 * listening, an exception nobody caught, and a throw inside a guarded callback (timers, events).
 * Each is logged as one JSON line (message and where it was thrown, no stack dump) and counted;
 * the counters are exposed by each process (ferry media's /stats, the gateway's /metrics).
 */
export type ProcessFaultKind = 'unhandledRejection' | 'uncaughtException' | 'guardedCallback';

export type ProcessFaultCounts = Record<ProcessFaultKind, number>;

const counts: ProcessFaultCounts = { unhandledRejection: 0, uncaughtException: 0, guardedCallback: 0 };
let faultLogger: Logger | undefined;

/** The logger fault lines go to (the process runner sets its own; default component 'process'). */
export function setFaultLogger(logger: Logger): void {
  faultLogger = logger;
}

function logger(): Logger {
  faultLogger ??= createLogger('process');
  return faultLogger;
}

/** A copy of the counters since the process started. */
export function processFaultCounts(): ProcessFaultCounts {
  return { ...counts };
}

/**
 * An error as log fields on one line: `error` (`Name: message`) and `at` (its first stack frame),
 * never the whole stack (logs are one line per event).
 */
export function errorForLog(err: unknown): { error: string; at?: string } {
  const at = whereThrown(err);
  return { error: describe(err), ...(at ? { at } : {}) };
}

/** First stack frame of an error, e.g. `at expire (/x/y.ts:10:5)`, so a fault line says where. */
function whereThrown(err: unknown): string | undefined {
  if (!(err instanceof Error) || typeof err.stack !== 'string') return undefined;
  const frame = err.stack.split('\n').find((l) => l.trim().startsWith('at '));
  return frame?.trim();
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  try {
    return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/** Count one fault and log it on one line. `meta` may carry a callId or the guarded callback's name. */
export function recordFault(kind: ProcessFaultKind, err: unknown, meta: Record<string, unknown> = {}): void {
  counts[kind] += 1;
  const where = whereThrown(err);
  logger().error('process fault survived', { kind, error: describe(err), ...(where ? { where } : {}), count: counts[kind], ...meta });
}

/**
 * Wraps a callback (a timer's, an event listener's) so that a throw — or a rejection of the promise
 * it returns — is logged and counted as a `guardedCallback` fault instead of taking the process down.
 * `what` names the callback in the log line (e.g. 'sip.pending-request-expiry').
 */
export function guarded<A extends unknown[]>(what: string, fn: (...args: A) => unknown, meta: Record<string, unknown> = {}): (...args: A) => void {
  return (...args: A): void => {
    try {
      const result = fn(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, (err: unknown) => recordFault('guardedCallback', err, { callback: what, ...meta }));
      }
    } catch (err) {
      recordFault('guardedCallback', err, { callback: what, ...meta });
    }
  };
}

let handlersInstalled = false;

/**
 * Makes this process survive unhandled rejections and uncaught exceptions: each is logged on one line
 * and counted. Idempotent.
 */
export function installFaultHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('unhandledRejection', (reason: unknown) => recordFault('unhandledRejection', reason));
  process.on('uncaughtException', (err: unknown) => recordFault('uncaughtException', err));
  // stdout/stderr whose reader is gone (a supervisor killed): the output has nowhere to go. Without a
  // listener each failed write would be an uncaught exception whose own log line fails again, a loop.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
}
