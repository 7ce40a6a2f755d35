import http from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import os from 'node:os';
import { hostName } from '../../common/host-header';
import { deadlineCheckIntervalMs, HttpConnectionGuard, type HttpLimits } from '../../common/http-limits';
import type { Logger } from '../../common/logger';
import { errorForLog } from '../../common/process-faults';
import type { SipMetricsListen } from './sip-metrics-settings';

/**
 * The limits of the metrics port. A scraper sends one small GET and reads the answer: its headers come at
 * once, it holds one connection (a few while a scrape is retried), and it sends no body.
 */
export const SIP_METRICS_HTTP_LIMITS: Required<Omit<HttpLimits, 'sourceIpv6Prefix'>> & { maxHeaderBytes: number } = {
  headerTimeoutMs: 5_000,
  requestTimeoutMs: 5_000,
  maxConnectionsPerSource: 8,
  maxConnections: 32,
  // plain HTTP: no handshake to rate (the guard wants the numbers rather than reading the HTTPS variables)
  tlsHandshakesPerSourcePerSecond: 1,
  tlsHandshakeBurst: 1,
  maxHeaderBytes: 8 * 1024,
};

export interface RunningSipMetricsServer {
  port: number;
  /** connections refused on accept by the caps */
  refused(): { perSource: number; total: number };
  close(): Promise<void>;
}

const HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };

/**
 * GET /metrics on `listen.host:listen.port` (Prometheus text format 0.0.4, from `render`). Anything else:
 * 404 (another path) or 405 (another method on /metrics); a request with a body: 413, connection closed; a
 * Host header that is not an IP literal, `localhost` or this machine's name: 421 (a web page that rebinds
 * its own name to 127.0.0.1 sends its name). HTTP limits as the repo's other small HTTP servers
 * (src/common/http-limits.ts): headers within 5 s (408), at most 8 KiB of them (431), at most 8 connections
 * per source and 32 in all (more are closed on accept, counted). A non-loopback `listen.host` is logged
 * once as exposed.
 */
export async function startSipMetricsServer(listen: SipMetricsListen, render: () => string, log: Logger): Promise<RunningSipMetricsServer> {
  const limits = SIP_METRICS_HTTP_LIMITS;
  const guard = new HttpConnectionGuard(limits, log);
  const names = new Set(['localhost', os.hostname().toLowerCase()]);
  const server = http.createServer({
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: deadlineCheckIntervalMs(limits),
    maxHeaderSize: limits.maxHeaderBytes,
  }, (req, res) => {
    const answer = (status: number, text: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8', ...extra });
      res.end(`${text}\n`);
    };
    const host = req.headers.host;
    if (!host) return answer(400, 'a Host header is required');
    const name = hostName(host);
    if (isIP(name) === 0 && !names.has(name)) return answer(421, 'this server does not answer for that host name');
    // no body is read: a request that announces one is answered and its connection closed
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')) {
      return answer(413, 'the metrics port takes no request body', { Connection: 'close' });
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return answer(404, 'not found (ferry sip serves GET /metrics here)');
    if (req.method !== 'GET') return answer(405, 'GET /metrics only', { Allow: 'GET' });
    let body: string;
    try {
      body = render();
    } catch (err) {
      log.error('metrics could not be rendered', errorForLog(err));
      return answer(500, 'metrics unavailable');
    }
    res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(body);
  });
  server.on('connection', (socket: Socket) => guard.admit(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  if (listen.exposed) log.warn('ferry sip metrics port is reachable from other hosts (FERRY_SIP_METRICS_HOST)', { host: listen.host, port });
  else log.info('ferry sip metrics listening', { host: listen.host, port });
  return {
    port,
    refused: () => ({ perSource: guard.refused.perSource, total: guard.refused.total }),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
