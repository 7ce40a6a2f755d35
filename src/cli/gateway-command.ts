import { ConfigError } from '../gateway/config/config-error';
import { loadGatewayConfig } from '../gateway/config/gateway-config';
import { Gateway } from '../gateway/gateway';

/**
 * `ferry gateway`: the B2BUA app. Reads its environment and sip-config (docs/configuration.md);
 * a bad configuration fails start-up naming file, line and field. Once up it prints one stdout
 * line, `ferry gateway ready {"http":<port>}`. SIGTERM/SIGINT stop it without ending calls (the
 * media server and SIP engine keep them; another gateway adopts them).
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
  const gateway = new Gateway(config);
  await gateway.start();
  process.stdout.write(`ferry gateway ready ${JSON.stringify({ http: gateway.httpPort, instance: config.instanceId })}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    gateway.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
