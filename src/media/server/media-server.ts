import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { systemClock, type Clock } from '../../common/clock';
import { createLogger, type Logger } from '../../common/logger';
import { defaultElementTypes } from '../objects/element-types';
import type { ElementTypeRegistry } from '../objects/element-type';
import { RpcConnection } from '../rpc/rpc-connection';
import { PortAllocator } from '../rtp/port-allocator';
import { loadMediaConfig, type MediaConfig } from './media-config';
import { nativeRelay } from '../native/native-relay';
import { chooseRelay } from '../native/relay-choice';
import { MediaSet } from './media-set';
import { EventLoopLag } from './event-loop-lag';
import { guarded, processFaultCounts } from '../../common/process-faults';
import { LogThrottle } from '../../common/log-throttle';
import { deadlineCheckIntervalMs, HttpConnectionGuard } from '../../common/http-limits';
import { controlRequestRefusal } from './control-http-guard';
import { WorkerPool } from '../workers/worker-pool';
import { mediaStatsBody } from './media-stats';
import { createHttpPostRoute } from '../http-post/http-post-route';
import { httpPostMaxBytes } from '../http-post/http-post-settings';

export interface MediaServerOptions {
  /** Overrides on top of the environment (FERRY_MEDIA_*). `port: 0` picks a free port. */
  config?: Partial<MediaConfig>;
  clock?: Clock;
  logger?: Logger;
  elementTypes?: ElementTypeRegistry;
  /** Orphaned pipelines that never negotiated media are released after this long (default: config.orphanTtlMs). */
  orphanTtlMs?: number;
  /**
   * Resolve only once every relay worker runs (default true). `ferry media` passes false: it is ready as
   * soon as it listens (a restarted media server is back for its gateway at once) and a create waits for
   * a worker.
   */
  awaitWorkers?: boolean;
}

export interface RunningMediaServer {
  port: number;
  /** `ws://host:port/kurento` */
  url: string;
  config: MediaConfig;
  mediaSet: MediaSet;
  /** The relay workers (undefined when everything runs on the main thread: FERRY_MEDIA_WORKERS=1, an injected clock or element registry). */
  workers: WorkerPool | undefined;
  /** Resolves when every relay worker is running (at once without workers). Listening does not wait for it. */
  workersReady: Promise<void>;
  /** POST /drain set, POST /undrain cleared (a signal for the gateway, read from /stats `draining`). */
  readonly draining: boolean;
  /** Release everything (peers told), close every connection and the listener. Idempotent. */
  close(): Promise<void>;
}

const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** startMediaServer() (unless awaitWorkers is false) gives up when the workers do not run within this. */
const WORKERS_READY_TIMEOUT_MS = 60_000;

/**
 * ferry media: the Kurento JSON-RPC server on ws://HOST:PORT/kurento plus plain HTTP GET /stats on the
 * same port (docs/media-server.md).
 */
