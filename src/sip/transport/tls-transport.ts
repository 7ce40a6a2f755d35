import net from 'node:net';
import tls from 'node:tls';
import type { Flow } from './flow';
import type { ConnectionGuard } from './connection-guard';
import type { StreamTransportEvents } from './stream-connection';
import { StreamListener } from './stream-listener';
import { outgoingSocketUp } from './outgoing-connect';

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
  private readonly streams: StreamListener;
  private readonly context: tls.SecureContext;
  /** outgoing connections not up yet (destroyed on close) */
  private readonly connecting = new Set<net.Socket>();

  constructor(events: StreamTransportEvents, private readonly guard: ConnectionGuard, private readonly options: TlsTransportOptions) {
    this.streams = new StreamListener('tls', events, guard);
    this.context = tls.createSecureContext({ cert: options.cert, key: options.key });
  }

  listen(host: string, port: number): Promise<number> {
    return this.streams.listen(host, port, (raw) => this.accept(raw));
  }

  /** An open TLS connection to host:port, if there is one. */
  openTo(host: string, port: number): Flow | undefined {
    return this.streams.openTo(host, port);
  }

  /**
   * An open TLS connection to host:port, or a new one (the peer's certificate verified unless configured
   * off); `signal` gives up a new one still connecting or in its handshake.
   */
  async connect(host: string, port: number, serverName?: string, signal?: AbortSignal): Promise<Flow> {
    const existing = this.streams.openTo(host, port);
    if (existing) return existing;
    const name = serverName ?? host;
    const socket = tls.connect({
      host,
      port,
      ...(net.isIP(name) ? {} : { servername: name }),
      ...(this.options.ca ? { ca: [...tls.rootCertificates, ...this.options.ca.map((b) => b.toString('latin1'))] } : {}),
      rejectUnauthorized: this.options.verifyPeer ?? true,
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(name, cert),
    });
    await outgoingSocketUp(socket, 'secureConnect', this.connecting, signal, `${host}:${port}`);
    const flow = this.streams.serve(socket, false);
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
    this.streams.hold(raw);
    raw.once('close', () => { watch.closed(); });
    raw.on('error', () => { /* close follows */ });
    secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.context, requestCert: false });
    const s = secure;
    s.on('error', () => { s.destroy(); raw.destroy(); });
    s.once('secure', () => { this.streams.serve(s, true, watch); });
  }

  close(): Promise<void> {
    for (const socket of this.connecting) socket.destroy();
    this.connecting.clear();
    return this.streams.close();
  }
}
