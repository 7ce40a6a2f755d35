import { format as utilFormat } from 'node:util';
import winston from 'winston';

/** How log lines look: `json` (one JSON object per line, for machines) or `pretty` (one readable line per event). */
export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const;

/**
 * FERRY_LOG_FORMAT: `json` or `pretty`; unset, `pretty` when stderr (where logs go) is a terminal and
 * `json` otherwise. Any other value throws naming the variable (start-up fails).
 */
export function logFormatFromEnv(env: Record<string, string | undefined>, stderrIsTty: boolean): LogFormat {
  const v = env.FERRY_LOG_FORMAT;
  if (v === undefined || v === '') return stderrIsTty ? 'pretty' : 'json';
  if (v === 'json' || v === 'pretty') return v;
  throw new Error(`environment variable FERRY_LOG_FORMAT=${JSON.stringify(v)} must be json or pretty`);
}

/** FERRY_LOG_LEVEL (default info, warn under NODE_ENV=test); an unknown level throws naming the variable. */
export function logLevelFromEnv(env: Record<string, string | undefined>): string {
  const v = env.FERRY_LOG_LEVEL;
  if (v === undefined || v === '') return env.NODE_ENV === 'test' ? 'warn' : 'info';
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v;
  throw new Error(`environment variable FERRY_LOG_LEVEL=${JSON.stringify(v)} must be one of ${LOG_LEVELS.join(', ')}`);
}

/** winston's key for the finished line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

const COLOURS: Record<string, string> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[36m', debug: '\x1b[90m' };
const RESET = '\x1b[0m';
/** Longest value shown in a pretty line (a whole SDP would drown the line). */
const MAX_VALUE = 300;

function prettyValue(v: unknown): string {
  let text = typeof v === 'string' ? v : v instanceof Error ? `${v.name}: ${v.message}` : utilFormat('%j', v);
  text = text.replace(/\r?\n/g, '\\n');
  if (text.length > MAX_VALUE) text = `${text.slice(0, MAX_VALUE)}…`;
  return /[\s"=]/.test(text) || text === '' ? `"${text.replace(/"/g, '\\"')}"` : text;
}

/**
 * One event as one readable line: `16:31:02.114 WARN  media.rpc  message  key=value key="a value"`.
 * Newlines inside values are shown as \n, so an event never spans lines; colours only with `colour`.
 */
export function prettyLine(info: Record<string, unknown>, colour: boolean): string {
  const { level, message, timestamp, component, ...rest } = info as Record<string, unknown> & { level: string; message: unknown; timestamp?: string };
  const time = typeof timestamp === 'string' && timestamp.length >= 23 ? timestamp.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const lvl = String(level).toUpperCase().padEnd(5);
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${prettyValue(v)}`)
    .join(' ');
  const text = String(message).replace(/\r?\n/g, '\\n');
  const shownLevel = colour && COLOURS[String(level)] ? `${COLOURS[String(level)]}${lvl}${RESET}` : lvl;
  return [time, shownLevel, component ? String(component) : '-', text, fields].filter((p) => p !== '').join('  ');
}

/** The winston format for `format` (timestamps on both). */
export function winstonFormat(format: LogFormat, colour: boolean): winston.Logform.Format {
  if (format === 'json') return winston.format.combine(winston.format.timestamp(), winston.format.json());
  return winston.format.combine(
    winston.format.timestamp(),
    winston.format((info) => {
      (info as Record<string | symbol, unknown>)[MESSAGE] = prettyLine(info as unknown as Record<string, unknown>, colour);
      return info;
    })(),
  );
}
