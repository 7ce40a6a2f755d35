import { randomUUID } from 'node:crypto';
import { DEFAULT_RING_MAX_FORKS, DEFAULT_RING_MAX_FORKS_PER_SOURCE, type ForkLimits } from '../calls/fork-budget';
import path from 'node:path';
import { ConfigError } from './config-error';
import { loadSipConfig } from './sip-config-loader';
import { SipConfig } from './sip-config';
import { AuthLimits, DEFAULT_AUTH_LIMITS } from '../registrar/sip-authenticator';
import { LoopbackMediaRule, parseLoopbackMediaRule } from '../calls/sdp-validator';
import { HttpAccessConfig, loadHttpAccessConfig } from '../http/http-access';
import { DEFAULT_HTTP_LIMITS, HTTP_LIMIT_VARIABLES, HttpLimits } from '../../common/http-limits';
import { loadWebphoneSettings, WebphoneSettings } from '../http/webphone-settings';
import { tlsFilesFromEnv, type TlsFiles } from '../../common/tls-files';
import { parseMediaUrlList } from '../media-servers/media-url-list';
import { PACKAGE_ROOT } from '../../common/package-root';
import { DEFAULT_QUALIFY_MAX_FAILURES, DEFAULT_QUALIFY_MS, parseQualifyScope, QualifySettings } from '../registrar/qualify';
import { DEFAULT_FLOW_CHECK_MS, DEFAULT_FLOW_RECONNECT_GRACE_MS, FlowSettings } from '../registrar/flow-binding';
import { DEFAULT_MEDIA_PING_TIMEOUT_MS } from '../kurento/media-liveness';

/** Everything `ferry gateway` needs, read once at start (docs/configuration.md lists each variable). */
export interface GatewayConfig {
  sipControl: { host: string; port: number; secret: string };
  /** the first media server of FERRY_MEDIA_URL (the only one when it names one) */
  mediaUrl: string;
  /** every media server of FERRY_MEDIA_URL, in the order given (docs/gateway.md, "Several media servers") */
  mediaUrls: string[];
  /** how often each media server's GET /stats is read for placing calls (FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS) */
  mediaStatsIntervalMs: number;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** bound of every state store operation (the HTTP API answers 503 within it while Redis is down) */
  storeTimeoutMs: number;
  http: { host: string; port: number };
  /** request deadlines and connection caps of the HTTP and HTTPS listeners (FERRY_HTTP_*; unset: DEFAULT_HTTP_LIMITS) */
  httpLimits?: HttpLimits;
  /** the page and API over HTTPS on the HTTP host (FERRY_HTTPS_PORT), when FERRY_TLS_CERT/FERRY_TLS_KEY are set */
  https: { port: number; tls: TlsFiles | undefined };
  /**
   * the secure WebSocket the page uses when served over HTTPS: FERRY_WEBPHONE_WSS_URL, else
   * wss://<the name the page was opened with>:FERRY_WEBPHONE_WSS_PORT (the certificate covers that name)
   */
  webphoneWss: { url: string | undefined; port: number };
  /** the SIP-over-WebSocket URL the page uses over plain HTTP (FERRY_WEBPHONE_WS_URL) */
  webphoneWsUrl: string;
  instanceId: string;
  leaseMs: number;
  adoptIntervalMs: number;
  endedRecordTtlMs: number;
  noAnswerMs: number;
  /**
   * how a call to a user with several registrations reaches them (FERRY_RING): `all` rings every live
   * registration at once, the first to answer gets the call; `newest` tries one at a time, newest first
   */
  ring: RingMode;
  /** registrations rung at once beyond each call's first, per caller source and in all (FERRY_RING_MAX_FORKS_PER_SOURCE, FERRY_RING_MAX_FORKS) */
  ringForks: ForkLimits;
  /**
   * a media file URI (as the media server's PlayerEndpoint reads it: relative to its media files
   * directory, file:// inside it, or http(s)) played to the party being transferred while the target
   * rings (FERRY_TRANSFER_RINGBACK_URI); unset: that party keeps hearing the transferor (docs/transfer.md)
   */
  transferRingbackUri: string | undefined;
  /** a lost media server not back within this long ends every live call (reason media-lost) */
  mediaLossGraceMs: number;
  /**
   * a media server that answers none of the gateway's Kurento pings for this long, its connection
   * still open, is lost as if the connection had closed (FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS; 0: not watched)
   */
  mediaPingTimeoutMs: number;
  /** OPTIONS pings to UDP registrations (FERRY_QUALIFY_MS, FERRY_QUALIFY_MAX_FAILURES, FERRY_QUALIFY_SCOPE) */
  qualify: QualifySettings;
  /** bindings that live on a connection (FERRY_FLOW_RECONNECT_GRACE_MS, FERRY_FLOW_CHECK_MS): docs/gateway.md, "Bindings that live on a connection" */
  flows: FlowSettings;
  sipConfigFile: string;
  sip: SipConfig;
  /** digest nonce lifetime, failure limits and lockout (FERRY_AUTH_*) */
  auth: AuthLimits;
  /** API token, Host names, /metrics access (FERRY_API_TOKEN, FERRY_HTTP_ALLOWED_HOSTS, ...) */
  httpAccess: HttpAccessConfig;
  /** iceServers, ICE transport policy and HTTPS link for the webphone page */
  webphone: WebphoneSettings;
  /** loopback media addresses in SDP (FERRY_ALLOW_LOOPBACK_MEDIA) */
  loopbackMedia: LoopbackMediaRule;
}

