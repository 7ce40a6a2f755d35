import net from 'node:net';
import tls from 'node:tls';
import type { Flow } from './flow';
import type { StreamFlow } from './stream-flow';
import type { ConnectionGuard } from './connection-guard';
import { serveSipByteStream, type StreamTransportEvents } from './stream-connection';

export interface TlsTransportOptions {
  /** the server certificate chain and key (PEM) */
  cert: Buffer;
  key: Buffer;
  /** extra CAs trusted for connections ferry sip opens (added to Node's built-in list) */
  ca?: Buffer[];
  /** verify the certificate of a phone or trunk ferry sip connects to (default true) */
  verifyPeer?: boolean;
}

/**
 * SIP over TLS (RFC 3261 §26.3.1, `transport=tls`): a listener plus outgoing connections. Each accepted TCP
 * connection is admitted by the ConnectionGuard before its handshake, which must finish within the header
 * timeout; the decrypted stream is then served like TCP (serveSipByteStream: Content-Length framing, size
 * limit, read deadlines, idle close). Clients are not asked for a certificate: they authenticate by digest.
 */
export class TlsTransport {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly byRemote = new Map<string, StreamFlow>();
  private readonly context: tls.SecureContext;
  private seq = 0;

  constructor(private readonly events: StreamTransportEvents, private readonly guard: ConnectionGuard, private readonly options: TlsTransportOptions) {
    this.context = tls.createSecureContext({ cert: options.cert, key: options.key });
  }

  async listen(host: string, port: number): Promise<number> {
    const server = net.createServer((raw) => this.accept(raw));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return (server.address() as net.AddressInfo).port;
  }

  /** An open TLS connection to host:port, or a new one (the peer's certificate verified unless configured off). */
  async connect(host: string, port: number, serverName?: string): Promise<Flow> {
    const existing = this.byRemote.get(`${host}:${port}`);
    if (existing && !existing.closed) return existing;
    const name = serverName ?? host;
    const socket = tls.connect({
      host,
      port,
      ...(net.isIP(name) ? {} : { servername: name }),
      ...(this.options.ca ? { ca: [...tls.rootCertificates, ...this.options.ca.map((b) => b.toString('latin1'))] } : {}),
      rejectUnauthorized: this.options.verifyPeer ?? true,
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(name, cert),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('secureConnect', () => { socket.off('error', reject); resolve(); });
    });
    const flow = this.serve(socket, false);
    if (!flow) throw new Error(`TLS connection to ${host}:${port} was refused by the connection limits`);
    return flow;
  }

  private accept(raw: net.Socket): void {
    const peer = { address: raw.remoteAddress ?? '', port: raw.remotePort ?? 0, protocol: 'tls' };
    let secure: tls.TLSSocket | undefined;
    const watch = this.guard.admit(peer, () => { (secure ?? raw).destroy(); });
    if (!watch) {
      raw.destroy();
      return;
    }
    watch.reading('headers', 0); // the handshake runs on the header deadline
    this.sockets.add(raw);
    raw.once('close', () => {
      this.sockets.delete(raw);
      watch.closed();
    });
    raw.on('error', () => { /* close follows */ });
    secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.context, requestCert: false });
    const s = secure;
    s.on('error', () => { s.destroy(); raw.destroy(); });
    s.once('secure', () => { this.serve(s, true, watch); });
  }

  private serve(socket: tls.TLSSocket, accepted: boolean, watch?: import('./connection-guard').ConnectionWatch): StreamFlow | undefined {
    const flow = serveSipByteStream(socket, { id: `tls#${++this.seq}`, protocol: 'tls', accepted, guard: this.guard, events: this.events, ...(watch ? { watch } : {}) });
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
