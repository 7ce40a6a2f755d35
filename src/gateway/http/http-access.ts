import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { isIP } from 'node:net';
import { hostName } from '../../common/host-header';
import { TokenGuessLimit } from './token-guess-limit';

/**
 * Who may use the gateway's HTTP side (docs/security.md "HTTP API and webphone"):
 * - `/api/*` (except the page's own `/api/webphone-config`) needs `Authorization: Bearer <token>`;
 *   with no token configured it answers 401 to everyone. A token `ferry start` generated is usable
 *   from this host only (loopback, or the host's own address: `fromThisHost`; 403 from elsewhere): it was
 *   never meant to leave the host.
 * - `/metrics` answers clients on this host without a token (a scraper on the host; counters only),
 *   others with the token; FERRY_METRICS_AUTH=token asks everyone for it.
 * - every request's Host must be one of the configured names or an IP literal, else 421: a browser
 *   tricked by DNS rebinding sends the attacker's name.
 */
export interface HttpAccessConfig {
  apiToken: string | undefined;
  apiLoopbackOnly: boolean;
  metricsAuth: 'loopback' | 'token';
  /** lower-case host names (no port) accepted in Host; IP literals are always accepted */
  allowedHosts: string[];
}

type Env = Record<string, string | undefined>;

export const MIN_API_TOKEN_LENGTH = 16;

/** reads FERRY_API_TOKEN / FERRY_API_TOKEN_FILE, FERRY_API_LOOPBACK_ONLY, FERRY_METRICS_AUTH, FERRY_HTTP_ALLOWED_HOSTS */
export function loadHttpAccessConfig(env: Env, listenHost: string, problems: string[]): HttpAccessConfig {
  let apiToken = env.FERRY_API_TOKEN || undefined;
  if (!apiToken && env.FERRY_API_TOKEN_FILE) {
    try {
      apiToken = readFileSync(env.FERRY_API_TOKEN_FILE, 'utf8').trim() || undefined;
    } catch (err) {
      problems.push(`environment: FERRY_API_TOKEN_FILE: cannot read ${env.FERRY_API_TOKEN_FILE}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (apiToken !== undefined && (apiToken.length < MIN_API_TOKEN_LENGTH || /\s/.test(apiToken))) {
    problems.push(`environment: the API token must be at least ${MIN_API_TOKEN_LENGTH} characters without spaces`);
  }
  const metricsAuth = env.FERRY_METRICS_AUTH || 'loopback';
  if (metricsAuth !== 'loopback' && metricsAuth !== 'token') problems.push(`environment: FERRY_METRICS_AUTH=${JSON.stringify(metricsAuth)}: must be loopback or token`);
  const configured = env.FERRY_HTTP_ALLOWED_HOSTS;
  const names = configured
    ? configured.split(',')
    : ['localhost', listenHost, env.FERRY_PUBLIC_HOST ?? ''];
  const allowedHosts = [...new Set(names.map((n) => n.trim().toLowerCase().replace(/^\[|\]$/g, '')).filter((n) => n && n !== '0.0.0.0' && n !== '::'))];
  return { apiToken, apiLoopbackOnly: env.FERRY_API_LOOPBACK_ONLY === '1', metricsAuth: metricsAuth === 'token' ? 'token' : 'loopback', allowedHosts };
}

export type AccessDecision = { ok: true } | { ok: false; status: number; error: string; headers?: Record<string, string> };

function plainAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:/, '');
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = plainAddress(address);
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'));
}

/**
 * The client runs on this host: it came over loopback, or from the very address it connected to (a program on
 * this host opening the host's own LAN address, e.g. when the page and API listen on that address only). A
 * TCP connection cannot carry a forged source address through its handshake (the answer would go to this
 * host itself), so a remote address equal to the local one is this host.
 */
function fromThisHost(socket: { remoteAddress?: string; localAddress?: string }): boolean {
  if (isLoopback(socket.remoteAddress)) return true;
  const remote = socket.remoteAddress;
  const local = socket.localAddress;
  return remote !== undefined && local !== undefined && plainAddress(remote) === plainAddress(local);
}


/** constant-time: both sides hashed to 32 bytes first, so neither length nor content leaks through timing */
function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export class HttpAccess {
  constructor(
    private readonly config: HttpAccessConfig,
    /** wrong bearer tokens per source: past the limit the source gets 429 for a while (token-guess-limit.ts) */
    readonly guesses = new TokenGuessLimit(),
    private readonly onLockout: (source: string) => void = () => {},
  ) {}

  /** 421 unless Host names us */
  checkHost(req: http.IncomingMessage): AccessDecision {
    const header = req.headers.host;
    if (!header) return { ok: false, status: 400, error: 'a Host header is required' };
    const name = hostName(header);
    if (isIP(name) !== 0 || this.config.allowedHosts.includes(name)) return { ok: true };
    return { ok: false, status: 421, error: 'this server does not answer for that host name (FERRY_HTTP_ALLOWED_HOSTS)' };
  }

  /** bearer token check for `/api/*`, and for `/metrics` from clients on other machines */
  authorize(req: http.IncomingMessage, what: 'api' | 'metrics'): AccessDecision {
    const loopback = fromThisHost(req.socket);
    if (what === 'metrics' && this.config.metricsAuth === 'loopback' && loopback) return { ok: true };
    const challenge = { 'WWW-Authenticate': 'Bearer realm="ferry"' };
    const token = this.config.apiToken;
    if (!token) return { ok: false, status: 401, error: 'no API token is configured (FERRY_API_TOKEN)', headers: challenge };
    if (this.config.apiLoopbackOnly && !loopback) return { ok: false, status: 403, error: 'the generated API token is usable from this host only; set FERRY_API_TOKEN to use the API from elsewhere' };
    const source = req.socket.remoteAddress ?? '';
    const locked = this.guesses.lockedFor(source);
    if (locked > 0) {
      return { ok: false, status: 429, error: 'too many wrong API tokens from this address: try again later', headers: { 'Retry-After': String(Math.ceil(locked / 1000)) } };
    }
    const m = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return { ok: false, status: 401, error: 'a valid bearer token is required', headers: challenge };
    if (!sameToken(m[1]!, token)) {
      if (this.guesses.failed(source)) this.onLockout(source);
      return { ok: false, status: 401, error: 'a valid bearer token is required', headers: challenge };
    }
    return { ok: true };
  }
}
