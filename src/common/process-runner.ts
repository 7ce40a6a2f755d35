import { envInt } from './env';
import type { Logger } from './logger';
import { guarded, installFaultHandlers, setFaultLogger } from './process-faults';

/**
 * The one process policy of every ferry process (sip, media, gateway, start):
 * - SIGTERM, SIGINT and SIGHUP (terminal closed) stop the process gracefully — `stop()` is the
 *   process's own graceful stop (for `ferry start`: stopping its children);
 * - a second signal while stopping forces exit at once (after `forceStop()`), unless it comes within
 *   REPEATED_SIGNAL_WINDOW_MS of the first: that is one Ctrl-C delivered twice (terminal and npm);
 * - a shutdown watchdog forces exit when the graceful stop hangs (FERRY_SHUTDOWN_WATCHDOG_MS);
 * - a supervised child stops when its parent dies: the supervisor passes its pid in
 *   FERRY_PARENT_PID and the child stops as soon as its parent pid changes (the parent's SIGKILL
 *   included; the supervisor also asks the kernel for a death signal where setpriv exists);
 * - unhandled rejections and uncaught exceptions are logged and counted, never fatal
 *   (src/common/process-faults.ts).
 */
export interface ProcessRunnerOptions {
  /** 'sip' | 'media' | 'gateway' | 'start' — names the process in its log lines. */
  name: string;
  logger: Logger;
  /** Graceful stop; the process exits with `code` when it resolves (1 if it rejects). */
  stop: (reason: string) => Promise<void>;
  /** Synchronous last resort before a forced exit (e.g. SIGKILL the children). */
  forceStop?: () => void;
  /** Bound on a graceful stop before exit is forced. Default FERRY_SHUTDOWN_WATCHDOG_MS (1500). */
  watchdogMs?: number;
  /** Parent to outlive no one: default FERRY_PARENT_PID (set by the supervisor), none otherwise. */
  parentPid?: number;
  /** How often the parent is checked (ms). Default 200. */
  parentPollMs?: number;
}

export interface ProcessRunner {
  /** Stops the process as a signal would (e.g. after a fatal start-up error, with code 1). */
  shutdown(reason: string, code?: number): void;
  readonly stopping: boolean;
}

export const DEFAULT_SHUTDOWN_WATCHDOG_MS = 1500;
const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
/** A signal this soon after the first is the same request (terminal + wrapper), not "force it". */
export const REPEATED_SIGNAL_WINDOW_MS = 300;
/** Exit code of a stop forced by a second signal or by the watchdog. */
export const FORCED_EXIT_CODE = 70;

export function runProcess(options: ProcessRunnerOptions): ProcessRunner {
  const { name, logger } = options;
  setFaultLogger(logger);
  installFaultHandlers();
  const watchdogMs = options.watchdogMs ?? envInt('FERRY_SHUTDOWN_WATCHDOG_MS', DEFAULT_SHUTDOWN_WATCHDOG_MS);
  const parentPid = options.parentPid ?? parentFromEnv();
  let stopping = false;

  const forceExit = (why: string): void => {
    logger.warn('ferry process stop forced', { process: name, why });
    try {
      options.forceStop?.();
    } catch {
      // exiting anyway
    }
    process.exit(FORCED_EXIT_CODE);
  };

  const shutdown = (reason: string, code = 0): void => {
    if (stopping) {
      forceExit(`${reason} while stopping`);
      return;
    }
    stopping = true;
    logger.info('ferry process stopping', { process: name, reason });
    const watchdog = setTimeout(() => forceExit(`graceful stop exceeded ${watchdogMs} ms`), watchdogMs);
    let stopped: Promise<void>;
    try {
      stopped = options.stop(reason);
    } catch (err) {
      stopped = Promise.reject(err);
    }
    stopped.then(
      () => {
        clearTimeout(watchdog);
        process.exit(code);
      },
      (err: unknown) => {
        clearTimeout(watchdog);
        logger.error('ferry process stop failed', { process: name, error: err instanceof Error ? err.message : String(err) });
        process.exit(1);
      },
    );
  };

  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // one Ctrl-C often arrives twice at once: from the terminal (to the whole foreground group) and
    // forwarded by a wrapper such as `npm start`; only a later signal means "force it"
    if (stopping && firstSignalAt > 0 && Date.now() - firstSignalAt < REPEATED_SIGNAL_WINDOW_MS) {
      logger.info('ferry process signal repeated at once; already stopping', { process: name, signal });
      return;
    }
    if (!stopping) firstSignalAt = Date.now();
    shutdown(signal);
  };
  for (const signal of SIGNALS) process.on(signal, () => onSignal(signal));

  if (parentPid !== undefined) {
    const poll = setInterval(
      guarded('process.parent-watch', () => {
        if (process.ppid !== parentPid && !stopping) shutdown('parent-exited');
      }),
      options.parentPollMs ?? 200,
    );
    poll.unref();
  }

  return {
    shutdown,
    get stopping() {
      return stopping;
    },
  };
}

/** FERRY_PARENT_PID, read once and removed so this process's own children do not inherit it. */
function parentFromEnv(): number | undefined {
  const raw = process.env.FERRY_PARENT_PID;
  delete process.env.FERRY_PARENT_PID;
  const pid = raw ? Number(raw) : NaN;
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}
