import dgram from 'node:dgram';
import type { Flow } from './flow';

/** The UDP listener. Each remote address:port is a lightweight Flow object sharing the one socket. */
export class UdpTransport {
  private socket: dgram.Socket | undefined;

  constructor(private readonly onDatagram: (data: Buffer, flow: Flow) => void) {}

  async listen(host: string, port: number): Promise<number> {
    const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    this.socket = socket;
    socket.on('message', (data, rinfo) => this.onDatagram(data, this.flowTo(rinfo.address, rinfo.port)));
    socket.on('error', () => { /* ICMP errors on send surface here; never fatal */ });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => { socket.off('error', reject); resolve(); });
    });
    return socket.address().port;
  }

  flowTo(address: string, port: number): Flow {
    const socket = this.socket;
    if (!socket) throw new Error('UDP transport is not listening');
    const local = socket.address();
    return {
      id: `udp/${address}:${port}`,
      protocol: 'udp',
      reliable: false,
      remoteAddress: address,
      remotePort: port,
      localAddress: local.address,
      localPort: local.port,
      closed: false,
      send: (data: Buffer) => {
        try {
          socket.send(data, port, address);
        } catch { /* socket closed during shutdown */ }
      },
    };
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
