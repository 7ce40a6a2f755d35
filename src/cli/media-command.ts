import { createLogger } from '../common/logger';
import { runProcess } from '../common/process-runner';
import { startMediaServer } from '../media/server/media-server';

/**
 * `ferry media`: the Kurento-protocol media server. Prints exactly one stdout line once listening,
 * `ferry media ready {"port":<port>}`; SIGTERM/SIGINT/SIGHUP release everything (peers told) and
 * exit 0. A stray rejection or exception is logged and counted (/stats `processFaults`), and media
 * keeps flowing. Signals, watchdog and parent watch: src/common/process-runner.ts.
 */
export async function run(_args: string[]): Promise<void> {
  const logger = createLogger('media');
  let server: Awaited<ReturnType<typeof startMediaServer>> | undefined;
  runProcess({ name: 'media', logger, stop: async () => server?.close() });
  server = await startMediaServer({ logger });
  process.stdout.write(`ferry media ready ${JSON.stringify({ port: server.port })}\n`);
}
