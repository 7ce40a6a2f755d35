import { envInt, envString, type Env } from '../../common/env';

/** Where a new request goes in outbound connection mode: a fixed app address, or a web callback that names one. */
export type RequestHandlerTarget =
  | { kind: 'connect'; host: string; port: number; transport: 'tcp' | 'tls' }
  | { kind: 'http'; url: string; httpMethod: 'GET' | 'POST' };

/**
 * Outbound connection mode (drachtio-server's request handlers): new requests of `methods` are not dealt to
 * the connected apps; ferry sip opens a control connection to an app listening with `srf.listen()` (after
 * asking the web callback where, when the handler is an http(s) URL) and hands the request to it there.
 */
export interface RequestHandlerSettings {
  target: RequestHandlerTarget;
  /** upper-case SIP methods sent this way; '*' = every new request */
  methods: Set<string> | '*';
  /** opening the TCP/TLS connection to the app, at most */
  connectTimeoutMs: number;
  /** from connected to the app's `authenticate`, at most */
  authTimeoutMs: number;
  /** the web callback's answer, at most (connection and body) */
  httpTimeoutMs: number;
  /** outbound connections open at once; a new request beyond it is answered 503 */
  maxConnections: number;
  /** an outbound connection holding no dialog and no transaction for this long is closed by ferry sip */
  idleMs: number;
}

export const DEFAULT_OUTBOUND_LIMITS = {
  connectTimeoutMs: 2000,
  authTimeoutMs: 5000,
  httpTimeoutMs: 3000,
  maxConnections: 1000,
  idleMs: 60_000,
};

/** drachtio-server's default app port when a route names none */
const DEFAULT_APP_PORT = 9021;

/** `host:port[;transport=tcp|tls]`, `tcp://host:port`, `tls://host:port` (a route's `uri`, or the fixed handler). */
export function parseAppAddress(text: string): { host: string; port: number; transport: 'tcp' | 'tls' } | undefined {
  let rest = text.trim();
  let transport: 'tcp' | 'tls' = 'tcp';
  const scheme = /^(tcp|tls):\/\//i.exec(rest);
  if (scheme) {
    transport = scheme[1].toLowerCase() as 'tcp' | 'tls';
    rest = rest.slice(scheme[0].length);
  }
  const param = /;transport=(tcp|tls)\s*$/i.exec(rest);
  if (param) {
    transport = param[1].toLowerCase() as 'tcp' | 'tls';
    rest = rest.slice(0, param.index);
  }
  rest = rest.replace(/\/+$/, '');
  const m = /^\[?([^\]\s/]+?)\]?(?::(\d{1,5}))?$/.exec(rest);
  if (!m) return undefined;
  const port = m[2] === undefined ? DEFAULT_APP_PORT : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host: m[1], port, transport };
}

/**
 * FERRY_SIP_REQUEST_HANDLER (unset: off), FERRY_SIP_REQUEST_HANDLER_METHODS (default `*`),
 * FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD (GET or POST), FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS,
 * FERRY_SIP_OUTBOUND_AUTH_TIMEOUT_MS, FERRY_SIP_REQUEST_HANDLER_TIMEOUT_MS, FERRY_SIP_OUTBOUND_MAX_CONNECTIONS,
 * FERRY_SIP_OUTBOUND_IDLE_MS (docs/sip-engine.md "Outbound connection mode"). Throws naming the variable.
 */
export function requestHandlerFromEnv(env: Env = process.env): RequestHandlerSettings | undefined {
  const handler = envString('FERRY_SIP_REQUEST_HANDLER', '', env).trim();
  if (!handler) return undefined;
  let target: RequestHandlerTarget;
  if (/^https?:\/\//i.test(handler)) {
    let url: URL;
    try {
      url = new URL(handler);
    } catch {
      throw new Error(`FERRY_SIP_REQUEST_HANDLER=${handler} is not a valid URL`);
    }
    const httpMethod = envString('FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD', 'GET', env).toUpperCase();
    if (httpMethod !== 'GET' && httpMethod !== 'POST') throw new Error(`FERRY_SIP_REQUEST_HANDLER_HTTP_METHOD must be GET or POST (got ${httpMethod})`);
    target = { kind: 'http', url: url.toString(), httpMethod };
  } else {
    const address = /^(tcp|tls):\/\//i.test(handler) ? parseAppAddress(handler) : undefined;
    if (!address) throw new Error(`FERRY_SIP_REQUEST_HANDLER must be tcp://host:port, tls://host:port or an http(s) URL (got ${handler})`);
    target = { kind: 'connect', ...address };
  }
  const methodsText = envString('FERRY_SIP_REQUEST_HANDLER_METHODS', '*', env).trim();
  let methods: Set<string> | '*' = '*';
  if (methodsText !== '*') {
    const list = methodsText.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean);
    if (!list.length || list.some((m) => !/^[A-Z]+$/.test(m))) throw new Error(`FERRY_SIP_REQUEST_HANDLER_METHODS must be * or a comma-separated list of SIP methods (got ${methodsText})`);
    methods = new Set(list);
  }
  const positive = (name: string, fallback: number): number => {
    const n = envInt(name, fallback, env);
    if (n < 1) throw new Error(`environment variable ${name}=${n} must be at least 1`);
    return n;
  };
  return {
    target,
    methods,
    connectTimeoutMs: positive('FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS', DEFAULT_OUTBOUND_LIMITS.connectTimeoutMs),
    authTimeoutMs: positive('FERRY_SIP_OUTBOUND_AUTH_TIMEOUT_MS', DEFAULT_OUTBOUND_LIMITS.authTimeoutMs),
    httpTimeoutMs: positive('FERRY_SIP_REQUEST_HANDLER_TIMEOUT_MS', DEFAULT_OUTBOUND_LIMITS.httpTimeoutMs),
    maxConnections: positive('FERRY_SIP_OUTBOUND_MAX_CONNECTIONS', DEFAULT_OUTBOUND_LIMITS.maxConnections),
    idleMs: positive('FERRY_SIP_OUTBOUND_IDLE_MS', DEFAULT_OUTBOUND_LIMITS.idleMs),
  };
}
