import { isIP } from 'node:net';
import { loadGatewayConfig } from '../gateway/config/gateway-config';
import { loadMediaConfig } from '../media/server/media-config';
import { loadSipSettings } from './sip-settings';
import { createLogger, logSettings } from '../common/logger';
import { DEFAULT_SHUTDOWN_WATCHDOG_MS, runProcess } from '../common/process-runner';
import { childStopBudgetMs, stopChildrenInOrder } from './supervisor/stop-children';
import { envInt } from '../common/env';
import { SupervisedChild, SupervisedPart } from './supervisor/child-process-supervisor';
import { chooseGatewayStateStore } from './gateway-state-store';
import { connectHost, isLoopbackHost, isWildcardHost, LOOPBACK_HOST, urlHost } from '../common/listen-address';
import { controlExposureProblem, DEFAULT_CONTROL_SECRET } from '../sip/control/control-exposure';
import { listenerSummary, type ListenerInfo } from './listener-summary';
import { setUpApiToken } from './api-token-file';
import { setUpStartTls, tlsPortDefault, type StartTls } from './start-tls';
import { exampleCredentialsWarning } from './example-credentials';

/**
 * `ferry start` (`npm start`): runs ferry sip, ferry media and ferry gateway as supervised child
 * processes on embedded defaults (each overridable by the same variables the parts read), prints
 * where the webphone page is, and stops them all on Ctrl-C / SIGTERM. FERRY_HOST moves the public
 * listeners (SIP, WebSocket, the page); the control listeners (drachtio control port, Kurento port)
 * stay on 127.0.0.1 unless FERRY_SIP_CONTROL_HOST / FERRY_MEDIA_HOST say otherwise.
 * ferry sip's metrics port (GET /metrics, Prometheus text) is on, on a free loopback port unless FERRY_SIP_METRICS_PORT
 * says otherwise (empty: off); FERRY_HOST does not move it, only FERRY_SIP_METRICS_HOST does.
 * TLS (src/cli/start-tls.ts): SIP over TLS, secure WebSocket and the HTTPS page with FERRY_TLS_CERT/KEY or a
 * development certificate it makes in the data directory (and says how to trust); FERRY_TLS=0 turns them off.
 */
