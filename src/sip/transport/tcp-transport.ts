import net from 'node:net';
import type { Flow } from './flow';
import type { StreamFlow } from './stream-flow';
import type { ConnectionGuard } from './connection-guard';
import { serveSipByteStream, type StreamTransportEvents } from './stream-connection';

export type { StreamTransportEvents } from './stream-connection';

/**
 * SIP over TCP: listener plus outgoing connections, each framed by Content-Length, with the size limit,
 * read deadlines, idle close and connection caps of the shared ConnectionGuard (serveSipByteStream).
 */
export class TcpTransport {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly byRemote = new Map<string, StreamFlow>();
  private seq = 0;

  constructor(private readonly events: StreamTransportEvents, private readonly guard: ConnectionGuard) {}

  async listen(host: string, port: number): Promise<number> {
    const server = net.createServer((socket) => { this.adopt(socket, true); });
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
    const flow = this.adopt(socket, false);
    if (!flow) throw new Error(`connection to ${host}:${port} was refused by the connection limits`);
    return flow;
  }

  private adopt(socket: net.Socket, accepted: boolean): StreamFlow | undefined {
    const flow = serveSipByteStream(socket, { id: `tcp#${++this.seq}`, protocol: 'tcp', accepted, guard: this.guard, events: this.events });
    if (!flow) return undefined;
    this.sockets.add(socket);
    const key = `${flow.remoteAddress}:${flow.remotePort}`;
    this.byRemote.set(key, flow);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.byRemote.get(key) === flow) this.byRemote.delete(key);
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
