import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import path from 'node:path';
import { Logger } from '../../common/logger';
import { CallRecord } from '../state/call-record';
import { StoreUnavailableError } from '../state/store-unavailable-error';
import { jssipBundle } from './jssip-bundle';

export interface HttpApi {
  listCalls(): Promise<CallRecord[]>;
  getCall(id: string): Promise<CallRecord | undefined>;
  metrics(): Promise<string>;
  webphoneConfig(): { wsUrl: string; domain: string };
}

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/webphone.js': { file: 'webphone.js', type: 'text/javascript; charset=utf-8' },
};

/**
 * The gateway's HTTP side: the webphone page at `/`, `/jssip.js`, `GET /api/calls`,
 * `GET /api/calls/:id`, `GET /api/webphone-config`, `GET /metrics`, `GET /healthz`.
 * While the state store does not answer, the call API answers 503 (JSON error, Retry-After).
 */
export class HttpServer {
  private server: http.Server | undefined;

  constructor(private readonly api: HttpApi, private readonly log: Logger) {}

  async listen(host: string, port: number): Promise<number> {
    const server = http.createServer((req, res) => {
      this.route(req, res).catch((err: Error) => {
        if (err instanceof StoreUnavailableError) {
          // the store's operations are bounded, so this answer comes within FERRY_STORE_TIMEOUT_MS
          if (!res.headersSent) {
            res.writeHead(503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Retry-After': '1' });
            res.end(JSON.stringify({ error: 'state store unavailable', detail: err.message }));
          } else res.end();
          return;
        }
        this.log.error('http handler failed', { url: req.url, err: err.message });
        if (!res.headersSent) this.send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
        else res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    res.end(body);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(body));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.json(res, 405, { error: 'method not allowed' });
    }
    const p = url.pathname;
    const st = STATIC[p];
    if (st) return this.send(res, 200, st.type, await readFile(path.join(__dirname, 'webphone', st.file), 'utf8'));
    if (p === '/jssip.js') return this.send(res, 200, 'text/javascript; charset=utf-8', await jssipBundle());
    if (p === '/healthz') return this.json(res, 200, { ok: true });
    if (p === '/api/webphone-config') return this.json(res, 200, this.api.webphoneConfig());
    if (p === '/metrics') return this.send(res, 200, 'text/plain; version=0.0.4', await this.api.metrics());
    if (p === '/api/calls') {
      const all = await this.api.listCalls();
      const which = url.searchParams.get('state');
      const calls = which === 'all' ? all : all.filter((c) => c.state !== 'ended');
      return this.json(res, 200, { calls: calls.sort((a, b) => a.createdAt - b.createdAt) });
    }
    const m = /^\/api\/calls\/([A-Za-z0-9-]{1,64})$/.exec(p);
    if (m) {
      const call = await this.api.getCall(m[1]!);
      return call ? this.json(res, 200, call) : this.json(res, 404, { error: 'no such call' });
    }
    return this.json(res, 404, { error: 'not found' });
  }
}
