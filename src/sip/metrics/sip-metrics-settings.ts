import { isIP } from 'node:net';
import { envPort, type Env } from '../../common/env';
import { isLoopbackHost, LOOPBACK_HOST } from '../../common/listen-address';

export const METRICS_PORT_VARIABLE = 'FERRY_SIP_METRICS_PORT';
export const METRICS_HOST_VARIABLE = 'FERRY_SIP_METRICS_HOST';

/** Where ferry sip serves GET /metrics (docs/sip-engine.md "Metrics"). */
export interface SipMetricsListen {
  /** 0 = any free port */
  port: number;
  /** an IP address; 127.0.0.1 unless FERRY_SIP_METRICS_HOST says otherwise */
  host: string;
  /** true when `host` is not a loopback address: other hosts can scrape it (logged once at start) */
  exposed: boolean;
}

/**
 * FERRY_SIP_METRICS_PORT (unset or empty: no metrics port; 0..65535, 0 = any free port) and
 * FERRY_SIP_METRICS_HOST (an IP address or `localhost`; default 127.0.0.1: the port is a control-plane port
 * and stays on this host unless an address is given). A bad value, or a host without a port, is an Error whose
 * message names the variable.
 */
export function sipMetricsFromEnv(env: Env = process.env): SipMetricsListen | undefined {
  const rawPort = env[METRICS_PORT_VARIABLE];
  const rawHost = env[METRICS_HOST_VARIABLE];
  if (rawPort === undefined || rawPort.trim() === '') {
    if (rawHost !== undefined && rawHost.trim() !== '') {
      throw new Error(`environment variable ${METRICS_HOST_VARIABLE}=${JSON.stringify(rawHost)} is set but ${METRICS_PORT_VARIABLE} is not: set the port to serve metrics, or unset the host`);
    }
    return undefined;
  }
  const port = envPort(METRICS_PORT_VARIABLE, 0, env);
  const host = rawHost === undefined || rawHost.trim() === '' ? LOOPBACK_HOST : rawHost.trim().replace(/^\[|\]$/g, '');
  if (isIP(host) === 0 && host.toLowerCase() !== 'localhost') {
    throw new Error(`environment variable ${METRICS_HOST_VARIABLE}=${JSON.stringify(rawHost)} is not an IP address: use 127.0.0.1 (the default), ::1, or the address to expose the metrics port on`);
  }
  return { port, host, exposed: !isLoopbackHost(host) };
}