export async function run(_args: string[]): Promise<void> {
  const env = process.env;
  const host = env.FERRY_HOST ?? '127.0.0.1';
  const sipHost = env.FERRY_SIP_HOST ?? host;
  const sipControlHost = env.FERRY_SIP_CONTROL_HOST || LOOPBACK_HOST;
  const mediaHost = env.FERRY_MEDIA_HOST || LOOPBACK_HOST;
  const httpHost = env.FERRY_HTTP_HOST ?? host;
  const exposure = controlExposureProblem(sipControlHost, env.FERRY_SIP_SECRET || DEFAULT_CONTROL_SECRET);
  if (exposure) {
    process.stderr.write(`ferry start: refusing to start: ${exposure}\n`);
    process.exit(1);
  }
  let tls: StartTls | undefined;
  try {
    tls = setUpStartTls(env);
  } catch (err) {
    process.stderr.write(`ferry start: refusing to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const tlsPorts = tls ? {
    FERRY_SIP_TLS_PORT: tlsPortDefault(env.FERRY_SIP_TLS_PORT, env.FERRY_SIP_PORT, 5061),
    FERRY_SIP_WSS_PORT: tlsPortDefault(env.FERRY_SIP_WSS_PORT, env.FERRY_SIP_WS_PORT, 8089),
    FERRY_HTTPS_PORT: tlsPortDefault(env.FERRY_HTTPS_PORT, env.FERRY_HTTP_PORT, 3443),
  } : undefined;
  // RTP follows the public address; an explicit FERRY_MEDIA_HOST keeps meaning both, as for `ferry media`
  const mediaRtpHost = env.FERRY_MEDIA_RTP_HOST || env.FERRY_MEDIA_HOST || host;
  // FERRY_PUBLIC_HOST given as an IPv4 address is also where phones and browsers send media (unless FERRY_MEDIA_PUBLIC_IP says otherwise)
  const mediaPublicIp = env.FERRY_MEDIA_PUBLIC_IP || (isIP(env.FERRY_PUBLIC_HOST ?? '') === 4 ? env.FERRY_PUBLIC_HOST! : '');
  // ferry sip's metrics port: a control-plane listener, on loopback (FERRY_SIP_METRICS_HOST moves it), a free port unless set
  const sipMetricsHost = env.FERRY_SIP_METRICS_HOST || LOOPBACK_HOST;
  const sipEnv = { FERRY_SIP_HOST: sipHost, FERRY_SIP_CONTROL_HOST: sipControlHost, FERRY_SIP_METRICS_PORT: env.FERRY_SIP_METRICS_PORT ?? '0',
    ...(tls && tlsPorts ? { ...tls.partEnv, FERRY_SIP_TLS_PORT: tlsPorts.FERRY_SIP_TLS_PORT, FERRY_SIP_WSS_PORT: tlsPorts.FERRY_SIP_WSS_PORT } : {}) };
  const mediaEnv = { FERRY_MEDIA_HOST: mediaHost, FERRY_MEDIA_RTP_HOST: mediaRtpHost, ...(mediaPublicIp ? { FERRY_MEDIA_PUBLIC_IP: mediaPublicIp } : {}) };
  // fail fast on a bad configuration, before anything is spawned: each part's settings as that part will read them
  let watchdogMs: number;
  try {
    watchdogMs = envInt('FERRY_SHUTDOWN_WATCHDOG_MS', DEFAULT_SHUTDOWN_WATCHDOG_MS, env);
    loadSipSettings({ ...env, ...sipEnv });
    loadMediaConfig({}, { ...env, ...mediaEnv });
    const gatewayConfig = loadGatewayConfig({ ...env, FERRY_SIP_CONTROL_URL: '127.0.0.1:1', FERRY_MEDIA_URL: 'ws://127.0.0.1:1/kurento' });
    // the shipped users' passwords are in README.md: say so when SIP is reachable from other hosts
    const exposed = exampleCredentialsWarning(gatewayConfig.sip, sipHost, gatewayConfig.sipConfigFile);
    if (exposed) process.stderr.write(`${exposed}\n`);
  } catch (err) {
    process.stderr.write(`ferry start: refusing to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  // the children log to a pipe, not the terminal: they use the format this process chose for its stderr
  process.env.FERRY_LOG_FORMAT = logSettings.format;
  const sip = new SupervisedPart({ name: 'sip', env: sipEnv }, log);
  const media = new SupervisedPart({ name: 'media', env: mediaEnv }, log);
  const parts: SupervisedChild[] = [sip, media];
  let gateway: SupervisedChild | undefined;
  /** Children stopped after the engines (e.g. a private store the gateway writes to). */
  const stopLast: SupervisedChild[] = [];
  // SIGTERM/SIGINT/SIGHUP (terminal closed) stop the whole tree within the shutdown watchdog;
  // a second signal, or the watchdog, SIGKILLs the children and exits at once
  const runner = runProcess({
    name: 'start',
    logger: createLogger('start'),
    watchdogMs,
    stop: async () => {
      process.stdout.write('ferry: stopping\n');
      // gateway first (it leaves calls to the others), then the engines
      const engines = parts.filter((p) => p !== gateway && !stopLast.includes(p));
      await stopChildrenInOrder([gateway ? [gateway] : [], engines, stopLast], childStopBudgetMs(watchdogMs));
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
    // a restarted ferry sip listens on the same ports (a port given as 0 took a free one): phones,
    // webphones and the gateway's control connection find it where they left it
    sip.spec.env = { ...sip.spec.env, FERRY_SIP_PORT: String(sipInfo.sip), FERRY_SIP_WS_PORT: String(sipInfo.ws), FERRY_SIP_CONTROL_PORT: String(sipInfo.control),
      ...(sipInfo.tls ? { FERRY_SIP_TLS_PORT: String(sipInfo.tls) } : {}), ...(sipInfo.wss ? { FERRY_SIP_WSS_PORT: String(sipInfo.wss) } : {}),
      ...(sipInfo.metrics ? { FERRY_SIP_METRICS_PORT: String(sipInfo.metrics) } : {}) };
    // the HTTP API needs a bearer token: FERRY_API_TOKEN, else one generated into the data directory
    const apiToken = setUpApiToken(env);
    gateway = new SupervisedPart(
      {
        name: 'gateway',
        env: {
          FERRY_SIP_CONTROL_URL: `${connectHost(sipControlHost)}:${sipInfo.control}`,
          FERRY_MEDIA_URL: `ws://${urlHost(connectHost(mediaHost))}:${mediaInfo.port}/kurento`,
          FERRY_WEBPHONE_WS_URL: env.FERRY_WEBPHONE_WS_URL ?? `ws://${env.FERRY_SIP_HOST ?? host}:${sipInfo.ws}`,
          FERRY_HTTP_HOST: httpHost,
          // over HTTPS the page opens wss://<the name it was opened with>:<this port>
          ...(tls && tlsPorts ? { ...tls.partEnv, FERRY_HTTPS_PORT: tlsPorts.FERRY_HTTPS_PORT, FERRY_WEBPHONE_WSS_PORT: String(sipInfo.wss) } : {}),
          ...apiToken.gatewayEnv,
          // the same instance id for every restart of the gateway: it resumes its own calls at once
          ...store.gatewayEnv,
        },
      },
      log,
    );
    parts.push(gateway);
    const gw = await gateway.start();
    // a restarted gateway serves the API and the webphone page on the same port
    gateway.spec.env = { ...gateway.spec.env, FERRY_HTTP_PORT: String(gw.http), ...(gw.https ? { FERRY_HTTPS_PORT: String(gw.https) } : {}) };
    const info = {
      sip: sipInfo.sip, ws: sipInfo.ws, control: sipInfo.control, media: mediaInfo.port, http: gw.http,
      ...(sipInfo.metrics ? { sipMetrics: sipInfo.metrics } : {}),
      ...(tls ? { tls: sipInfo.tls, wss: sipInfo.wss, https: gw.https } : {}),
      pids: { sip: sip.pid, media: media.pid, gateway: gateway.pid, ...(store.privateRedis ? { redis: store.privateRedis.child.pid } : {}) },
      store: store.mode, gatewayId: store.gatewayEnv.FERRY_GATEWAY_ID,
      ...(store.privateRedis ? { redis: store.privateRedis.port, dataDir: store.privateRedis.dataDir } : {}),
    };
    process.stdout.write(`ferry ready ${JSON.stringify(info)}\n`);
    const listeners: ListenerInfo[] = [
      { name: 'SIP udp/tcp', host: sipHost, port: Number(sipInfo.sip), kind: 'public' },
      { name: 'SIP WebSocket', host: sipHost, port: Number(sipInfo.ws), kind: 'public' },
      { name: 'webphone page + API', host: httpHost, port: Number(gw.http), kind: 'public' },
      ...(tls ? [
        { name: 'SIP TLS', host: sipHost, port: Number(sipInfo.tls), kind: 'public' as const },
        { name: 'SIP secure WebSocket', host: sipHost, port: Number(sipInfo.wss), kind: 'public' as const },
        { name: 'HTTPS page + API', host: httpHost, port: Number(gw.https), kind: 'public' as const },
      ] : []),
      { name: 'RTP (phones)', host: mediaRtpHost, port: rtpPorts(env), kind: 'public' },
      { name: 'drachtio control', host: sipControlHost, port: Number(sipInfo.control), kind: 'control' },
      { name: 'Kurento + /stats', host: mediaHost, port: Number(mediaInfo.port), kind: 'control' },
      ...(sipInfo.metrics ? [{ name: 'SIP /metrics', host: sipMetricsHost, port: Number(sipInfo.metrics), kind: 'control' as const }] : []),
      ...(store.privateRedis ? [{ name: 'private Redis', host: LOOPBACK_HOST, port: store.privateRedis.port, kind: 'control' as const }] : []),
    ];
    process.stdout.write(`${listenerSummary(listeners).join('\n')}\n`);
    process.stdout.write(`${storeSummary(store.mode, store.privateRedis?.dataDir)}\n`);
    // where a client on this host reaches the page: a wildcard on loopback, else the address it binds
    const pageAddress = urlHost(connectHost(httpHost));
    if (apiToken.file) {
      // the generated token is for clients on this host: over loopback, or to the host's own address it binds
      process.stdout.write(`ferry: HTTP API token (from this host only) in ${apiToken.file}: curl -H "Authorization: Bearer $(cat ${apiToken.file})" http://${pageAddress}:${gw.http}/api/calls\n`);
    }
    process.stdout.write(`ferry: webphone page at http://${pageAddress}:${gw.http}/  (SIP: udp/tcp ${sipInfo.sip}, WebSocket ${sipInfo.ws}; Ctrl-C stops everything)\n`);
    if (tls) {
      // the name the certificate covers and browsers should use: the public name, else this host's loopback name
      const pageHost = urlHost(env.FERRY_PUBLIC_HOST || (isWildcardHost(httpHost) || isLoopbackHost(httpHost) ? 'localhost' : httpHost));
      process.stdout.write(`ferry: webphone page over HTTPS at https://${pageHost}:${gw.https}/  (SIP: tls ${sipInfo.tls}, secure WebSocket wss://${pageHost}:${sipInfo.wss}/ — with a self-signed certificate, open https://${pageHost}:${sipInfo.wss}/ once too; browsers on other machines need this page)\n`);
      process.stdout.write(`${tls.notes.join('\n')}\n`);
    }
  } catch (err) {
    log(`ferry start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

/** The media port range as configured for ferry media (`*`: any port the OS hands out). */
function rtpPorts(env: NodeJS.ProcessEnv): string {
  const min = Number(env.FERRY_MEDIA_RTP_PORT_MIN || 0);
  const max = Number(env.FERRY_MEDIA_RTP_PORT_MAX || 0);
  return min > 0 && max > 0 ? `${min}-${max}` : '*';
}

/** One plain line saying where calls and registrations live and whether they survive a gateway restart. */
function storeSummary(mode: string, dataDir: string | undefined): string {
  if (mode === 'private-redis') return `ferry: calls and registrations are kept in a private Redis with its data in ${dataDir}: they survive a restart of the gateway and of ferry start`;
  if (mode === 'redis') return 'ferry: calls and registrations are kept in the Redis at REDIS_URL: they survive a gateway restart';
  return 'ferry: calls and registrations are kept in the gateway\'s memory only (see the warning above)';
}
