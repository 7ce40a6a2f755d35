/**
 * ferry sip in process on 127.0.0.1 with an app (the npm drachtio-srf) that answers every OPTIONS 200 at once,
 * and WebSocket clients (the `ws` client offering the `sip` subprotocol) that record what they are sent and
 * when they were closed: the parts of the tests of what keeps a SIP connection over WebSocket open.
 */
import WebSocket from 'ws';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import type { ConnectionLimits } from '../../src/sip/transport/connection-limits';
import { connectBareSrf, routesApplied } from './srf-app';
import { sipToken } from './sip-udp-phone';

/** a WebSocket client connection: its socket, the messages it got, and when it was closed */
export interface WsSipConnection { ws: WebSocket; got: string[]; closedAt?: number }

export class SipWsOptionsWorld {
  engine!: RunningSipEngine;
  private srf: any;
  /** intervals a test starts; cleared by close() */
  readonly timers: NodeJS.Timeout[] = [];
  private readonly sockets: WebSocket[] = [];

  /** Starts ferry sip with these connection limits and the app answering OPTIONS; returns the engine. */
  async start(connectionLimits: Partial<ConnectionLimits>): Promise<RunningSipEngine> {
    this.engine = await startSipEngine({ host: '127.0.0.1', connectionLimits });
    this.srf = await connectBareSrf(this.engine.ports.control);
    this.srf.options((_req: any, res: any) => res.send(200));
    await routesApplied(this.srf);
    return this.engine;
  }

  async close(): Promise<void> {
    this.timers.forEach((t) => clearInterval(t));
    this.sockets.forEach((s) => s.terminate());
    try { this.srf.disconnect(); } catch { /* gone */ }
    await this.engine.close();
  }

  /** Opens a WebSocket connection to ferry sip's WS port, recording what it is sent and when it closes. */
  async open(): Promise<WsSipConnection> {
    const ws = new WebSocket(`ws://127.0.0.1:${this.engine.ports.ws}`, 'sip');
    this.sockets.push(ws);
    const conn: WsSipConnection = { ws, got: [] };
    ws.on('message', (d) => conn.got.push(d.toString()));
    ws.on('close', () => { conn.closedAt = Date.now(); });
    ws.on('error', () => { /* the close above says it */ });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    return conn;
  }
}

/** an OPTIONS over WebSocket with fresh branch, tag and Call-ID */
export const wsOptionsRequest = (): string => ['OPTIONS sip:service@127.0.0.1 SIP/2.0', `Via: SIP/2.0/WS ${sipToken()}.invalid;branch=z9hG4bK${sipToken()}`,
  'Max-Forwards: 70', `From: <sip:ws@example.invalid>;tag=${sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${sipToken()}`, 'CSeq: 1 OPTIONS',
  'Content-Length: 0', '', ''].join('\r\n');
