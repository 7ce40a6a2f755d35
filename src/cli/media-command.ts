import { createLogger } from '../common/logger';
import { startMediaServer } from '../media/server/media-server';

/**
 * `ferry media`: the Kurento-protocol media server. Prints exactly one stdout line once listening,
 * `ferry media ready {"port":<port>}`; SIGTERM/SIGINT release everything (peers told) and exit 0.
 */
export async function run(_args: string[]): Promise<void> {
  const logger = createLogger('media');
  const server = await startMediaServer({ logger });
  process.stdout.write(`ferry media ready ${JSON.stringify({ port: server.port })}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('ferry media stopping', { signal });
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('ferry media shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
