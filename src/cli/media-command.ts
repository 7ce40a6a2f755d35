import { createLogger } from '../common/logger';
import { runProcess } from '../common/process-runner';
import { startMediaServer } from '../media/server/media-server';
import { isLoopbackHost } from '../common/listen-address';
import { portInUseMessage } from '../common/port-in-use';
import { loadMediaConfig } from '../media/server/media-config';
import { applyHeapGrowingPercent } from '../media/server/heap-growing';
import { startMainLoopWatchdog, type MainLoopWatchdog } from '../media/server/main-loop-watchdog';

/**
 * `ferry media`: the Kurento-protocol media server. Prints exactly one stdout line once listening,
 * `ferry media ready {"port":<port>}`; SIGTERM/SIGINT/SIGHUP release everything (peers told) and
 * exit 0. A stray rejection or exception is logged and counted (/stats `processFaults`), and media
 * keeps flowing. Signals, watchdog and parent watch: src/common/process-runner.ts.
 * The Kurento port (FERRY_MEDIA_HOST, default 127.0.0.1) has no authentication: on any other address
 * a one-line warning says so (docs/security.md, "Listeners").
 * A main thread stuck for FERRY_MEDIA_WATCHDOG_MS ends the process (main-loop-watchdog.ts).
 */
export async function run(_args: string[]): Promise<void> {
  const logger = createLogger('media');
  applyHeapGrowingPercent();
  let server: Awaited<ReturnType<typeof startMediaServer>> | undefined;
  let watchdog: MainLoopWatchdog | undefined;
  runProcess({
    name: 'media',
    logger,
    stop: async () => {
      await server?.close();
      await watchdog?.stop();
    },
  });
  try {
    // ready once listening: the relay workers load meanwhile (docs/media-server.md, "Relay workers")
    server = await startMediaServer({ logger, awaitWorkers: false });
  } catch (err) {
    const inUse = portInUseMessage(err, [{ variable: 'FERRY_MEDIA_PORT', port: loadMediaConfig().port }]);
    if (!inUse) throw err;
    process.stderr.write(`ferry media: cannot start: ${inUse}\n`);
    process.exit(1);
  }
  watchdog = startMainLoopWatchdog(server.config.watchdogMs, 'media');
  if (!isLoopbackHost(server.config.host)) {
    process.stderr.write(`ferry media: WARNING: the Kurento port listens on ${server.config.host}:${server.port}, reachable from other hosts, and the Kurento protocol has no authentication: whoever reaches it can release any call. Keep FERRY_MEDIA_HOST on 127.0.0.1 or admit only the gateway's host in a firewall\n`);
  }
  process.stdout.write(`ferry media ready ${JSON.stringify({ port: server.port })}\n`);
}
