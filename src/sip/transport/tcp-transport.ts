import net from 'node:net';
import type { Flow } from './flow';
import { StreamFlow } from './stream-flow';
import { SipStreamFramer } from '../message/sip-stream-framer';

export interface StreamTransportEvents {
  onMessage(data: Buffer, flow: Flow): void;
  onClose(flow: Flow): void;
}

/** SIP over TCP: listener plus outgoing connections, each framed by Content-Length. */
export class TcpTransport {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly byRemote = new Map<string, StreamFlow>();
  private seq = 0;

  constructor(private readonly events: StreamTransportEvents) {}

  async listen(host: string, port: number): Promise<number> {
    const server = net.createServer((socket) => this.adopt(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return (server.address() as net.AddressInfo).port;
  }

  /** An open connection to host:port (ours or the peer's), or a new one. */
  async connect(host: string, port: number): Promise<Flow> {
    const existing = this.byRemote.get(`${host}:${port}`);
    if (existing && !existing.closed) return existing;
    const socket = net.connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => { socket.off('error', reject); resolve(); });
    });
    return this.adopt(socket);
  }

  private adopt(socket: net.Socket): StreamFlow {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    const flow = new StreamFlow(`tcp#${++this.seq}`, 'tcp', socket.remoteAddress ?? '', socket.remotePort ?? 0,
      socket.localAddress ?? '', socket.localPort ?? 0, (d) => { socket.write(d); });
    this.byRemote.set(`${flow.remoteAddress}:${flow.remotePort}`, flow);
    const framer = new SipStreamFramer();
    socket.on('data', (chunk) => {
      const out = framer.push(chunk);
      if (out.pings > 0) socket.write('\r\n');
      for (const m of out.messages) this.events.onMessage(m, flow);
      if (out.error) socket.destroy();
    });
    socket.on('error', () => { /* close follows */ });
    socket.on('close', () => {
      flow.closed = true;
      this.sockets.delete(socket);
      if (this.byRemote.get(`${flow.remoteAddress}:${flow.remotePort}`) === flow) this.byRemote.delete(`${flow.remoteAddress}:${flow.remotePort}`);
      this.events.onClose(flow);
    });
    return flow;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
