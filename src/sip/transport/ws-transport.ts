import http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Flow } from './flow';
import { StreamFlow } from './stream-flow';
import type { StreamTransportEvents } from './tcp-transport';

/**
 * SIP over WebSocket (RFC 7118): subprotocol `sip`, one SIP message per WS message.
 * A bare CRLF-CRLF message is a keep-alive (SIP.js) and is answered with CRLF.
 * Connections are only ever accepted, never opened (browsers cannot be dialled).
 */
export class WsTransport {
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly flows = new Map<string, { flow: StreamFlow; ws: WebSocket }>();
  private seq = 0;

  constructor(private readonly events: StreamTransportEvents) {}

  async listen(host: string, port: number): Promise<number> {
    const server = http.createServer((_req, res) => { res.writeHead(426); res.end('SIP over WebSocket only\n'); });
    const wss = new WebSocketServer({
      server,
      maxPayload: 1_048_576,
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
      // RFC 7118 §4: a client that does not offer the `sip` subprotocol is refused (the upgrade gets 401)
      verifyClient: (info: { req: http.IncomingMessage }) => /(^|,)\s*sip\s*(,|$)/i.test(String(info.req.headers['sec-websocket-protocol'] ?? '')),
    });
    wss.on('connection', (ws, req) => this.adopt(ws, req));
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

  private adopt(ws: WebSocket, req: http.IncomingMessage): void {
    const s = req.socket;
    const flow = new StreamFlow(`ws#${++this.seq}`, 'ws', s.remoteAddress ?? '', s.remotePort ?? 0, s.localAddress ?? '',
      s.localPort ?? 0, (d) => ws.send(d.toString('utf8')));
    this.flows.set(flow.id, { flow, ws });
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!isBinary && /^(\r\n)+$/.test(buf.toString('latin1'))) {
        if (buf.length >= 4) ws.send('\r\n');
        return;
      }
      this.events.onMessage(buf, flow);
    });
    ws.on('error', () => { /* close follows */ });
    ws.on('close', () => {
      flow.closed = true;
      this.flows.delete(flow.id);
      this.events.onClose(flow);
    });
  }

  async close(): Promise<void> {
    for (const { ws } of this.flows.values()) ws.terminate();
    this.wss?.close();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
