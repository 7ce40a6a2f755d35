import { format } from 'node:util';
import { LogThrottle } from '../../common/log-throttle';
import { Logger } from '../../common/logger';

/**
 * kurento-client (and the packages under it) talk on the process's console: `console.log('reconnect to
 * server', n, delay, sessionId)` on every reconnection attempt of a lost media server, and
 * `console.trace(error)` — a stack dump — from its default callback whenever a request made without a
 * callback fails (a refused create, a request that never got an answer). Other dependencies do the
 * same now and then. The gateway's own output is one JSON line per event, so in the gateway process the
 * global `console` is replaced by one whose log/info/debug/warn/error/trace calls become one logger
 * line each: `library console output`, with the package the call came from (`library`), the console
 * method, and the text — errors as their name, message and code, never a stack. A message that
 * repeats (same package, method and text with its numbers ignored) is logged once per `intervalMs`,
 * with the number left out since the previous line (`suppressedSinceLastLine`).
 *
 * Everything else of the console (its streams, table, time, …) is the original's. Installed by the
 * `ferry gateway` command only, never by the Gateway class: a test process keeps its own console.
 */

export type ConsoleMethod = 'log' | 'info' | 'debug' | 'warn' | 'warning' | 'error' | 'trace';

const LEVELS: Record<ConsoleMethod, 'info' | 'debug' | 'warn' | 'error'> = {
  log: 'info',
  info: 'info',
  debug: 'debug',
  warn: 'warn',
  // kurento-client calls console.warning (not a Node method) in one place: make it harmless too
  warning: 'warn',
  error: 'error',
  trace: 'warn',
};

/** Longest text kept from one console call. */
const MAX_TEXT = 500;

export interface LibraryConsoleOptions {
  /** one line per repeated message per this long (default 5000 ms) */
  intervalMs?: number;
  now?: () => number;
}

/** One argument as text on one line; an Error as `name: message (code)`, without its stack. */
export function describeArgument(arg: unknown): string {
  if (arg instanceof Error) {
    const code = (arg as { code?: unknown }).code;
    return `${arg.name}: ${arg.message}${code !== undefined ? ` (code ${String(code)})` : ''}`;
  }
  if (typeof arg === 'string') return arg;
  return format('%o', arg);
}

/** The text of one console call: its arguments on one line, cut at MAX_TEXT characters. */
export function consoleText(args: readonly unknown[]): string {
  const text = args.map(describeArgument).join(' ').replace(/\s*\n\s*/g, ' ');
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

/** The npm package of the nearest caller frame below node_modules, or 'unknown'. */
export function callingLibrary(stack: string | undefined): string {
  for (const line of (stack ?? '').split('\n').slice(1)) {
    const m = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(line);
    if (m) return m[1]!.replace(/\\/g, '/');
  }
  return 'unknown';
}

/**
 * Replaces `globalThis.console` with the routed one; returns a function that puts the original back.
 * Installing twice replaces the first routing.
 */
export function routeLibraryConsole(log: Logger, options: LibraryConsoleOptions = {}): () => void {
  const original = globalThis.console;
  const throttle = new LogThrottle(options.intervalMs ?? 5000, options.now ?? Date.now);
  const routed = Object.create(original) as Console & Record<string, unknown>;
  for (const method of Object.keys(LEVELS) as ConsoleMethod[]) {
    routed[method] = (...args: unknown[]): void => {
      try {
        const library = callingLibrary(new Error().stack);
        const text = consoleText(args);
        const admitted = throttle.admit(`${library} ${method} ${text.replace(/\d+/g, '#').slice(0, 120)}`);
        if (!admitted) return;
        log.log(LEVELS[method], 'library console output', {
          library,
          method,
          text,
          ...(admitted.suppressed ? { suppressedSinceLastLine: admitted.suppressed } : {}),
        });
      } catch {
        /* a console call must never throw into the library */
      }
    };
  }
  globalThis.console = routed;
  return () => {
    if (globalThis.console === routed) globalThis.console = original;
  };
}
