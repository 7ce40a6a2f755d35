import net from 'node:net';
import type { Logger } from '../../common/logger';
import { AppConnection } from './app-connection';
import { AUTHENTICATED_MAX_FRAME_BYTES, ControlFrameDecoder } from './control-frame-decoder';
import { DEFAULT_CONTROL_LIMITS, type ControlLimits } from './control-limits';
import { AppRouter } from './app-router';
import { guarded } from '../../common/process-faults';
import { LogThrottle } from '../../common/log-throttle';
import { secretMatches } from './secret-match';

export interface AppSipMessage {
  rid: string;
  transactionId: string;
  dialogId: string;
  proxy: string | undefined;
  raw: string;
}

/**
 * `proxy|<stackTxnId>|remainInDialog|fullResponse|followRedirects|simultaneous|<provisionalTimeout>|<finalTimeout>|<dest>|...`
 * followed by CRLF and a SIP message carrying the headers the app adds (drachtio-srf `srf.proxyRequest`).
 */
export interface AppProxyMessage {
  rid: string;
  transactionId: string;
  remainInDialog: boolean;
  fullResponse: boolean;
  followRedirects: boolean;
  simultaneous: boolean;
  provisionalTimeout: string;
  finalTimeout: string;
  destinations: string[];
  /** the SIP message after the first CRLF ('' when none) */
  raw: string;
  /** every token of the frame's first line, as received */
  tokens: string[];
}

/** What the engine does with app messages. */
export interface ControlHandler {
  onAppSip(app: AppConnection, msg: AppSipMessage): void;
  /** `proxy`: the app asks the engine to proxy a network request it was handed. */
  onAppProxy?(app: AppConnection, msg: AppProxyMessage): void;
  onAppClosed(app: AppConnection): void;
  /** The app now routes `verb` (lower case): requests held for such an app go to it. */
  onAppRoute?(app: AppConnection, verb: string): void;
}

/** Who waits for an outbound connection (ControlServer.adoptOutbound). */
export interface OutboundAdoption {
  /** the app must have sent a valid `authenticate` by then */
  authTimeoutMs: number;
  /** the app authenticated (the `OK` is written): the request may go to it now */
  onAuthenticated(app: AppConnection): void;
  /** the connection closed (before or after authenticating) */
  onClosed(app: AppConnection): void;
}

export interface ControlServerOptions {
  secret: string;
  version: string;
  /** `udp/127.0.0.1:5060,tcp/127.0.0.1:5060,ws/127.0.0.1:8088` */
  hostports: () => string;
  /** Pre-authentication limits and connection caps (defaults: DEFAULT_CONTROL_LIMITS). */
  limits?: Partial<ControlLimits>;
}

/**
 * The drachtio control port: authenticate, route/remove_route, ping,
 * and `sip` messages handed to the engine. A malformed frame closes only that app's connection.
 * Until a connection has authenticated it is held to a small frame limit and an authentication
 * deadline, and only so many such connections (and connections in all) are accepted (control-limits.ts).
 */
export class ControlServer {
  readonly router = new AppRouter();
  private server: net.Server | undefined;
  private readonly apps = new Set<AppConnection>();
  /** outbound connections, until they close: who waits for them */
  private readonly outbound = new Map<AppConnection, OutboundAdoption>();
  private seq = 0;
  private readonly limits: ControlLimits;
  /** refused connections: one line per cap per 10 s, however fast they come */
  private readonly refusalLog = new LogThrottle(10_000);
  /** events of connections that never authenticated: one line per kind and source address per 10 s */
  private readonly strangerLog = new LogThrottle(10_000);

  constructor(private readonly options: ControlServerOptions, private readonly handler: ControlHandler, private readonly log: Logger) {
    this.limits = { ...DEFAULT_CONTROL_LIMITS, ...options.limits };
  }