export async function startMediaServer(options: MediaServerOptions = {}): Promise<RunningMediaServer> {
  const loaded = loadMediaConfig(options.config);
  const httpPostCap = httpPostMaxBytes(); // a bad value stops the start here, before anything runs
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger('media.server');
  // FERRY_MEDIA_RELAY: the addon is built and loaded now, so `native` on a machine without a compiler fails
  // at start and `auto` settles on one relay before any element or relay worker reads the setting
  const relayChoice = chooseRelay(loaded.relay, nativeRelay);
  if (relayChoice.fallbackReason !== undefined) {
    logger.warn('native relay unavailable: packets are relayed in JavaScript (FERRY_MEDIA_RELAY=auto)', { reason: relayChoice.fallbackReason });
  }
  const config: MediaConfig = { ...loaded, relay: relayChoice.relay };
  // an injected clock or element registry cannot cross into a relay worker: those servers keep one loop
  const useWorkers = config.workers > 1 && !options.clock && !options.elementTypes;
  let pool: WorkerPool | undefined;
  const mediaSet: MediaSet = new MediaSet({
    config,
    clock,
    logger,
    elementTypes: options.elementTypes ?? defaultElementTypes(),
    ports: new PortAllocator(config.rtpHost, config.rtpPortMin, config.rtpPortMax),
    orphanTtlMs: options.orphanTtlMs ?? config.orphanTtlMs,
    workers: () => pool,
  });
  let workersReady = Promise.resolve();
  if (useWorkers) {
    pool = new WorkerPool(config.workers, config, {
      event: (id, type, data, state) => mediaSet.workerEvent(id, type, data, state),
      legEnded: (id, reason, state) => mediaSet.workerLegEnded(id, reason, state),
      workerDied: (id) => mediaSet.workerDied(id),
    }, logger.child({ component: 'media.workers' }));
  }
  // the workers start once the control port listens, so they know its port (HttpPostEndpoint URLs); a
  // create waits for a running worker (worker-pool.ts)
  const launchWorkers = (): void => {
    if (!pool) return;
    workersReady = pool.launch();
    workersReady.then(() => logger.info('relay workers running', { workers: config.workers, kind: config.workerKind }), () => undefined);
  };
  let draining = false;
  const serverId = randomUUID();
  const sockets = new Set<WebSocket>();
  const loopLag = new EventLoopLag(config.lagWindowMs);

  const policy = config.controlHttp;
  const refusalLog = new LogThrottle(10_000);
  // answers a refused request (and logs it, one line per reason per 10 s); true when refused
  const refused = (req: http.IncomingMessage, answer: (status: number, text: string) => void): boolean => {
    const why = controlRequestRefusal(req, policy);
    if (!why) return false;
    const logged = refusalLog.admit(why.reason);
    if (logged) logger.warn(`control request refused: ${why.reason}`, { reason: why.reason, origin: req.headers.origin, host: req.headers.host, remote: req.socket.remoteAddress, suppressed: logged.suppressed });
    answer(why.status, why.text);
    return true;
  };
  // a connection must send its request (or WebSocket upgrade) within the header deadline; at most the
  // WebSocket cap plus 64 connections are open at once (/stats readers, upgrades under way)
  const connectionGuard = new HttpConnectionGuard(
    {
      headerTimeoutMs: policy.headerTimeoutMs,
      requestTimeoutMs: Math.max(policy.headerTimeoutMs, 30_000),
      maxConnectionsPerSource: config.quotas.maxConnections + 64,
      maxConnections: config.quotas.maxConnections + 64,
    },
    logger,
  );
  const l = connectionGuard.limits;
  // POST /ferry-http-post/...: uploads to HttpPostEndpoints (src/media/http-post/http-post-route.ts)
  const httpPost = createHttpPostRoute(mediaSet, httpPostCap, logger.child({ component: 'media.http-post' }));
  const httpServer = http.createServer({ headersTimeout: l.headerTimeoutMs, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: deadlineCheckIntervalMs(l) }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (
      refused(req, (status, text) => {
        res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' });
        res.end(`${text}\n`);
        req.resume();
      })
    ) {
      return;
    }
    if (httpPost(req, res, path)) return;
    if (req.method === 'GET' && path === '/stats') {
      mediaStatsBody(mediaSet, pool, loopLag.snapshot(), processFaultCounts(), draining).then(
        (body) => {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end(JSON.stringify(body));
        },
        (err: unknown) => {
          logger.error('/stats failed', { error: err instanceof Error ? err.message : String(err) });
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('stats unavailable\n');
        },
      );
      return;
    }
    if (path === '/drain' || path === '/undrain') {
      if (req.method !== 'POST') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'POST' });
        res.end(`${path} takes POST\n`);
        return;
      }
      const want = path === '/drain';
      if (want !== draining) logger.info(want ? 'media server draining: gateways place no new calls here' : 'media server no longer draining', {});
      draining = want;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ draining }));
      req.resume(); // a body, if any, is not read
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found (ferry media serves ws://HOST:PORT/kurento, GET /stats, POST /drain and POST /undrain)\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const maxConnections = config.quotas.maxConnections;
  const refusedConnectionLog = new LogThrottle(10_000);
  httpServer.on('connection', (socket) => connectionGuard.admit(socket));
  httpServer.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '').split('?')[0]!.replace(/^\/+/, '');
    if (path !== 'kurento') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    if (refused(req, (status, text) => socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${text}\n`))) return;
    if (sockets.size >= maxConnections) {
      if (refusedConnectionLog.admit('cap')) logger.warn('control connection refused: connection cap reached', { max: maxConnections, remote: req.socket.remoteAddress });
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  const alive = new WeakMap<WebSocket, boolean>();
  const pingTimer =
    config.wsPingMs > 0
      ? setInterval(guarded('media.ws-ping', () => {
          for (const ws of sockets) {
            if (alive.get(ws) === false) {
              logger.info('control socket missed a pong; dropping it', {});
              ws.terminate();
              continue;
            }
            alive.set(ws, false);
            ws.ping();
          }
        }), config.wsPingMs)
      : undefined;
  pingTimer?.unref();
  wss.on('connection', (ws: WebSocket) => {
    sockets.add(ws);
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    const conn = new RpcConnection(
      mediaSet,
      (text) => {
        if (ws.readyState === ws.OPEN) ws.send(text);
      },
      serverId,
      logger.child({ component: 'media.rpc' }),
    );
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString();
      conn.handleFrame(text);
    });
    ws.on('close', () => {
      sockets.delete(ws);
      conn.closedByPeer();
    });
    ws.on('error', (err) => logger.warn('control socket error', { error: err.message }));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => {
        httpServer.removeListener('error', reject);
        // port 0: the port the system chose, for what ferry media advertises (HttpPostEndpoint URLs)
        config.port = (httpServer.address() as AddressInfo).port;
        launchWorkers();
        resolve();
      });
    });
  } catch (err) {
    if (pingTimer) clearInterval(pingTimer);
    loopLag.close();
    await pool?.close();
    throw err;
  }
  if (options.awaitWorkers !== false && pool) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), WORKERS_READY_TIMEOUT_MS);
    });
    const ready = await Promise.race([workersReady.then(() => true), late]);
    clearTimeout(timer);
    if (!ready) {
      if (pingTimer) clearInterval(pingTimer);
      loopLag.close();
      await pool.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      throw new Error(`ferry media: the relay workers were not running within ${WORKERS_READY_TIMEOUT_MS} ms`);
    }
  }
  const port = (httpServer.address() as AddressInfo).port;
  logger.info('ferry media listening', { host: config.host, port, relay: config.relay });

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `ws://${urlHost(config.host)}:${port}/kurento`,
    config,
    mediaSet,
    workers: pool,
    workersReady,
    get draining() {
      return draining;
    },
    close() {
      closing ??= (async () => {
        if (pingTimer) clearInterval(pingTimer);
        loopLag.close();
        await mediaSet.closeAll();
        await pool?.close();
        for (const ws of sockets) ws.terminate();
        wss.close();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      })();
      return closing;
    },
  };
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
