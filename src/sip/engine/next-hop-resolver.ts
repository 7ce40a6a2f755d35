import dns from 'node:dns/promises';
import net from 'node:net';
import { parseNameAddr } from '../message/name-addr';
import { parseSipUri } from '../message/sip-uri';
import type { FlowBindings } from '../registrar/flow-bindings';
import { ConnectingFlow } from '../transport/connecting-flow';
import type { Flow, SipProtocol } from '../transport/flow';
import type { TcpTransport } from '../transport/tcp-transport';
import type { TlsTransport } from '../transport/tls-transport';
import type { UdpTransport } from '../transport/udp-transport';

/**
 * The next hop of a new request cannot be reached: drachtio-server accepts such a request (the app is
 * told it was sent) and its SIP stack then answers it with a final response of its own, which the app
 * gets like any response: `410 Gone` when the registered connection it was bound to has closed, `503`
 * when nothing can carry it (no connection for a `.invalid` or WebSocket Contact, a name that does not
 * resolve, a TCP or TLS connection refused), `408` when a TCP or TLS connection is not up within
 * 64·T1 (Timer B: sofia-sip's transaction times out while its transport still connects). Other
 * refusals (an unroutable URI, no TLS configured) stay a `NOK` answer, as in drachtio-server.
 * A new request from an app does not wait for its connection (`nextHop`): the refusal and the 408 reach
 * it through its transaction; requests that must have a connection first (`resolve`) get this error.
 */
export class UnreachableTargetError extends Error {
  constructor(readonly status: 408 | 410 | 503, message: string, readonly protocol: SipProtocol, readonly host: string, readonly port: number) {
    super(message);
    this.name = 'UnreachableTargetError';
  }
}

/**
 * Picks the Flow for a request to a URI (RFC 3263 without SRV/NAPTR: IP or A record, default port 5060,
 * 5061 for TLS). `transport=tls` or a `sips:` URI goes over TLS, the peer's certificate checked against
 * the URI's host.
 * A Contact bound by a REGISTER over a connection wins; `.invalid` hosts are never resolved.
 */
export class NextHopResolver {
  constructor(
    private readonly udp: UdpTransport,
    private readonly tcp: TcpTransport,
    private readonly bindings: FlowBindings,
    /** absent when ferry sip has no certificate (then TLS targets cannot be reached) */
    private readonly tls?: TlsTransport,
    /** the engine's clock (when a lost binding's registration lapses) */
    private readonly now: () => number = Date.now,
    /** how long a new TCP or TLS connection may take (64·T1) */
    private readonly connectTimeoutMs = 32_000,
  ) {}

  /**
   * The flow for a request to a URI, its connection up: waits for a new TCP or TLS connection at most
   * 64·T1 (then 408; refused: 503). A connection that comes up after that is not kept.
   */
  async resolve(uriOrNameAddr: string): Promise<Flow> {
    const flow = await this.nextHop(uriOrNameAddr);
    if (!(flow instanceof ConnectingFlow)) return flow;
    const what = `${flow.protocol.toUpperCase()} connection to ${flow.remoteAddress}:${flow.remotePort}`;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        flow.drop();
        reject(new UnreachableTargetError(408, `no ${what} within ${this.connectTimeoutMs} ms`, flow.protocol, flow.remoteAddress, flow.remotePort));
      }, this.connectTimeoutMs);
    });
    try {
      return await Promise.race([flow.ready, deadline]);
    } catch (err) {
      if (err instanceof UnreachableTargetError) throw err;
      throw new UnreachableTargetError(503, `no ${what}: ${(err as Error).message}`, flow.protocol, flow.remoteAddress, flow.remotePort);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The flow for a new request to a URI, without waiting for a connection: an open flow, or a
   * ConnectingFlow that holds what is sent on it until its TCP or TLS connection is up (whoever uses it
   * handles `ready` failing and drops it when giving up). Names are still resolved first.
   */
  async nextHop(uriOrNameAddr: string): Promise<Flow> {
    // a Route value is <uri>;params, a Request-URI is a bare uri whose ;params belong to it
    const n = uriOrNameAddr.includes('<') ? parseNameAddr(uriOrNameAddr) : undefined;
    const text = n ? n.uri : uriOrNameAddr.trim();
    const bound = this.bindings.lookup(text);
    if (bound) return bound;
    const u = parseSipUri(text.startsWith('sip') ? text : `sip:${text}`);
    if (!u || u.scheme === 'tel') throw new Error(`cannot route to ${text}`);
    const host = u.host.replace(/^\[|\]$/g, '');
    const transport = (u.params.get('transport') ?? 'udp')?.toLowerCase();
    const secure = u.scheme === 'sips' || transport === 'tls' || transport === 'wss';
    const protocol: SipProtocol = transport === 'ws' || transport === 'wss' || transport === 'tcp' ? transport : secure ? 'tls' : 'udp';
    const port = u.port ?? (secure ? 5061 : 5060);
    const unreachable = (why: string): UnreachableTargetError =>
      this.bindings.wasLost(text, this.now())
        ? new UnreachableTargetError(410, `the connection ${text} registered over has closed`, protocol, host, port)
        : new UnreachableTargetError(503, why, protocol, host, port);
    if (host.toLowerCase().endsWith('.invalid')) throw unreachable(`no connection for ${text}`);
    if (transport === 'ws' || transport === 'wss') throw unreachable(`no WebSocket connection for ${text}`);
    if (secure && !this.tls) throw new Error(`no TLS transport (FERRY_TLS_CERT/FERRY_TLS_KEY unset) for ${text}`);
    let address: string;
    try {
      address = net.isIP(host) ? host : host.toLowerCase() === 'localhost' ? '127.0.0.1' : (await dns.lookup(host, { family: 4 })).address;
    } catch (err) {
      throw new UnreachableTargetError(503, `${host} does not resolve: ${(err as Error).message}`, protocol, host, port);
    }
    if (secure && this.tls) {
      const tls = this.tls;
      return tls.openTo(address, port) ?? new ConnectingFlow('tls', address, port, (signal) => tls.connect(address, port, host, signal));
    }
    if (transport === 'tcp') return this.tcp.openTo(address, port) ?? new ConnectingFlow('tcp', address, port, (signal) => this.tcp.connect(address, port, signal));
    return this.udp.flowTo(address, port);
  }
}
