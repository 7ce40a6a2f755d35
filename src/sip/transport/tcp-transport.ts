import net from 'node:net';
import type { Flow } from './flow';
import type { ConnectionGuard } from './connection-guard';
import type { StreamTransportEvents } from './stream-connection';
import { StreamListener } from './stream-listener';
import { outgoingSocketUp } from './outgoing-connect';

export type { StreamTransportEvents } from './stream-connection';

/**
 * SIP over TCP: listener plus outgoing connections, each framed by Content-Length, with the size limit,
 * read deadlines, idle close and connection caps of the shared ConnectionGuard (serveSipByteStream).
 */
export class TcpTransport {
  private readonly streams: StreamListener;
  /** outgoing connections not up yet (destroyed on close) */
  private readonly connecting = new Set<net.Socket>();

  constructor(events: StreamTransportEvents, guard: ConnectionGuard) {
    this.streams = new StreamListener('tcp', events, guard);
  }

  listen(host: string, port: number): Promise<number> {
    return this.streams.listen(host, port, (socket) => { this.streams.serve(socket, true); });
  }

  /** An open connection to host:port (ours or the peer's), if there is one. */
  openTo(host: string, port: number): Flow | undefined {
    return this.streams.openTo(host, port);
  }

  /** An open connection to host:port (ours or the peer's), or a new one; `signal` gives up a new one still connecting. */
  async connect(host: string, port: number, signal?: AbortSignal): Promise<Flow> {
    const existing = this.streams.openTo(host, port);
    if (existing) return existing;
    const socket = net.connect({ host, port });
    await outgoingSocketUp(socket, 'connect', this.connecting, signal, `${host}:${port}`);
    const flow = this.streams.serve(socket, false);
    if (!flow) throw new Error(`connection to ${host}:${port} was refused by the connection limits`);
    return flow;
  }

  close(): Promise<void> {
    for (const socket of this.connecting) socket.destroy();
    this.connecting.clear();
    return this.streams.close();
  }
}
