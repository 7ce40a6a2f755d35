import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TimerHandle } from '../../common/clock';
import type { ConnectionGuard, ConnectionWatch } from './connection-guard';
import type { Flow } from './flow';
import { StreamFlow } from './stream-flow';
import { maxUnsentBytes, readWhileDrained, type StreamTransportEvents } from './stream-connection';

interface WsConnection {
  flow: StreamFlow;
  ws: WebSocket;
  watch: ConnectionWatch;
  /** answered the last ping */
  alive: boolean;
}

/**
 * SIP over WebSocket (RFC 7118): subprotocol `sip`, one SIP message per WS message; with a certificate,
 * the same over TLS (WSS, flows `wss#n`, `Via: SIP/2.0/WSS`).
 * A bare CRLF-CRLF message is a keep-alive (SIP.js) and is answered with CRLF.
 * Connections are only ever accepted, never opened (browsers cannot be dialled).
 * Hygiene (ConnectionGuard): every TCP connection is admitted against the caps before its HTTP upgrade,
 * which must complete within the header timeout; a WebSocket message may not exceed the message size
 * limit (`maxPayload`, close 1009); a message, whatever frames it is split into, must complete within the
 * header timeout of its first byte (pings and pongs between its fragments do not extend it);
 * every connection is pinged and closed when it has not answered the previous ping; the idle close
 * applies as on TCP.
 */
export class WsTransport {
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly flows = new Map<string, WsConnection>();
  /** watches of accepted TCP connections not upgraded yet, by remote address|port (a WSS request's socket is the TLS one) */
  private readonly handshaking = new Map<string, { socket: net.Socket; watch: ConnectionWatch }>();
  private pinger: TimerHandle | undefined;
  private seq = 0;

  /**
   * `tls` given: secure WebSocket (WSS, flows named `wss`); the TLS handshake and the HTTP upgrade together
   * must finish within the header timeout.
   */
  constructor(
    private readonly events: StreamTransportEvents,
    private readonly guard: ConnectionGuard,
    private readonly tls?: { cert: Buffer; key: Buffer },
  ) {}

  private get protocol(): 'ws' | 'wss' {
    return this.tls ? 'wss' : 'ws';
  }

  async listen(host: string, port: number): Promise<number> {
    const notWs = (_req: http.IncomingMessage, res: http.ServerResponse): void => { res.writeHead(426); res.end('SIP over WebSocket only\n'); };
    const server = this.tls ? https.createServer({ cert: this.tls.cert, key: this.tls.key }, notWs) : http.createServer(notWs);
    const wss = new WebSocketServer({
      server,
      maxPayload: this.guard.limits.maxMessageBytes,
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
      // RFC 7118 §4: a client that does not offer the `sip` subprotocol is refused (the upgrade gets 401)
      verifyClient: (info: { req: http.IncomingMessage }) => /(^|,)\s*sip\s*(,|$)/i.test(String(info.req.headers['sec-websocket-protocol'] ?? '')),
    });
    server.on('connection', (socket: net.Socket) => this.admit(socket));
    wss.on('connection', (ws, req) => this.adopt(ws, req));
    this.pinger = this.guard.clock.setInterval(() => this.pingAll(), this.guard.limits.wsPingIntervalMs);
    this.server = server;
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return (server.address() as import('node:net').AddressInfo).port;
  }

  get(flowId: string): Flow | undefined {
    return this.flows.get(flowId)?.flow;
  }

  /** A TCP connection before its upgrade: counted against the caps, its handshake on the header deadline. */
  private admit(socket: net.Socket): void {
    const watch = this.guard.admit({ address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, protocol: this.protocol }, () => socket.destroy());
    if (!watch) {
      socket.destroy();
      return;
    }
    const key = remoteKey(socket);
    this.handshaking.set(key, { socket, watch });
    watch.reading('headers', 0);
    socket.once('close', () => {
      if (this.handshaking.get(key)?.socket === socket) this.handshaking.delete(key);
      watch.closed();
    });
  }

