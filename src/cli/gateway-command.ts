import { createLogger } from '../common/logger';
import { runProcess } from '../common/process-runner';
import { ConfigError } from '../gateway/config/config-error';
import { loadGatewayConfig } from '../gateway/config/gateway-config';
import { Gateway } from '../gateway/gateway';
import { routeLibraryConsole } from '../gateway/kurento/library-console';
import { portInUseMessage } from '../common/port-in-use';
import { openFileLimit, openFileLimitWarning } from '../common/open-file-limit';
import { DEFAULT_HTTP_LIMITS, HTTP_LIMIT_VARIABLES } from '../common/http-limits';

/**
 * `ferry gateway`: the B2BUA app. Reads its environment and sip-config (docs/configuration.md);
 * a bad configuration fails start-up naming file, line and field. Once up it prints one stdout
 * line, `ferry gateway ready {"http":<port>}`. SIGTERM/SIGINT/SIGHUP stop it without ending calls
 * (the media server and SIP engine keep them; another gateway adopts them). Signals, watchdog,
 * parent watch and fault counting (/metrics `ferry_process_faults_total`): src/common/process-runner.ts.
 * A cap on the HTTP/HTTPS connections (FERRY_HTTP_MAX_CONNECTIONS) that does not fit under the process's
 * open-file limit is one warning line on stderr once the configuration is read (src/common/open-file-limit.ts).
 */
export async function run(_args: string[]): Promise<void> {
  let config;
  try {
    config = loadGatewayConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ferry gateway: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const fdWarning = openFileLimitWarning('ferry gateway', HTTP_LIMIT_VARIABLES.maxConnections,
    config.httpLimits?.maxConnections ?? DEFAULT_HTTP_LIMITS.maxConnections, openFileLimit());
  if (fdWarning) process.stderr.write(`${fdWarning}\n`);
  // dependencies' console output (kurento-client's reconnect lines and stack dumps) as logger lines
  routeLibraryConsole(createLogger('gateway.library'));
  const gateway = new Gateway(config);
  runProcess({ name: 'gateway', logger: createLogger('gateway'), stop: () => gateway.stop() });
  try {
    await gateway.start();
  } catch (err) {
    const inUse = portInUseMessage(err, [
      { variable: 'FERRY_HTTP_PORT', port: config.http.port },
      { variable: 'FERRY_HTTPS_PORT', port: config.https.tls ? config.https.port : undefined },
    ]);
    if (!inUse) throw err;
    process.stderr.write(`ferry gateway: cannot start: ${inUse}\n`);
    process.exit(1);
  }
  process.stdout.write(`ferry gateway ready ${JSON.stringify({ http: gateway.httpPort, ...(gateway.httpsPort ? { https: gateway.httpsPort } : {}), instance: config.instanceId })}\n`);
}
