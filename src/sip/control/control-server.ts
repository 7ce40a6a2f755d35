import net from 'node:net';
import type { Logger } from '../../common/logger';
import { AppConnection } from './app-connection';
import { ControlFrameDecoder } from './control-frame-decoder';
import { AppRouter } from './app-router';
import { guarded } from '../../common/process-faults';

export interface AppSipMessage {
  rid: string;
  transactionId: string;
  dialogId: string;
  proxy: string | undefined;
  raw: string;
}

/** What the engine does with app messages. */
export interface ControlHandler {
  onAppSip(app: AppConnection, msg: AppSipMessage): void;
  onAppClosed(app: AppConnection): void;
  /** The app now routes `verb` (lower case): requests held for such an app go to it. */
  onAppRoute?(app: AppConnection, verb: string): void;
}

export interface ControlServerOptions {
  secret: string;
  version: string;
  /** `udp/127.0.0.1:5060,tcp/127.0.0.1:5060,ws/127.0.0.1:8088` */
  hostports: () => string;
}

/**
 * The drachtio control port (research note §1.1-1.3): authenticate, route/remove_route, ping,
 * and `sip` messages handed to the engine. A malformed frame closes only that app's connection.
 */
export class ControlServer {
  readonly router = new AppRouter();
  private server: net.Server | undefined;
  private readonly apps = new Set<AppConnection>();
  private seq = 0;

  constructor(private readonly options: ControlServerOptions, private readonly handler: ControlHandler, private readonly log: Logger) {}

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
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    const app = new AppConnection(`app#${++this.seq}`, socket);
    this.apps.add(app);
    const decoder = new ControlFrameDecoder();
    socket.on('data', (chunk) => {
      const out = decoder.push(chunk);
      for (const f of out.frames) {
        try {
          this.onFrame(app, f);
        } catch (err) {
          this.log.warn('control message failed', { app: app.id, error: err instanceof Error ? err.message : String(err) });
        }
      }
      if (out.error) {
        this.log.info('bad control frame, closing app connection', { app: app.id, error: out.error });
        socket.destroy();
      }
    });
    socket.on('error', () => { /* close follows */ });
    socket.on('close', () => {
      app.closed = true;
      this.apps.delete(app);
      this.router.remove(app);
      if (app.authenticated) this.log.info('app disconnected', { app: app.id });
      this.handler.onAppClosed(app);
    });
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
        if (tokens[2] !== this.options.secret) {
          app.respond(rid, ['NO', 'incorrect secret']);
          this.log.info('app failed to authenticate', { app: app.id, remote: app.remote });
          setImmediate(guarded('sip.close-unauthenticated-app', () => app.close()));
          return;
        }
        app.authenticated = true;
        app.tags = (tokens[3] ?? '').split(',').filter(Boolean);
        this.router.add(app);
        const hp = this.options.hostports();
        app.respond(rid, ['OK', hp, this.options.version, hp]);
        this.log.info('app connected', { app: app.id, remote: app.remote });
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
        return app.respond(rid, ['NOK', 'proxy is not supported by ferry sip']);
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
