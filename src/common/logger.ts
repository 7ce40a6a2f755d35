import winston from 'winston';
import { logFormatFromEnv, logLevelFromEnv, winstonFormat } from './log-format';

/**
 * Structured logging shared by the three ferry processes: one line per event on stderr, as JSON
 * (FERRY_LOG_FORMAT=json, the default when stderr is not a terminal) or as a readable line
 * (FERRY_LOG_FORMAT=pretty, the default on a terminal): src/common/log-format.ts.
 * Pass `callId` (and any other ids) in the meta object so each line names its call.
 * Never log secrets (passwords, digest responses, DTLS keys, drachtio secret).
 */
export type Logger = winston.Logger;

/** The format and level this process logs with, read (and checked) once when the module loads. */
export const logSettings = {
  format: logFormatFromEnv(process.env, process.stderr.isTTY === true),
  level: logLevelFromEnv(process.env),
};

const root = winston.createLogger({
  level: logSettings.level,
  format: winstonFormat(logSettings.format, process.stderr.isTTY === true),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'debug', 'verbose', 'silly'] })],
});

/** A child logger whose every line carries `component` (e.g. 'media.rpc', 'sip.transaction'). */
export function createLogger(component: string, meta: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...meta });
}
