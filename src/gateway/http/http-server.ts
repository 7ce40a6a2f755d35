import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { Logger } from '../../common/logger';
import { rejectUpgrade } from '../events/event-stream';
import { CallRecord } from '../state/call-record';
import { StoreUnavailableError } from '../state/store-unavailable-error';
import type { RouteTable } from '../api/route-table';
import { summarizeCall } from './call-summary';
import { hostName } from '../../common/host-header';
import { HttpAccess } from './http-access';
import { DEFAULT_HTTP_LIMITS, HttpConnectionGuard, HttpLimits, deadlineCheckIntervalMs } from '../../common/http-limits';
import { jssipBundle } from './jssip-bundle';
import { srcPath } from '../../common/package-root';

export interface HttpApi {
  listCalls(): Promise<CallRecord[]>;
  getCall(id: string): Promise<CallRecord | undefined>;
  metrics(): Promise<string>;
  /** `secure`: asked over HTTPS (the page must then use the secure WebSocket); `host`: the request's Host name */
  webphoneConfig(secure?: boolean, host?: string): WebphoneConfig;
}

/** what the webphone page reads from `/api/webphone-config` (public: the page needs it before any login) */
export interface WebphoneConfig {
  wsUrl: string;
  domain: string;
  /** RTCPeerConnection iceServers (FERRY_WEBPHONE_ICE_SERVERS); TURN credentials here are visible to every visitor */
  iceServers?: unknown[];
  iceTransportPolicy?: 'all' | 'relay';
  /** where the page is served over HTTPS, linked when the page is not a secure context */
  httpsUrl?: string;
}

