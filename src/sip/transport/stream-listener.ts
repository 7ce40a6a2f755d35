import net from 'node:net';
import type { StreamFlow } from './stream-flow';
import type { ConnectionGuard, ConnectionWatch } from './connection-guard';
import { serveSipByteStream, type StreamTransportEvents } from './stream-connection';

/**
 * The listener and connection bookkeeping every byte-stream transport (TCP, TLS) shares: the listening
 * server, the open sockets (destroyed on close), and the served connections by remote `host:port` so an
 * outgoing request reuses an open one. How a socket becomes a SIP stream (a TLS handshake first, or not)
 * stays with the transport.
 */
export class StreamListener {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly byRemote = new Map<string, StreamFlow>();
  private seq = 0;

  constructor(
    private readonly protocol: 'tcp' | 'tls',
    private readonly events: StreamTransportEvents,
    private readonly guard: ConnectionGuard,
  ) {}

  /** Listens on host:port, handing each accepted TCP connection to `onConnection`; resolves the bound port. */
  async listen(host: string, port: number, onConnection: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer(onConnection);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return (server.address() as net.AddressInfo).port;
  }

  /** The open connection to host:port, if there is one. */
  openTo(host: string, port: number): StreamFlow | undefined {
    const existing = this.byRemote.get(`${host}:${port}`);
    return existing && !existing.closed ? existing : undefined;
  }

  /** Keeps `socket` until it closes, so close() destroys it. */
  hold(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => { this.sockets.delete(socket); });
  }

  /** Serves SIP on `socket` (serveSipByteStream) and remembers it by its remote address; undefined when refused. */
  serve(socket: net.Socket, accepted: boolean, watch?: ConnectionWatch): StreamFlow | undefined {
    const flow = serveSipByteStream(socket, {
      id: `${this.protocol}#${++this.seq}`, protocol: this.protocol, accepted, guard: this.guard, events: this.events, ...(watch ? { watch } : {}),
    });
    if (!flow) return undefined;
    this.hold(socket);
    const key = `${flow.remoteAddress}:${flow.remotePort}`;
    this.byRemote.set(key, flow);
    socket.on('close', () => {
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