  private adopt(ws: WebSocket, req: http.IncomingMessage): void {
    const s = req.socket;
    const watch = this.handshaking.get(remoteKey(s))?.watch;
    this.handshaking.delete(remoteKey(s));
    if (!watch) {
      ws.terminate();
      return;
    }
    // a peer that does not read its answers: stop reading its frames until it has (stream-connection.ts)
    const backpressure = readWhileDrained(s, maxUnsentBytes(this.guard.limits.maxMessageBytes), () => ws.pause(), () => ws.resume());
    const flow = new StreamFlow(`${this.protocol}#${++this.seq}`, this.protocol, s.remoteAddress ?? '', s.remotePort ?? 0, s.localAddress ?? '',
      s.localPort ?? 0, (d) => {
        ws.send(d.toString('utf8'));
        backpressure();
      });
    const conn: WsConnection = { flow, ws, watch, alive: true };
    this.flows.set(flow.id, conn);
    watch.attach(flow);
    watch.reading('none', 1); // the handshake is done: it counts as traffic for the idle clock
    // runs before the WebSocket parser: the first bytes of a frame start its deadline, a whole frame ends it
    s.prependListener('data', () => watch.reading('headers', 0));
    // a ping or pong is not a SIP message: it ends no deadline while a message is half-read (a fragment
    // received, or part of a frame), else it clears the one its own bytes started
    const control = (): void => watch.reading(messagePending(ws) ? 'headers' : 'none', 0);
    ws.on('pong', () => {
      conn.alive = true;
      control();
    });
    ws.on('ping', control);
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!isBinary && /^(\r\n)+$/.test(buf.toString('latin1'))) {
        // a keep-alive is not a SIP message: it does not hold an unused connection open past the idle timeout
        watch.reading(messagePending(ws) ? 'headers' : 'none', 0);
        if (buf.length >= 4) ws.send('\r\n');
        return;
      }
      // the same read may hold the start of the next message: its deadline starts now
      watch.reading(messagePending(ws) ? 'headers' : 'none', 1);
      this.events.onMessage(buf, flow);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // the ws library closes the connection itself (1009 for a message above maxPayload, 1002 for bad framing)
      watch.violation(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'message-too-large' : 'bad-framing', err.message);
    });
    ws.on('close', () => {
      flow.closed = true;
      this.flows.delete(flow.id);
      watch.closed();
      this.events.onClose(flow);
    });
  }

  /** Closes the connections that did not answer the previous ping, pings the others. */
  private pingAll(): void {
    for (const conn of this.flows.values()) {
      if (!conn.alive) {
        conn.watch.violation('no-pong', `no pong within ${this.guard.limits.wsPingIntervalMs} ms`);
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch { /* closing: the close handler cleans up */ }
    }
  }

  async close(): Promise<void> {
    this.pinger?.cancel();
    this.pinger = undefined;
    for (const { ws } of this.flows.values()) ws.terminate();
    for (const { socket } of this.handshaking.values()) socket.destroy();
    this.wss?.close();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * True while the connection's WebSocket parser holds part of a message: the fragments of a message whose
 * last fragment has not come, or bytes of a frame not parsed yet (the `ws` receiver's own state; a ping
 * or pong is handled between frames, so these are the bytes of data frames). Read through the socket's
 * receiver, as `ws` keeps no public record of it; a receiver without these fields reads as nothing pending.
 */
function messagePending(ws: WebSocket): boolean {
  const receiver = (ws as unknown as { _receiver?: { _fragmented?: unknown; _bufferedBytes?: unknown } })._receiver;
  if (!receiver) return false;
  return (typeof receiver._fragmented === 'number' && receiver._fragmented !== 0)
    || (typeof receiver._bufferedBytes === 'number' && receiver._bufferedBytes > 0);
}

/** one TCP connection: the raw socket and the TLS socket over it answer the same */
function remoteKey(socket: net.Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
}
