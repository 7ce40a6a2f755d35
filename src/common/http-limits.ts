import type net from 'node:net';
import { LogThrottle } from './log-throttle';
import type { Logger } from './logger';

/**
 * What an HTTP listener accepts from a connection (the gateway's page, API and /metrics; ferry media's control port):
 * how long a client may take to send a request (and, over HTTPS, its TLS handshake) and how many
 * connections one address, and everybody together, may hold. docs/security.md, "HTTP API and webphone".
 */
export interface HttpLimits {
  /** the headers of a request (over HTTPS, the TLS handshake too) must be complete this long after the connection or the previous request */
  headerTimeoutMs: number;
  /** the whole request, body included, must be received within this */
  requestTimeoutMs: number;
  /** connections open at once from one IP address (HTTP and HTTPS together); more are closed on accept */
  maxConnectionsPerSource: number;
  /** connections open at once in all (HTTP and HTTPS together); more are closed on accept */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnectionsPerSource: 64,
  maxConnections: 1024,
};

/** the environment variable of each limit (docs/configuration.md) */
export const HTTP_LIMIT_VARIABLES: Record<keyof HttpLimits, string> = {
  headerTimeoutMs: 'FERRY_HTTP_HEADER_TIMEOUT_MS',
  requestTimeoutMs: 'FERRY_HTTP_REQUEST_TIMEOUT_MS',
  maxConnectionsPerSource: 'FERRY_HTTP_MAX_CONNECTIONS_PER_SOURCE',
  maxConnections: 'FERRY_HTTP_MAX_CONNECTIONS',
};

/** how often Node's HTTP server checks the header and request deadlines (its default, 30 s, would let a 10 s deadline run to 40 s) */
export function deadlineCheckIntervalMs(limits: HttpLimits): number {
  return Math.max(100, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4)));
}

/**
 * Counts the open connections of the HTTP and HTTPS servers by source address and closes, on accept,
 * one over either cap. A refusal is logged one line per cap per 10 s (with the number not logged).
 */
export class HttpConnectionGuard {
  private readonly bySource = new Map<string, number>();
  private open = 0;
  private readonly throttle = new LogThrottle(10_000);
  readonly refused = { perSource: 0, total: 0 };

  constructor(readonly limits: HttpLimits, private readonly log: Logger) {}

  get openCount(): number {
    return this.open;
  }

  /** a server's 'connection' listener: the raw TCP socket, before any TLS handshake */
  admit(socket: net.Socket): void {
    // an IPv4 client of a dual-stack listener is ::ffff:a.b.c.d: counted and logged as a.b.c.d
    const raw = socket.remoteAddress ?? '?';
    const source = raw.startsWith('::ffff:') && raw.includes('.') ? raw.slice(7) : raw;
    const held = this.bySource.get(source) ?? 0;
    let cap: 'per-source-cap' | 'connection-cap' | undefined;
    if (held >= this.limits.maxConnectionsPerSource) cap = 'per-source-cap';
    else if (this.open >= this.limits.maxConnections) cap = 'connection-cap';
    if (cap) {
      if (cap === 'per-source-cap') this.refused.perSource++;
      else this.refused.total++;
      const limit = cap === 'per-source-cap' ? this.limits.maxConnectionsPerSource : this.limits.maxConnections;
      const logged = this.throttle.admit(cap);
      if (logged) this.log.warn(`HTTP connection refused from ${source}: ${cap}`, { source, reason: cap, limit, suppressed: logged.suppressed });
      socket.destroy();
      return;
    }
    this.open++;
    this.bySource.set(source, held + 1);
    socket.once('close', () => {
      this.open--;
      const n = (this.bySource.get(source) ?? 1) - 1;
      if (n <= 0) this.bySource.delete(source);
      else this.bySource.set(source, n);
    });
  }
}