type Env = Record<string, string | undefined>;

/** FERRY_RING: `all` (parallel forking, the default) or `newest` (one registration at a time) */
export type RingMode = 'all' | 'newest';

function ringMode(raw: string | undefined, problems: string[]): RingMode {
  const v = raw?.trim().toLowerCase();
  if (v === undefined || v === '') return 'all';
  if (v === 'all' || v === 'newest') return v;
  problems.push(`environment: FERRY_RING=${JSON.stringify(raw)}: must be all or newest`);
  return 'all';
}

export function defaultSipConfigFile(): string {
  return path.join(PACKAGE_ROOT, 'sip-config', 'ferry.json');
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const problems: string[] = [];
  const get = (name: string, fallback: string): string => {
    const v = env[name];
    return v === undefined || v === '' ? fallback : v;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`environment: ${name}=${JSON.stringify(raw)}: must be an integer between ${min} and ${max}`);
      return fallback;
    }
    return n;
  };

  const control = get('FERRY_SIP_CONTROL_URL', '127.0.0.1:9022').replace(/^tcp:\/\//, '');
  const m = /^([^:/]+):(\d{1,5})$/.exec(control);
  if (!m) problems.push(`environment: FERRY_SIP_CONTROL_URL=${JSON.stringify(control)}: must be host:port`);
  else if (Number(m[2]) < 1 || Number(m[2]) > 65535) problems.push(`environment: FERRY_SIP_CONTROL_URL=${JSON.stringify(control)}: the port must be between 1 and 65535`);
  const mediaList = parseMediaUrlList(get('FERRY_MEDIA_URL', 'ws://127.0.0.1:8888/kurento'));
  if (!mediaList.ok) problems.push(...mediaList.problems);
  const mediaUrls = mediaList.ok ? mediaList.urls : ['ws://127.0.0.1:8888/kurento'];
  const redisUrl = env.REDIS_URL === '' ? undefined : env.REDIS_URL;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) problems.push(`environment: REDIS_URL=${JSON.stringify(redisUrl)}: must be a redis:// URL`);
  const httpHost = get('FERRY_HTTP_HOST', '127.0.0.1');
  const loopbackMedia = parseLoopbackMediaRule(env.FERRY_ALLOW_LOOPBACK_MEDIA);
  if (!loopbackMedia) problems.push(`environment: FERRY_ALLOW_LOOPBACK_MEDIA=${JSON.stringify(env.FERRY_ALLOW_LOOPBACK_MEDIA)}: must be 0, 1 or from-loopback`);
  const leaseMs = int('FERRY_GATEWAY_LEASE_MS', 10000, 500, 3600000);
  const config = {
    sipControl: { host: m?.[1] ?? '127.0.0.1', port: Number(m?.[2] ?? 9022), secret: get('FERRY_SIP_SECRET', 'cymru') },
    mediaUrl: mediaUrls[0]!,
    mediaUrls,
    mediaStatsIntervalMs: int('FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS', 2000, 100, 60000),
    redisUrl,
    redisPrefix: get('FERRY_REDIS_PREFIX', 'ferry:'),
    storeTimeoutMs: int('FERRY_STORE_TIMEOUT_MS', 500, 50, 5000),
    httpAccess: loadHttpAccessConfig(env, httpHost, problems),
    webphone: loadWebphoneSettings(env, problems),
    loopbackMedia: loopbackMedia ?? 'from-loopback',
    http: { host: httpHost, port: int('FERRY_HTTP_PORT', 3000, 0, 65535) },
    httpLimits: {
      headerTimeoutMs: int(HTTP_LIMIT_VARIABLES.headerTimeoutMs, DEFAULT_HTTP_LIMITS.headerTimeoutMs, 100, 3600000),
      requestTimeoutMs: int(HTTP_LIMIT_VARIABLES.requestTimeoutMs, DEFAULT_HTTP_LIMITS.requestTimeoutMs, 100, 3600000),
      maxConnectionsPerSource: int(HTTP_LIMIT_VARIABLES.maxConnectionsPerSource, DEFAULT_HTTP_LIMITS.maxConnectionsPerSource, 1, 1000000),
      maxConnections: int(HTTP_LIMIT_VARIABLES.maxConnections, DEFAULT_HTTP_LIMITS.maxConnections, 1, 1000000),
    },
    https: { port: int('FERRY_HTTPS_PORT', 3443, 0, 65535), tls: loadTls(env, problems) },
    webphoneWss: { url: env.FERRY_WEBPHONE_WSS_URL || undefined, port: int('FERRY_WEBPHONE_WSS_PORT', 0, 0, 65535) },
    webphoneWsUrl: get('FERRY_WEBPHONE_WS_URL', 'ws://127.0.0.1:8088'),
    instanceId: get('FERRY_GATEWAY_ID', `gw-${randomUUID().slice(0, 8)}`),
    leaseMs,
    adoptIntervalMs: int('FERRY_GATEWAY_ADOPT_INTERVAL_MS', Math.max(250, Math.floor(leaseMs / 3)), 100, 3600000),
    endedRecordTtlMs: int('FERRY_CALL_RECORD_TTL_MS', 3600000, 1000, 30 * 86400000),
    noAnswerMs: int('FERRY_NO_ANSWER_MS', 60000, 1000, 3600000),
    ring: ringMode(env.FERRY_RING, problems),
    ringForks: {
      perSource: int('FERRY_RING_MAX_FORKS_PER_SOURCE', DEFAULT_RING_MAX_FORKS_PER_SOURCE, 0, 1000000),
      total: int('FERRY_RING_MAX_FORKS', DEFAULT_RING_MAX_FORKS, 0, 1000000),
    },
    transferRingbackUri: env.FERRY_TRANSFER_RINGBACK_URI?.trim() || undefined,
    mediaLossGraceMs: int('FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS', 1500, 0, 3600000),
    mediaPingTimeoutMs: int('FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS', DEFAULT_MEDIA_PING_TIMEOUT_MS, 0, 3600000),
    qualify: {
      intervalMs: int('FERRY_QUALIFY_MS', DEFAULT_QUALIFY_MS, 0, 3600000),
      maxFailures: int('FERRY_QUALIFY_MAX_FAILURES', DEFAULT_QUALIFY_MAX_FAILURES, 1, 100),
      scope: parseQualifyScope(env.FERRY_QUALIFY_SCOPE, problems),
    },
    flows: {
      reconnectGraceMs: int('FERRY_FLOW_RECONNECT_GRACE_MS', DEFAULT_FLOW_RECONNECT_GRACE_MS, 0, 3600000),
      checkMs: int('FERRY_FLOW_CHECK_MS', DEFAULT_FLOW_CHECK_MS, 0, 3600000),
    },
    sipConfigFile: get('FERRY_SIP_CONFIG', defaultSipConfigFile()),
    auth: {
      nonceLifetimeMs: int('FERRY_AUTH_NONCE_LIFETIME_MS', DEFAULT_AUTH_LIMITS.nonceLifetimeMs, 1000, 600000),
      maxFailuresPerSource: int('FERRY_AUTH_MAX_FAILURES', DEFAULT_AUTH_LIMITS.maxFailuresPerSource, 1, 100000),
      maxFailuresPerUser: int('FERRY_AUTH_MAX_USER_FAILURES', DEFAULT_AUTH_LIMITS.maxFailuresPerUser, 1, 100000),
      failureWindowMs: int('FERRY_AUTH_FAILURE_WINDOW_MS', DEFAULT_AUTH_LIMITS.failureWindowMs, 1000, 86400000),
      lockoutMs: int('FERRY_AUTH_LOCKOUT_MS', DEFAULT_AUTH_LIMITS.lockoutMs, 1000, 86400000),
      backoffBaseMs: int('FERRY_AUTH_BACKOFF_MS', DEFAULT_AUTH_LIMITS.backoffBaseMs ?? 0, 0, 60000),
      backoffMaxMs: int('FERRY_AUTH_BACKOFF_MAX_MS', DEFAULT_AUTH_LIMITS.backoffMaxMs ?? 0, 0, 60000),
    },
  };
  let sip: SipConfig | undefined;
  try {
    sip = loadSipConfig(config.sipConfigFile);
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.problems);
    else throw err;
  }
  if (config.httpLimits.requestTimeoutMs < config.httpLimits.headerTimeoutMs) {
    problems.push(`environment: ${HTTP_LIMIT_VARIABLES.requestTimeoutMs}=${config.httpLimits.requestTimeoutMs}: must be at least ${HTTP_LIMIT_VARIABLES.headerTimeoutMs} (${config.httpLimits.headerTimeoutMs})`);
  }
  if (config.qualify.intervalMs > 0 && config.qualify.intervalMs < 100) {
    problems.push(`environment: FERRY_QUALIFY_MS=${config.qualify.intervalMs}: must be 0 (no pings) or at least 100`);
  }
  if (config.mediaPingTimeoutMs > 0 && config.mediaPingTimeoutMs < 500) {
    problems.push(`environment: FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS=${config.mediaPingTimeoutMs}: must be 0 (not watched) or at least 500`);
  }
  if (config.flows.checkMs > 0 && config.flows.checkMs < 100) {
    problems.push(`environment: FERRY_FLOW_CHECK_MS=${config.flows.checkMs}: must be 0 (no check) or at least 100`);
  }
  if (problems.length > 0 || !sip) throw new ConfigError(problems);
  return { ...config, sip };
}

function loadTls(env: Env, problems: string[]): TlsFiles | undefined {
  try {
    return tlsFilesFromEnv(env);
  } catch (err) {
    problems.push(`environment: ${(err as Error).message}`);
    return undefined;
  }
}