  async listen(host: string, port: number): Promise<number> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return (server.address() as net.AddressInfo).port;
  }

  private accept(socket: net.Socket): void {
    const refusal = this.refusal();
    if (refusal) {
      const admitted = this.refusalLog.admit(refusal);
      if (admitted) this.log.warn('control connection refused', { remote: `${socket.remoteAddress}:${socket.remotePort}`, reason: refusal, suppressedSinceLastLine: admitted.suppressed });
      socket.on('error', () => { /* the peer may reset first */ });
      socket.destroy();
      return;
    }
    this.attach(socket, undefined);
  }

  /**
   * Outbound connection mode: `socket` is a connection ferry sip opened to an app listening with
   * `srf.listen()`. The app authenticates as an inbound one does (it sends `authenticate` first); `outbound`
   * hears when it did (the request for it can go out) or when the connection ended before.
   * The inbound caps do not count it (OutboundConnections has its own).
   */
  adoptOutbound(socket: net.Socket, outbound: OutboundAdoption): AppConnection {
    return this.attach(socket, outbound);
  }

  private attach(socket: net.Socket, outbound: OutboundAdoption | undefined): AppConnection {
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    const app = new AppConnection(outbound ? `outbound#${++this.seq}` : `app#${++this.seq}`, socket, outbound !== undefined);
    this.apps.add(app);
    if (outbound) this.outbound.set(app, outbound);
    const authTimeoutMs = outbound?.authTimeoutMs ?? this.limits.authTimeoutMs;
    const authTimer = setTimeout(guarded('sip.control-auth-timeout', () => {
      if (app.authenticated || app.closed) return;
      this.logStranger(app, 'app did not authenticate in time, closing its connection', { timeoutMs: authTimeoutMs });
      app.close();
    }), authTimeoutMs);
    authTimer.unref();
    const decoder = new ControlFrameDecoder(() => (app.authenticated ? AUTHENTICATED_MAX_FRAME_BYTES : this.limits.preAuthMaxFrameBytes));
    socket.on('data', (chunk) => {
      if (app.closed) return;
      decoder.append(chunk);
      for (;;) {
        const step = decoder.next();
        if (step === undefined) return;
        if ('error' in step) {
          if (app.authenticated) this.log.info('bad control frame, closing app connection', { app: app.id, remote: app.remote, authenticated: true, error: step.error });
          else this.logStranger(app, 'bad control frame, closing app connection', { authenticated: false, error: step.error });
          app.close();
          return;
        }
        try {
          this.onFrame(app, step.frame);
        } catch (err) {
          this.log.warn('control message failed', { app: app.id, error: err instanceof Error ? err.message : String(err) });
        }
        if (app.closed || app.closing) return;
      }
    });
    socket.on('error', () => { /* close follows */ });
    socket.on('close', () => {
      clearTimeout(authTimer);
      app.closed = true;
      this.apps.delete(app);
      this.router.remove(app);
      const adoption = this.outbound.get(app);
      this.outbound.delete(app);
      if (app.authenticated) this.log.info('app disconnected', { app: app.id });
      this.handler.onAppClosed(app);
      adoption?.onClosed(app);
    });
    return app;
  }

  /** One line per event kind and source address per 10 s for peers that never authenticated (a flood stays a trickle). */
  private logStranger(app: AppConnection, message: string, meta: Record<string, unknown>): void {
    const admitted = this.strangerLog.admit(`${message} ${app.remoteAddress}`);
    if (admitted) this.log.info(message, { app: app.id, remote: app.remote, ...meta, suppressedSinceLastLine: admitted.suppressed });
  }

  /** Why a new connection cannot be taken now, or undefined. */
  private refusal(): string | undefined {
    let inbound = 0;
    let unauthenticated = 0;
    for (const a of this.apps) {
      if (a.outbound) continue;
      inbound++;
      if (!a.authenticated) unauthenticated++;
    }
    if (inbound >= this.limits.maxConnections) return `connection cap reached (${this.limits.maxConnections})`;
    if (unauthenticated >= this.limits.maxUnauthenticated) return `unauthenticated connection cap reached (${this.limits.maxUnauthenticated})`;
    return undefined;
  }

  /** Connections open now, and how many of them have not authenticated (tests, stats). */
  connectionCounts(): { total: number; unauthenticated: number } {
    let unauthenticated = 0;
    for (const a of this.apps) if (!a.authenticated) unauthenticated++;
    return { total: this.apps.size, unauthenticated };
  }

  private onFrame(app: AppConnection, frame: string): void {
    const cr = frame.indexOf('\r');
    const leader = cr < 0 ? frame : frame.slice(0, cr);
    const tokens = leader.split('|');
    const rid = tokens[0];
    const kind = tokens[1];
    if (!app.authenticated && kind !== 'authenticate') {
      app.respond(rid, ['NO', 'not authenticated']);
      app.close();
      return;
    }
    switch (kind) {
      case 'authenticate': {
        if (!secretMatches(tokens[2], this.options.secret)) {
          app.respond(rid, ['NO', 'incorrect secret']);
          this.logStranger(app, 'app failed to authenticate', {});
          app.closing = true;
          setImmediate(guarded('sip.close-unauthenticated-app', () => app.close()));
          return;
        }
        app.authenticated = true;
        app.tags = (tokens[3] ?? '').split(',').filter(Boolean);
        this.router.add(app);
        const hp = this.options.hostports();
        app.respond(rid, ['OK', hp, this.options.version, hp]);
        this.log.info('app connected', { app: app.id, remote: app.remote, outbound: app.outbound });
        this.outbound.get(app)?.onAuthenticated(app);
        return;
      }
      case 'route':
        if (!tokens[2]) return app.respond(rid, ['NO', 'missing verb']);
        app.routes.add(tokens[2].toLowerCase());
        app.respond(rid, ['OK']);
        this.handler.onAppRoute?.(app, tokens[2].toLowerCase());
        return;
      case 'remove_route':
        app.routes.delete((tokens[2] ?? '').toLowerCase());
        return app.respond(rid, ['OK']);
      case 'ping':
        return app.respond(rid, ['OK']);
      case 'sip': {
        if (cr < 0 || frame[cr + 1] !== '\n') return app.respond(rid, ['NOK', 'missing SIP message']);
        this.handler.onAppSip(app, {
          rid,
          transactionId: tokens[2] ?? '',
          dialogId: tokens[3] ?? '',
          proxy: tokens[4] ? tokens[4] : undefined,
          raw: frame.slice(cr + 2),
        });
        return;
      }
      case 'proxy':
        if (!this.handler.onAppProxy) return app.respond(rid, ['NOK', 'proxy is not supported by ferry sip']);
        this.handler.onAppProxy(app, {
          rid,
          transactionId: tokens[2] ?? '',
          remainInDialog: tokens[3] === 'remainInDialog',
          fullResponse: tokens[4] === 'fullResponse',
          followRedirects: tokens[5] === 'followRedirects',
          simultaneous: tokens[6] === 'simultaneous',
          provisionalTimeout: tokens[7] ?? '',
          finalTimeout: tokens[8] ?? '',
          destinations: tokens.slice(9).filter(Boolean),
          raw: cr >= 0 && frame[cr + 1] === '\n' ? frame.slice(cr + 2) : '',
          tokens,
        });
        return;
      default:
        return app.respond(rid, ['NOK', `unknown message type ${kind}`]);
    }
  }

  async close(): Promise<void> {
    for (const a of this.apps) a.close();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
