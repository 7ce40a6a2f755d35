import net from 'node:net';

/**
 * A loopback TCP relay in front of a server, whose connections a test can cut at will (the
 * control connection between a proxy and ferry media dropping, without either process dying),
 * and which can refuse new connections for a while (`refuse(true)`: each is closed at once).
 */
export class TcpCutter {
  private refusing = false;

  private constructor(
    private readonly server: net.Server,
    private readonly sockets: Set<net.Socket>,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpCutter> {
    const sockets = new Set<net.Socket>();
    const gate = { refusing: () => false };
    const server = net.createServer((inbound) => {
      if (gate.refusing()) {
        inbound.destroy();
        return;
      }
      const outbound = net.connect(targetPort, targetHost);
      sockets.add(inbound);
      sockets.add(outbound);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      const done = () => {
        inbound.destroy();
        outbound.destroy();
        sockets.delete(inbound);
        sockets.delete(outbound);
      };
      inbound.on('error', done).on('close', done);
      outbound.on('error', done).on('close', done);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const cutter = new TcpCutter(server, sockets, (server.address() as net.AddressInfo).port);
    gate.refusing = () => cutter.refusing;
    return cutter;
  }

  /** While on, every new connection is closed as soon as it is accepted (the server looks unreachable). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** Drop every relayed connection (both directions see a close). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
