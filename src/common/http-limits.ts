import type net from 'node:net';
import { envInt, type Env } from './env';
import { LogThrottle } from './log-throttle';
import type { Logger } from './logger';
import { sourceKeyer, type SourceKeyer } from './source-key';
import { SourceRateLimiter } from './source-rate-limit';

/**
 * What an HTTP listener accepts from a connection (the gateway's page, API and /metrics; ferry media's control port):
 * how long a client may take to send a request (and, over HTTPS, its TLS handshake), how many
 * connections one source, and everybody together, may hold, and how fast one source may open HTTPS
 * connections. A source is an IPv4 address or an IPv6 prefix (src/common/source-key.ts).
 * docs/security.md, "HTTP API and webphone".
 */
export interface HttpLimits {
  /** the headers of a request (over HTTPS, the TLS handshake too) must be complete this long after the connection or the previous request */
  headerTimeoutMs: number;
  /** the whole request, body included, must be received within this */
  requestTimeoutMs: number;
  /** connections open at once from one source (HTTP and HTTPS together); more are closed on accept */
  maxConnectionsPerSource: number;
  /** connections open at once in all (HTTP and HTTPS together); more are closed on accept */
  maxConnections: number;
  /** new HTTPS connections one source may open per second on average; more are closed on accept, before the handshake (absent: from the environment) */
  tlsHandshakesPerSourcePerSecond?: number;
  /** ...and at once after a quiet spell (absent: from the environment) */
  tlsHandshakeBurst?: number;
  /** IPv6 sources are counted by this many leading bits, 48..128 (absent: FERRY_SOURCE_IPV6_PREFIX, default 64) */
  sourceIpv6Prefix?: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnectionsPerSource: 64,
  maxConnections: 1024,
};

/** Defaults of the HTTPS handshake rate: a browser opens a handful of connections per page, a whole office behind one address a few dozen. */
export const DEFAULT_HTTPS_HANDSHAKE_RATE = { perSecond: 20, burst: 40 };

/** the environment variable of each limit (docs/configuration.md) */
export const HTTP_LIMIT_VARIABLES: Record<keyof HttpLimits, string> = {
  headerTimeoutMs: 'FERRY_HTTP_HEADER_TIMEOUT_MS',
  requestTimeoutMs: 'FERRY_HTTP_REQUEST_TIMEOUT_MS',
  maxConnectionsPerSource: 'FERRY_HTTP_MAX_CONNECTIONS_PER_SOURCE',
  maxConnections: 'FERRY_HTTP_MAX_CONNECTIONS',
  tlsHandshakesPerSourcePerSecond: 'FERRY_HTTPS_HANDSHAKES_PER_SOURCE_PER_SECOND',
  tlsHandshakeBurst: 'FERRY_HTTPS_HANDSHAKE_BURST',
  sourceIpv6Prefix: 'FERRY_SOURCE_IPV6_PREFIX',
};

/** FERRY_HTTPS_HANDSHAKES_PER_SOURCE_PER_SECOND and FERRY_HTTPS_HANDSHAKE_BURST, each at least 1, else an error naming the variable. */
export function httpsHandshakeRateFromEnv(env: Env = process.env): { perSecond: number; burst: number } {
  const read = (name: string, fallback: number): number => {
    const n = envInt(name, fallback, env);
    if (n < 1) throw new Error(`environment variable ${name}=${n} must be at least 1`);
    return n;
  };
  return {
    perSecond: read(HTTP_LIMIT_VARIABLES.tlsHandshakesPerSourcePerSecond, DEFAULT_HTTPS_HANDSHAKE_RATE.perSecond),
    burst: read(HTTP_LIMIT_VARIABLES.tlsHandshakeBurst, DEFAULT_HTTPS_HANDSHAKE_RATE.burst),
  };
}

/** how often Node's HTTP server checks the header and request deadlines (its default, 30 s, would let a 10 s deadline run to 40 s) */
export function deadlineCheckIntervalMs(limits: HttpLimits): number {
  return Math.max(100, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4)));
}

