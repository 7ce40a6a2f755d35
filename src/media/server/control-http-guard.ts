import type http from 'node:http';
import { isIP } from 'node:net';
import os from 'node:os';
import { envInt, envString, type Env } from '../../common/env';
import { hostName } from '../../common/host-header';

/**
 * Who may use ferry media's control port (the Kurento WebSocket, GET /stats, POST /drain and /undrain).
 * It listens on loopback by default, but a browser on the same host is a client of loopback too: any web
 * page it opens may open `ws://127.0.0.1:8888/kurento` (WebSockets are not bound by the same-origin rule),
 * list every pipeline through the ServerManager and release them, or POST /drain; and a page that rebinds
 * its own name to 127.0.0.1 may read /stats. So:
 * - a request carrying an `Origin` header (browsers always send one on a WebSocket upgrade and on a
 *   cross-site POST; kurento-client in Node and the gateway send none) is refused 403 unless that origin is
 *   listed in FERRY_MEDIA_ALLOWED_ORIGINS (an application running kurento-client in its own pages);
 * - the `Host` header must be an IP literal, `localhost`, this machine's host name or a name listed in
 *   FERRY_MEDIA_ALLOWED_HOSTS, else 421: a rebinding page sends its own name.
 * docs/security.md, "Web pages on this host".
 */
export interface ControlHttpPolicy {
  /** lower-case host names (no port) accepted in Host besides IP literals */
  allowedHosts: string[];
  /** exact origins (scheme://host[:port], lower case) a browser page may connect from; '*' = any */
  allowedOrigins: string[];
  /** headers of a request must arrive within this (a WebSocket upgrade included) */
  headerTimeoutMs: number;
}

export interface ControlRefusal {
  status: 400 | 403 | 421;
  reason: 'origin' | 'host' | 'no-host';
  text: string;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '');
}

/** FERRY_MEDIA_ALLOWED_HOSTS, FERRY_MEDIA_ALLOWED_ORIGINS and FERRY_MEDIA_HTTP_HEADER_TIMEOUT_MS. */
export function controlHttpPolicyFromEnv(env: Env = process.env): ControlHttpPolicy {
  return {
    allowedHosts: [...new Set(['localhost', os.hostname().toLowerCase(), ...list(envString('FERRY_MEDIA_ALLOWED_HOSTS', '', env))])],
    allowedOrigins: list(envString('FERRY_MEDIA_ALLOWED_ORIGINS', '', env)).map((o) => o.replace(/\/+$/, '')),
    headerTimeoutMs: envInt('FERRY_MEDIA_HTTP_HEADER_TIMEOUT_MS', 10_000, env),
  };
}

/** Why this control request is refused, or undefined when it may go on. */
export function controlRequestRefusal(req: http.IncomingMessage, policy: ControlHttpPolicy): ControlRefusal | undefined {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const o = origin.trim().toLowerCase();
    if (!policy.allowedOrigins.includes('*') && !policy.allowedOrigins.includes(o)) {
      return { status: 403, reason: 'origin', text: 'requests from web pages are refused (FERRY_MEDIA_ALLOWED_ORIGINS lists the pages that may connect)' };
    }
  }
  const header = req.headers.host;
  if (!header) return { status: 400, reason: 'no-host', text: 'a Host header is required' };
  const name = hostName(header);
  if (isIP(name) === 0 && !policy.allowedHosts.includes(name)) {
    return { status: 421, reason: 'host', text: 'this server does not answer for that host name (FERRY_MEDIA_ALLOWED_HOSTS)' };
  }
  return undefined;
}
