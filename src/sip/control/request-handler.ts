import type { Logger } from '../../common/logger';
import type { AppConnection } from './app-connection';
import type { AppRouter } from './app-router';
import { OutboundFailure, type OutboundConnections } from './outbound-connections';
import { parseAppAddress, type RequestHandlerSettings } from './request-handler-settings';

/** What becomes of a new request in outbound connection mode. */
export type RoutingDecision =
  | { kind: 'app'; app: AppConnection }
  | { kind: 'reject'; status: number; reason?: string; why: string }
  | { kind: 'redirect'; contacts: string[] };

/** What the web callback is told of a new request (drachtio-server's query string). */
export interface NewRequestFacts {
  method: string;
  /** the Request-URI as received */
  uri: string;
  fromUser: string;
  toUser: string;
  contentType: string;
  /** udp, tcp, tls, ws, wss */
  protocol: string;
  sourceAddress: string;
  /** the whole request, for a POST callback */
  raw: () => string;
}

/** the largest web callback answer read (drachtio-server's limit) */
const MAX_ANSWER_BYTES = 16_384;

/**
 * Outbound connection mode's routing of new requests: to the fixed app address, or where the web callback
 * says (`route` to an app address or to a tag of the connected apps, `reject`, `redirect`). A callback that
 * cannot be asked or answers something unusable: 500, as drachtio-server answers. An app that cannot be
 * reached or does not authenticate: 480. Too many outbound connections: 503.
 */
export class RequestHandler {
  constructor(
    private readonly settings: RequestHandlerSettings,
    private readonly connections: OutboundConnections,
    private readonly router: AppRouter,
    private readonly log: Logger,
  ) {}

  /** true when new requests of `method` go this way rather than to the connected apps */
  handles(method: string): boolean {
    return this.settings.methods === '*' || this.settings.methods.has(method.toUpperCase());
  }

  async route(facts: NewRequestFacts): Promise<RoutingDecision> {
    const { target } = this.settings;
    if (target.kind === 'connect') return this.connect(target.host, target.port, target.transport);
    let answer: unknown;
    try {
      answer = await this.askCallback(facts);
    } catch (err) {
      return { kind: 'reject', status: 500, why: `request handler ${target.url} failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    return this.follow(answer, facts.method);
  }

  private async connect(host: string, port: number, transport: 'tcp' | 'tls'): Promise<RoutingDecision> {
    try {
      return { kind: 'app', app: await this.connections.connect(host, port, transport) };
    } catch (err) {
      if (err instanceof OutboundFailure) return { kind: 'reject', status: err.status, why: err.message };
      throw err;
    }
  }

  private async follow(answer: unknown, method: string): Promise<RoutingDecision> {
    const bad = (why: string): RoutingDecision => ({ kind: 'reject', status: 500, why: `request handler answer: ${why}` });
    if (!isObject(answer)) return bad('not a JSON object');
    const { action, data } = answer;
    if (typeof action !== 'string') return bad("missing or invalid 'action'");
    if (!isObject(data)) return bad("missing 'data' object");
    switch (action) {
      case 'reject': {
        const status = data.status;
        if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 699) return bad("'status' is missing or not a final status");
        const reason = typeof data.reason === 'string' ? data.reason.replace(/[\r\n]/g, ' ').slice(0, 100) : undefined;
        return { kind: 'reject', status, reason, why: 'rejected by the request handler' };
      }
      case 'redirect': {
        const contact = data.contact ?? data.contacts;
        const contacts = typeof contact === 'string' ? [contact] : Array.isArray(contact) ? contact : undefined;
        if (!contacts || !contacts.length || contacts.some((c) => typeof c !== 'string' || /[\r\n]/.test(c))) return bad("'contact' must be a string or an array of strings");
        return { kind: 'redirect', contacts: contacts as string[] };
      }
      case 'route': {
        if (typeof data.uri === 'string') {
          const address = parseAppAddress(data.uri);
          if (!address) return bad(`invalid route uri ${JSON.stringify(data.uri.slice(0, 100))}`);
          return this.connect(address.host, address.port, address.transport);
        }
        if (typeof data.tag === 'string') {
          const app = this.router.nextTagged(method, data.tag);
          if (!app) return { kind: 'reject', status: 480, why: `no connected app routes ${method} with tag ${data.tag}` };
          return { kind: 'app', app };
        }
        return bad("'uri' is missing or is not a string");
      }
      case 'proxy':
        return bad("the 'proxy' action is not supported by ferry sip (an app can proxy with srf.proxyRequest)");
      default:
        return bad(`invalid 'action' ${JSON.stringify(action.slice(0, 40))}: valid values are 'reject', 'redirect' and 'route'`);
    }
  }

  /** GET (or POST) the callback with drachtio-server's query parameters; resolves with the parsed JSON answer. */
  private async askCallback(facts: NewRequestFacts): Promise<unknown> {
    const target = this.settings.target;
    if (target.kind !== 'http') throw new Error('no web callback configured');
    const url = new URL(target.url);
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    const uri = /^(sips?):([^@;?]*@)?([^;:?>]+)(?::\d+)?([^?>]*)/i.exec(facts.uri);
    const params: [string, string][] = [
      ['method', facts.method],
      ['domain', uri?.[3] ?? ''],
      ['protocol', facts.protocol],
      ['source_address', facts.sourceAddress],
      ['fromUser', facts.fromUser],
      ['toUser', facts.toUser],
      ['uriUser', uri?.[2]?.slice(0, -1).split(':')[0] ?? ''],
      ['contentType', facts.contentType],
      ['uri', facts.uri],
    ];
    for (const p of (uri?.[4] ?? '').split(';').filter(Boolean)) {
      const eq = p.indexOf('=');
      params.push(eq < 0 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)]);
    }
    for (const [k, v] of params) url.searchParams.append(k, v);
    const res = await fetch(url, {
      method: target.httpMethod,
      headers: { Accept: 'application/json', ...(target.httpMethod === 'POST' ? { 'Content-Type': 'text/plain; charset=UTF-8' } : {}) },
      body: target.httpMethod === 'POST' ? facts.raw() : undefined,
      redirect: 'follow',
      signal: AbortSignal.timeout(this.settings.httpTimeoutMs),
    });
    const text = await readCapped(res, MAX_ANSWER_BYTES);
    this.log.debug('request handler answered', { status: res.status, bytes: text.length });
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`HTTP ${res.status}, body is not JSON`);
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new Error(`answer larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