/**
 * Counts the open connections of the HTTP and HTTPS servers by source (src/common/source-key.ts: an IPv4
 * address, an IPv6 /64) and closes, on accept, one over either cap; an HTTPS connection is also refused
 * when its source is over the handshake rate (a token bucket per source), before any handshake work.
 * A cap refusal is logged one line per cap per 10 s, a handshake-rate refusal one line per source per
 * 10 s (with the number not logged). Clock: `now` (tests).
 */
export class HttpConnectionGuard {
  private readonly bySource = new Map<string, number>();
  private open = 0;
  private readonly throttle: LogThrottle;
  private readonly handshakes: SourceRateLimiter;
  readonly sourceKey: SourceKeyer;
  readonly refused = { perSource: 0, total: 0, handshakeRate: 0 };

  constructor(readonly limits: HttpLimits, private readonly log: Logger, now: () => number = Date.now) {
    this.throttle = new LogThrottle(10_000, now);
    this.sourceKey = sourceKeyer(limits.sourceIpv6Prefix);
    const fromEnv = limits.tlsHandshakesPerSourcePerSecond === undefined || limits.tlsHandshakeBurst === undefined ? httpsHandshakeRateFromEnv() : undefined;
    this.handshakes = new SourceRateLimiter({
      perSecond: limits.tlsHandshakesPerSourcePerSecond ?? fromEnv!.perSecond,
      burst: limits.tlsHandshakeBurst ?? fromEnv!.burst,
    }, now);
  }

  get openCount(): number {
    return this.open;
  }

  /** sources whose handshake-rate bucket has not refilled yet */
  get handshakeSources(): number {
    return this.handshakes.tracked;
  }

  /**
   * A server's 'connection' listener: the raw TCP socket, before any TLS handshake. `tls`: an HTTPS
   * listener's (the connection then also counts against the handshake rate).
   */
  admit(socket: net.Socket, tls = false): void {
    // an IPv4 client of a dual-stack listener is ::ffff:a.b.c.d: counted and logged as a.b.c.d
    const raw = socket.remoteAddress ?? '?';
    const source = raw.startsWith('::ffff:') && raw.includes('.') ? raw.slice(7) : raw;
    const key = this.sourceKey(raw);
    const held = this.bySource.get(key) ?? 0;
    let cap: 'per-source-cap' | 'connection-cap' | 'handshake-rate' | undefined;
    if (held >= this.limits.maxConnectionsPerSource) cap = 'per-source-cap';
    else if (this.open >= this.limits.maxConnections) cap = 'connection-cap';
    // only a connection that would be admitted takes a token: a refused one costs no handshake
    else if (tls && !this.handshakes.take(key)) cap = 'handshake-rate';
    if (cap) {
      if (cap === 'per-source-cap') this.refused.perSource++;
      else if (cap === 'connection-cap') this.refused.total++;
      else this.refused.handshakeRate++;
      const limit = cap === 'per-source-cap' ? this.limits.maxConnectionsPerSource
        : cap === 'connection-cap' ? this.limits.maxConnections : this.handshakes.rate.perSecond;
      const logged = this.throttle.admit(cap === 'handshake-rate' ? `${cap}|${key}` : cap);
      if (logged) {
        this.log.warn(`HTTP connection refused from ${source}${key === source ? '' : ` (counted as ${key})`}: ${cap}`,
          { source, sourceKey: key, reason: cap, limit, ...(cap === 'handshake-rate' ? { burst: this.handshakes.rate.burst } : {}), suppressed: logged.suppressed });
      }
      socket.destroy();
      return;
    }
    this.open++;
    this.bySource.set(key, held + 1);
    socket.once('close', () => {
      this.open--;
      const n = (this.bySource.get(key) ?? 1) - 1;
      if (n <= 0) this.bySource.delete(key);
      else this.bySource.set(key, n);
    });
  }
}
