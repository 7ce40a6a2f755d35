import { Writable } from 'node:stream';
import winston from 'winston';

/**
 * A winston logger at `level` (debug unless given) whose JSON lines are kept, parsed, in `lines` (as the product logs them),
 * for tests that assert what was logged. `log` and `logger` are the same logger.
 */
export function captureLog(level = 'debug'): { log: winston.Logger; logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = winston.createLogger({ level, format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
  return { log, logger: log, lines };
}
