import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../common/logger';
import { guarded } from '../../common/process-faults';
import type { AppConnection } from './app-connection';
import type { ControlServer } from './control-server';

/** Why no app connection came of an attempt, and the SIP status the caller gets for it. */
export class OutboundFailure extends Error {
  constructor(message: string, readonly status: 480 | 503) {
    super(message);
  }
}

export interface OutboundConnectionLimits {
  connectTimeoutMs: number;
  authTimeoutMs: number;
  maxConnections: number;
  idleMs: number;
}

/**
 * Outbound connection mode's connections: one per new request, opened by ferry sip to an app listening with
 * `srf.listen()` (TCP, or TLS without checking the app's certificate, as drachtio-server does). The app
 * authenticates first (`authenticate|<secret>`); only then does the request go to it. Bounded: the connect
 * and the authentication each have a deadline (the caller then gets 480, as from drachtio-server), at most
 * `maxConnections` are open at once (beyond: 503), and a connection holding no dialog and no transaction
 * for `idleMs` is closed by ferry sip (the app may close it sooner: `srf.endSession()`).
 */
export class OutboundConnections {
  private readonly open = new Set<AppConnection>();
  private opening = 0;

  constructor(
    private readonly control: ControlServer,
    private readonly limits: OutboundConnectionLimits,
    private readonly log: Logger,
    /** true while the app connection holds a dialog or a transaction */
    private readonly inUse: (app: AppConnection) => boolean,
  ) {}

  /** outbound connections open or opening now */
  get size(): number {
    return this.open.size + this.opening;
  }

  /** Opens a connection to the app at host:port and resolves once it authenticated. */
  connect(host: string, port: number, transport: 'tcp' | 'tls'): Promise<AppConnection> {
    if (this.size >= this.limits.maxConnections) {
      return Promise.reject(new OutboundFailure(`outbound connection cap reached (${this.limits.maxConnections})`, 503));
    }
    this.opening++;
    let counted = true;
    const uncount = (): void => {
      if (counted) this.opening--;
      counted = false;
    };
    return new Promise<AppConnection>((resolve, reject) => {
      const socket = transport === 'tls'
        ? tls.connect({ host, port, rejectUnauthorized: false, servername: net.isIP(host) ? undefined : host })
        : net.connect({ host, port });
      const connectedEvent = transport === 'tls' ? 'secureConnect' : 'connect';
      const fail = (why: string): void => {
        uncount();
        socket.destroy();
        reject(new OutboundFailure(why, 480));
      };
      const timer = setTimeout(guarded('sip.outbound-connect-timeout', () => fail(`no connection to ${host}:${port} within ${this.limits.connectTimeoutMs} ms`)),
        this.limits.connectTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        fail(`cannot connect to ${host}:${port}: ${err.message}`);
      });
      socket.once(connectedEvent, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        let settled = false;
        const app = this.control.adoptOutbound(socket, {
          authTimeoutMs: this.limits.authTimeoutMs,
          onAuthenticated: (a) => {
            if (settled) return;
            settled = true;
            this.open.add(a);
            uncount();
            this.watchIdle(a);
            resolve(a);
          },
          onClosed: (a) => {
            this.open.delete(a);
            if (settled) return;
            settled = true;
            uncount();
            reject(new OutboundFailure(`the app at ${host}:${port} closed the connection without authenticating (wrong secret, or no authenticate within ${this.limits.authTimeoutMs} ms)`, 480));
          },
        });
        this.log.debug('outbound connection open, waiting for the app to authenticate', { app: app.id, remote: `${host}:${port}`, transport });
      });
    });
  }

  /** Closes `app` once it has held nothing at three looks half an idle period apart (idle for `idleMs` at least). */
  private watchIdle(app: AppConnection): void {
    let idleLooks = 0;
    const look = (): void => {
      if (app.closed) return;
      idleLooks = this.inUse(app) ? 0 : idleLooks + 1;
      if (idleLooks >= 3) {
        this.log.info('outbound connection idle: closed', { app: app.id, idleMs: this.limits.idleMs });
        app.close();
        return;
      }
      setTimeout(guarded('sip.outbound-idle-check', look), Math.max(1, Math.floor(this.limits.idleMs / 2))).unref();
    };
    look();
  }
}
