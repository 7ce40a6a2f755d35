import type http from 'node:http';
import { ApiError } from './api-error';

export type HttpMethod = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';

export interface RouteContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** the `{name}` parts of the path template */
  params: Record<string, string>;
}

/** A handler answers the request itself, or returns a JSON answer for the table to send. */
export type RouteAnswer = { status: number; body: unknown; headers?: Record<string, string> } | void;
export type RouteHandler = (ctx: RouteContext) => Promise<RouteAnswer>;

interface Route {
  method: HttpMethod;
  /** OpenAPI-style template: `/api/calls/{id}` */
  path: string;
  pattern: RegExp;
  names: string[];
  handler: RouteHandler;
}

/** a path parameter: ids, user names, numbers */
const PARAM = '([A-Za-z0-9._~+-]{1,128})';

const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY', 'Cache-Control': 'no-store' };

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/**
 * The gateway's mounted HTTP routes (the REST API and whatever else registers here), by method and
 * OpenAPI-style path template. The HTTP server checks the Host and the bearer token first, then asks
 * `handle()`: a known path with another method answers 405 with Allow; an ApiError thrown by a
 * handler becomes its JSON answer. `list()` is what the OpenAPI document is checked against.
 */
export class RouteTable {
  private readonly routes: Route[] = [];

  add(method: HttpMethod, path: string, handler: RouteHandler): this {
    const names: string[] = [];
    const source = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([A-Za-z]+)\}/g, (_m, name: string) => {
      names.push(name);
      return PARAM;
    });
    this.routes.push({ method, path, pattern: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  list(): { method: HttpMethod; path: string }[] {
    return this.routes.map((r) => ({ method: r.method, path: r.path }));
  }

  /** true when a route of this table answered (or refused the method), false when the path is not ours */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
    const method = (req.method ?? 'GET').toUpperCase();
    const matching = this.routes.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).filter((x) => x.m);
    if (matching.length === 0) return false;
    const hit = matching.find((x) => x.r.method === method || (method === 'HEAD' && x.r.method === 'GET'));
    if (!hit) {
      sendJson(res, 405, { error: 'method not allowed' }, { Allow: [...new Set(matching.map((x) => x.r.method))].join(', ') });
      return true;
    }
    const params: Record<string, string> = {};
    hit.r.names.forEach((n, i) => (params[n] = decodeURIComponent(hit.m![i + 1]!)));
    try {
      const answer = await hit.r.handler({ req, res, url, params });
      if (answer && !res.headersSent) sendJson(res, answer.status, answer.body, answer.headers);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (!res.headersSent) sendJson(res, err.status, { error: err.message, ...err.extra }, err.headers);
      else res.end();
    }
    return true;
  }
}
