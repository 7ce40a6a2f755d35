import dns from 'node:dns/promises';
import net from 'node:net';
import { parseNameAddr } from '../message/name-addr';
import { parseSipUri } from '../message/sip-uri';
import type { FlowBindings } from '../registrar/flow-bindings';
import type { Flow } from '../transport/flow';
import type { TcpTransport } from '../transport/tcp-transport';
import type { TlsTransport } from '../transport/tls-transport';
import type { UdpTransport } from '../transport/udp-transport';

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
  ) {}

  async resolve(uriOrNameAddr: string): Promise<Flow> {
    // a Route value is <uri>;params, a Request-URI is a bare uri whose ;params belong to it
    const n = uriOrNameAddr.includes('<') ? parseNameAddr(uriOrNameAddr) : undefined;
    const text = n ? n.uri : uriOrNameAddr.trim();
    const bound = this.bindings.lookup(text);
    if (bound) return bound;
    const u = parseSipUri(text.startsWith('sip') ? text : `sip:${text}`);
    if (!u || u.scheme === 'tel') throw new Error(`cannot route to ${text}`);
    const host = u.host.replace(/^\[|\]$/g, '');
    if (host.toLowerCase().endsWith('.invalid')) throw new Error(`no connection for ${text}`);
    const transport = (u.params.get('transport') ?? 'udp')?.toLowerCase();
    if (transport === 'ws' || transport === 'wss') throw new Error(`no WebSocket connection for ${text}`);
    const secure = u.scheme === 'sips' || transport === 'tls';
    if (secure && !this.tls) throw new Error(`no TLS transport (FERRY_TLS_CERT/FERRY_TLS_KEY unset) for ${text}`);
    const address = net.isIP(host) ? host : host.toLowerCase() === 'localhost' ? '127.0.0.1' : (await dns.lookup(host, { family: 4 })).address;
    const port = u.port ?? (secure ? 5061 : 5060);
    if (secure && this.tls) return this.tls.connect(address, port, host);
    if (transport === 'tcp') return this.tcp.connect(address, port);
    return this.udp.flowTo(address, port);
  }
}
