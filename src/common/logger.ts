import winston from 'winston';

/**
 * Structured logging shared by the three ferry processes: one JSON line per event.
 * Pass `callId` (and any other ids) in the meta object so each line names its call.
 * Never log secrets (passwords, digest responses, DTLS keys, drachtio secret).
 */
export type Logger = winston.Logger;

const level = process.env.FERRY_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info');

const root = winston.createLogger({
  level,
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
});

/** A child logger whose every line carries `component` (e.g. 'media.rpc', 'sip.transaction'). */
export function createLogger(component: string, meta: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...meta });
}
