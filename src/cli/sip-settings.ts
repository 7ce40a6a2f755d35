import { envInt, envPort, envString, type Env } from '../common/env';
import { tlsFilesFromEnv, trustedCasFromEnv } from '../common/tls-files';
import { controlExposureProblem, DEFAULT_CONTROL_SECRET } from '../sip/control/control-exposure';
import { controlLimitsFromEnv } from '../sip/control/control-limits';
import { connectionLimitsFromEnv } from '../sip/transport/connection-limits';
import { requestRateFromEnv } from '../sip/engine/request-rate-limits';
import type { SipEngineOptions } from '../sip/sip-engine-server';
import { sipMetricsFromEnv } from '../sip/metrics/sip-metrics-settings';
import { dnsSettingsFromEnv } from '../sip/dns/dns-settings';
import { requestHandlerFromEnv } from '../sip/control/request-handler-settings';
import { DEFAULT_MAX_SERVER_TRANSACTIONS } from '../sip/transaction/server-transaction-table';

function atLeastOne(name: string, n: number): number {
  if (n < 1) throw new Error(`environment variable ${name}=${n} must be at least 1`);
  return n;
}

/** Everything `ferry sip` reads from its environment, read and checked once before anything listens. */
export interface SipSettings {
  engine: SipEngineOptions;
  /** FERRY_SIP_STATS_INTERVAL_MS: > 0 prints the engine's live counts at this interval */
  statsIntervalMs: number;
}

/**
 * Reads FERRY_SIP_* (docs/configuration.md). Throws an Error whose message names the variable on the
 * first bad value: a port outside 0..65535, a non-integer timer, the default control secret on a
 * non-loopback control address, an unreadable certificate, a request rate that is not a whole number or `off`,
 * an exempt entry that is not an address or network, a metrics port or host that is not one, a DNS server that is not
 * an IP address with an optional port. `env` is the process environment except in tests;
 * the control and connection limits always come from the process environment.
 */
export function loadSipSettings(env: Env = process.env): SipSettings {
  const controlHost = envString('FERRY_SIP_CONTROL_HOST', '127.0.0.1', env);
  const secret = envString('FERRY_SIP_SECRET', DEFAULT_CONTROL_SECRET, env);
  const exposure = controlExposureProblem(controlHost, secret);
  if (exposure) throw new Error(exposure);
  const files = tlsFilesFromEnv(env);
  const tls = files ? { cert: files.cert, key: files.key, ca: trustedCasFromEnv(env), verifyPeer: envString('FERRY_SIP_TLS_VERIFY', '1', env) !== '0' } : undefined;
  const engine: SipEngineOptions = {
    host: envString('FERRY_SIP_HOST', '127.0.0.1', env),
    advertisedHost: envString('FERRY_SIP_ADVERTISED_HOST', '', env) || envString('FERRY_PUBLIC_HOST', '', env) || undefined,
    sipPort: envPort('FERRY_SIP_PORT', 5060, env),
    wsPort: envPort('FERRY_SIP_WS_PORT', 8088, env),
    ...(tls ? { tls, tlsPort: envPort('FERRY_SIP_TLS_PORT', 5061, env), wssPort: envPort('FERRY_SIP_WSS_PORT', 8089, env) } : {}),
    controlPort: envPort('FERRY_SIP_CONTROL_PORT', 9022, env),
    controlHost,
    controlLimits: controlLimitsFromEnv(),
    connectionLimits: connectionLimitsFromEnv(),
    requestRate: requestRateFromEnv(env),
    metrics: sipMetricsFromEnv(env),
    dns: dnsSettingsFromEnv(env),
    requestHandler: requestHandlerFromEnv(env),
    secret,
    orphanDialogMs: envInt('FERRY_SIP_ORPHAN_DIALOG_MS', 30_000, env),
    restartHoldMs: envInt('FERRY_SIP_RESTART_HOLD_MS', 10_000, env),
    unroutedHold: { holdMs: envInt('FERRY_SIP_UNROUTED_HOLD_MS', 5000, env) },
    maxServerTransactions: atLeastOne('FERRY_SIP_MAX_SERVER_TRANSACTIONS', envInt('FERRY_SIP_MAX_SERVER_TRANSACTIONS', DEFAULT_MAX_SERVER_TRANSACTIONS, env)),
    timers: {
      t1: envInt('FERRY_SIP_T1_MS', 500, env),
      t2: envInt('FERRY_SIP_T2_MS', 4000, env),
      t4: envInt('FERRY_SIP_T4_MS', 5000, env),
    },
  };
  return { engine, statsIntervalMs: envInt('FERRY_SIP_STATS_INTERVAL_MS', 0, env) };
}
