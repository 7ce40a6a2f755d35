/**
 * A SIP server stub for target-resolution tests: listens on one address and port over UDP or TCP (IPv4 or
 * IPv6), answers every request except ACK with a fixed status (To tag added), and records what arrived
 * (method, branch, transport), so a test can tell which of several targets a request went to.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { freePort } from './free-port';

export interface ArrivedRequest {
  method: string;
  branch: string;
  callId: string;
  at: number;
}

export class SipAnsweringPeer {
  readonly arrived: ArrivedRequest[] = [];
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(readonly address: string, readonly port: number, readonly transport: 'udp' | 'tcp', readonly status: number) {}

  /** Listens on `address` (127.0.0.x or ::1) and `port` (a free one when absent). */
  static async start(options: { address: string; transport: 'udp' | 'tcp'; status?: number; port?: number }): Promise<SipAnsweringPeer> {
    const port = options.port ?? await freePort({ protocols: [options.transport], ...(net.isIPv6(options.address) ? {} : { host: options.address }) });
    const peer = new SipAnsweringPeer(options.address, port, options.transport, options.status ?? 200);
    await peer.listen();
    return peer;
  }

  requests(method: string): ArrivedRequest[] {
    return this.arrived.filter((r) => r.method === method);
  }

  private async listen(): Promise<void> {
    if (this.transport === 'udp') {
      const s = dgram.createSocket(net.isIPv6(this.address) ? 'udp6' : 'udp4');
      this.udp = s;
      s.on('message', (msg, rinfo) => {
        const answer = this.onMessage(msg.toString('latin1'), 'UDP');
        if (answer) s.send(answer, rinfo.port, rinfo.address);
      });
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(this.port, this.address, () => resolve()); });
      return;
    }
    const server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(buf.slice(0, end + 2))?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const text = buf.slice(0, end + 4 + len);
          buf = buf.slice(end + 4 + len);
          const answer = this.onMessage(text, 'TCP');
          if (answer) sock.write(answer);
        }
      });
    });
    this.tcp = server;
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.port, this.address, () => resolve()); });
  }

  private onMessage(text: string, transport: string): Buffer | undefined {
    const lines = text.split('\r\n');
    const m = /^([A-Z]+) \S+ SIP\/2\.0$/.exec(lines[0] ?? '');
    if (!m) return undefined;
    const header = (name: string): string[] => lines.filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`)).map((l) => l.slice(l.indexOf(':') + 1).trim());
    const via = header('Via');
    const callId = header('Call-ID')[0] ?? '';
    this.arrived.push({ method: m[1]!, branch: /branch=([^;,\s]+)/.exec(via[0] ?? '')?.[1] ?? '', callId, at: Date.now() });
    if (m[1] === 'ACK') return undefined;
    if (!new RegExp(`SIP/2\\.0/${transport} `, 'i').test(via[0] ?? '')) return undefined;
    const reason = this.status === 200 ? 'OK' : this.status === 503 ? 'Service Unavailable' : 'Whatever';
    const to = header('To')[0] ?? '';
    const out = [`SIP/2.0 ${this.status} ${reason}`, ...via.map((v) => `Via: ${v}`), `From: ${header('From')[0] ?? ''}`,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=peer${this.port}`}`, `Call-ID: ${callId}`, `CSeq: ${header('CSeq')[0] ?? ''}`, 'Content-Length: 0', '', ''];
    return Buffer.from(out.join('\r\n'), 'latin1');
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      this.udp ? new Promise<void>((resolve) => this.udp!.close(() => resolve())) : undefined,
      this.tcp ? new Promise<void>((resolve) => this.tcp!.close(() => resolve())) : undefined,
    ]);
  }
}
