import { ConfigError } from '../gateway/config/config-error';
import { loadGatewayConfig } from '../gateway/config/gateway-config';
import { createLogger } from '../common/logger';
import { runProcess } from '../common/process-runner';
import { stopChildrenInOrder } from '../gateway/supervisor/stop-children';
import { SupervisedChild, SupervisedPart } from '../gateway/supervisor/child-process-supervisor';
import { chooseGatewayStateStore } from './gateway-state-store';

/**
 * `ferry start` (`npm start`): runs ferry sip, ferry media and ferry gateway as supervised child
 * processes on embedded defaults (each overridable by the same variables the parts read), prints
 * where the webphone page is, and stops them all on Ctrl-C / SIGTERM.
 */
export async function run(_args: string[]): Promise<void> {
  const env = process.env;
  const host = env.FERRY_HOST ?? '127.0.0.1';
  // fail fast on a bad configuration, before anything is spawned
  try {
    loadGatewayConfig({ ...env, FERRY_SIP_CONTROL_URL: '127.0.0.1:1', FERRY_MEDIA_URL: 'ws://127.0.0.1:1/kurento' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ferry start: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const sip = new SupervisedPart({ name: 'sip', env: { FERRY_SIP_HOST: env.FERRY_SIP_HOST ?? host } }, log);
  const media = new SupervisedPart({ name: 'media', env: { FERRY_MEDIA_HOST: env.FERRY_MEDIA_HOST ?? host } }, log);
  const parts: SupervisedChild[] = [sip, media];
  let gateway: SupervisedChild | undefined;
  /** Children stopped after the engines (e.g. a private store the gateway writes to). */
  const stopLast: SupervisedChild[] = [];
  // SIGTERM/SIGINT/SIGHUP (terminal closed) stop the whole tree within the shutdown watchdog;
  // a second signal, or the watchdog, SIGKILLs the children and exits at once
  const runner = runProcess({
    name: 'start',
    logger: createLogger('start'),
    stop: async () => {
      process.stdout.write('ferry: stopping\n');
      // gateway first (it leaves calls to the others), then the engines
      const engines = parts.filter((p) => p !== gateway && !stopLast.includes(p));
      await stopChildrenInOrder([gateway ? [gateway] : [], engines, stopLast]);
      process.stdout.write('ferry: stopped\n');
    },
    forceStop: () => [...parts, ...stopLast].forEach((p) => p.kill()),
  });
  // a start-up failure caused by a stop already under way (Ctrl-C while starting) must not force it
  const stopAll = async (code: number): Promise<void> => {
    if (!runner.stopping) runner.shutdown('start-failed', code);
  };
  try {
    // the gateway's calls and registrations: REDIS_URL, else a private supervised redis-server, else memory (warned)
    const store = await chooseGatewayStateStore(env, log);
    if (store.privateRedis) stopLast.push(store.privateRedis.child);
    const [sipInfo, mediaInfo] = await Promise.all([sip.start(), media.start(), store.privateRedis?.child.start()]);
    gateway = new SupervisedPart(
      {
        name: 'gateway',
        env: {
          FERRY_SIP_CONTROL_URL: `${env.FERRY_SIP_HOST ?? host}:${sipInfo.control}`,
          FERRY_MEDIA_URL: `ws://${env.FERRY_MEDIA_HOST ?? host}:${mediaInfo.port}/kurento`,
          FERRY_WEBPHONE_WS_URL: env.FERRY_WEBPHONE_WS_URL ?? `ws://${env.FERRY_SIP_HOST ?? host}:${sipInfo.ws}`,
          FERRY_HTTP_HOST: env.FERRY_HTTP_HOST ?? host,
          // the same instance id for every restart of the gateway: it resumes its own calls at once
          ...store.gatewayEnv,
        },
      },
      log,
    );
    parts.push(gateway);
    const gw = await gateway.start();
    // a restarted gateway serves the API and the webphone page on the same port
    gateway.spec.env = { ...gateway.spec.env, FERRY_HTTP_PORT: String(gw.http) };
    const info = {
      sip: sipInfo.sip, ws: sipInfo.ws, control: sipInfo.control, media: mediaInfo.port, http: gw.http,
      pids: { sip: sip.pid, media: media.pid, gateway: gateway.pid, ...(store.privateRedis ? { redis: store.privateRedis.child.pid } : {}) },
      store: store.mode, gatewayId: store.gatewayEnv.FERRY_GATEWAY_ID,
      ...(store.privateRedis ? { redis: store.privateRedis.port, dataDir: store.privateRedis.dataDir } : {}),
    };
    process.stdout.write(`ferry ready ${JSON.stringify(info)}\n`);
    process.stdout.write(`ferry: webphone page at http://${env.FERRY_HTTP_HOST ?? host}:${gw.http}/  (SIP: udp/tcp ${sipInfo.sip}, WebSocket ${sipInfo.ws}; Ctrl-C stops everything)\n`);
  } catch (err) {
    log(`ferry start: ${(err as Error).message}`);
    await stopAll(1);
  }
}