/** public static files: the webphone page (webphone/), the status page (status/: no data, it asks /api/status with the token) */
const STATIC: Record<string, { file: string; type: string; page?: 'webphone' | 'status' }> = {
  '/': { file: 'webphone/index.html', type: 'text/html; charset=utf-8', page: 'webphone' },
  '/webphone.js': { file: 'webphone/webphone.js', type: 'text/javascript; charset=utf-8' },
  '/webphone.css': { file: 'webphone/webphone.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'webphone/favicon.svg', type: 'image/svg+xml' },
  '/status': { file: 'status/status.html', type: 'text/html; charset=utf-8', page: 'status' },
  '/status.js': { file: 'status/status.js', type: 'text/javascript; charset=utf-8' },
  '/status.css': { file: 'status/status.css', type: 'text/css; charset=utf-8' },
};

/**
 * The routes this server answers itself (besides a mounted RouteTable's), for the OpenAPI check:
 * a route added below must be added here and to the document (src/gateway/api/openapi.ts).
 */
export const BUILT_IN_ROUTES: readonly { method: 'GET'; path: string }[] = [
  ...Object.keys(STATIC).map((path) => ({ method: 'GET' as const, path })),
  { method: 'GET', path: '/jssip.js' },
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/api/webphone-config' },
  { method: 'GET', path: '/metrics' },
];

/** on every answer: no MIME sniffing, no referrer leaking the URL, never framed */
const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY' };

/** the page loads only its own files and talks only to its SIP WebSocket */
function contentSecurityPolicy(wsUrl: string): string {
  let ws = '';
  try {
    const u = new URL(wsUrl);
    if (u.protocol === 'ws:' || u.protocol === 'wss:') ws = ` ${u.protocol}//${u.host}`;
  } catch {
    /* no usable WebSocket URL: 'self' only */
  }
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self'${ws}`,
    "media-src 'self' blob: mediastream:",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The gateway's HTTP side: the webphone page at `/`, `/jssip.js`, `GET /api/calls`,
 * `GET /api/calls/:id`, `GET /api/webphone-config`, `GET /metrics`, `GET /healthz`. Host names and
 * bearer tokens are checked by HttpAccess; the list view holds call summaries only.
 * While the state store does not answer, the call API answers 503 (JSON error, Retry-After).
 */
export class HttpServer {
  private server: http.Server | undefined;
  /** the same routes over TLS (listenHttps) */
  private secureServer: https.Server | undefined;

  /** WebSocket endpoints on the same ports (`/api/events`), reached after the Host and token checks */
  private readonly upgrades = new Map<string, (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void>();

  /** `access` decides who may read what; without one, `/api/*` answers 401 to everyone */
  constructor(
    private readonly api: HttpApi,
    private readonly log: Logger,
    private readonly access = new HttpAccess({ apiToken: undefined, apiLoopbackOnly: false, metricsAuth: 'loopback', allowedHosts: ['localhost'] }),
    /** mounted routes (the REST API, src/gateway/api/): asked after the Host and token checks, before the built-in ones */
    private readonly routes?: RouteTable,
    /** request deadlines and connection caps of both listeners (FERRY_HTTP_*; docs/security.md) */
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
  ) {
    this.guard = new HttpConnectionGuard(limits, log);
  }

  /** counts both listeners' connections against the caps */
  readonly guard: HttpConnectionGuard;

  /** Node's request deadlines, from the limits (its defaults hold a silent client for 60 to 90 s) */
  private serverOptions(): http.ServerOptions {
    const l = this.guard.limits;
    return { headersTimeout: l.headerTimeoutMs, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: deadlineCheckIntervalMs(l) };
  }

  /** every (method, path) this server answers: built-in, mounted (RouteTable) and WebSocket upgrades (as GET); the OpenAPI document must list exactly these */
  routeList(): { method: string; path: string; upgrade?: true }[] {
    return [...BUILT_IN_ROUTES, ...(this.routes?.list() ?? []), ...[...this.upgrades.keys()].map((path) => ({ method: 'GET', path, upgrade: true as const }))];
  }

  async listen(host: string, port: number): Promise<number> {
    const server = http.createServer(this.serverOptions(), this.handler());
    server.on('connection', (socket: Socket) => this.guard.admit(socket));
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Duplex, head));
    this.server = server;
    return listenOn(server, host, port);
  }

  /** Serves the same page and API over HTTPS with this certificate chain and key (PEM). */
  async listenHttps(host: string, port: number, tls: { cert: Buffer; key: Buffer }): Promise<number> {
    // the handshake is held to the header deadline: a client that connects and says nothing is closed then
    const server = https.createServer({ ...this.serverOptions(), cert: tls.cert, key: tls.key, handshakeTimeout: this.guard.limits.headerTimeoutMs }, this.handler());
    // before the handshake: a source over the handshake rate is closed before it costs any (FERRY_HTTPS_HANDSHAKES_*)
    server.on('connection', (socket: Socket) => this.guard.admit(socket, true));
    // a client that fails its handshake (an untrusted certificate) is not an error of ours
    server.on('tlsClientError', () => {});
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Duplex, head));
    this.secureServer = server;
    return listenOn(server, host, port);
  }

  private handler(): http.RequestListener {
    return (req, res) => {
      this.route(req, res).catch((err: Error) => {
        if (err instanceof StoreUnavailableError) {
          // the store's operations are bounded, so this answer comes within FERRY_STORE_TIMEOUT_MS
          if (!res.headersSent) {
            res.writeHead(503, { ...COMMON_HEADERS, 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Retry-After': '1' });
            res.end(JSON.stringify({ error: 'state store unavailable', detail: err.message }));
          } else res.end();
          return;
        }
        this.log.error('http handler failed', { url: req.url, err: err.message });
        if (!res.headersSent) this.send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
        else res.end();
      });
    };
  }

  /** serves WebSocket upgrades to `path` (an `/api/` path: token required) with `handler` */
  onUpgrade(path: string, handler: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void): void {
    this.upgrades.set(path, handler);
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const handler = this.upgrades.get(new URL(req.url ?? '/', 'http://gateway').pathname);
    if (!handler || req.method !== 'GET') return rejectUpgrade(socket, 404, 'not found');
    const host = this.access.checkHost(req);
    if (!host.ok) return rejectUpgrade(socket, host.status, host.error);
    const allowed = this.access.authorize(req, 'api');
    if (!allowed.ok) return rejectUpgrade(socket, allowed.status, allowed.error, allowed.headers);
    handler(req, socket, head);
  }

  async close(): Promise<void> {
    const servers = [this.server, this.secureServer].filter((s): s is http.Server => s !== undefined);
    this.server = undefined;
    this.secureServer = undefined;
    await Promise.all(servers.map(async (s) => {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }));
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
    res.end(body);
  }

  private json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(res, status, 'application/json', JSON.stringify(body), headers);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const host = this.access.checkHost(req);
    if (!host.ok) return this.json(res, host.status, { error: host.error });
    const p = url.pathname;
    if (this.routes && p.startsWith('/api/') && p !== '/api/webphone-config') {
      const allowed = this.access.authorize(req, 'api');
      if (!allowed.ok) return this.json(res, allowed.status, { error: allowed.error }, allowed.headers);
      if (await this.routes.handle(req, res, url)) return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.json(res, 405, { error: 'method not allowed' });
    }
    const secure = 'encrypted' in req.socket && req.socket.encrypted === true;
    const webphone = (): WebphoneConfig => this.api.webphoneConfig(secure, hostName(req.headers.host ?? ''));
    const st = STATIC[p];
    if (st) {
      const csp: Record<string, string> = st.page ? {
        // the status page talks to its own origin only
        'Content-Security-Policy': contentSecurityPolicy(st.page === 'webphone' ? webphone().wsUrl : ''),
        // over HTTPS: browsers keep to HTTPS for this host for a day
        ...(secure ? { 'Strict-Transport-Security': 'max-age=86400' } : {}),
      } : {};
      return this.send(res, 200, st.type, await readFile(srcPath('gateway', 'http', st.file), 'utf8'), csp);
    }
    if (p === '/jssip.js') return this.send(res, 200, 'text/javascript; charset=utf-8', await jssipBundle());
    if (p === '/healthz') return this.json(res, 200, { ok: true });
    if (p === '/api/webphone-config') return this.json(res, 200, webphone());
    if (p === '/metrics' || p.startsWith('/api/')) {
      const allowed = this.access.authorize(req, p === '/metrics' ? 'metrics' : 'api');
      if (!allowed.ok) return this.json(res, allowed.status, { error: allowed.error }, allowed.headers);
    }
    if (p === '/metrics') return this.send(res, 200, 'text/plain; version=0.0.4', await this.api.metrics());
    if (p === '/api/calls') {
      const all = await this.api.listCalls();
      const which = url.searchParams.get('state');
      const calls = which === 'all' ? all : all.filter((c) => c.state !== 'ended');
      return this.json(res, 200, { calls: calls.sort((a, b) => a.createdAt - b.createdAt).map(summarizeCall) });
    }
    const m = /^\/api\/calls\/([A-Za-z0-9-]{1,64})$/.exec(p);
    if (m) {
      const call = await this.api.getCall(m[1]!);
      return call ? this.json(res, 200, call) : this.json(res, 404, { error: 'no such call' });
    }
    return this.json(res, 404, { error: 'not found' });
  }
}

async function listenOn(server: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return (server.address() as AddressInfo).port;
}
