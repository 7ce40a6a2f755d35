import type { Flow } from '../transport/flow';
import { viaTransportName } from '../transport/flow';
import { newBranch } from './message-builders';
import { isLoopbackHost } from '../dialog/dialog-flow';

export interface EngineAddressing {
  host: string;
  /**
   * The address written for a peer on IPv6 when `host` (an IPv4 address) cannot be: ferry sip listens on
   * the dual-stack wildcard `::` with no advertised host, and `host` is the first external IPv4 address.
   */
  ipv6HostFor?: (peer: string) => string;
  sipPort(): number;
  wsPort(): number;
  /** SIP over TLS and secure WebSocket ports (0 when not listening) */
  tlsPort?(): number;
  wssPort?(): number;
}

/** What the engine writes about itself in Via, Contact and the drachtio meta tokens, per transport. */
export class LocalAddress {
  constructor(private readonly addressing: EngineAddressing) {}

  /** The host part of our URIs and Via for `flow`: an IPv6 literal in brackets (RFC 3261 §25.1). */
  host(flow: Flow): string {
    const h = this.addressing.host;
    const v6 = this.addressing.ipv6HostFor;
    if (h === '0.0.0.0' || h === '::') return uriHost(flow.localAddress);
    if (v6 !== undefined && isIpv6Peer(flow.remoteAddress)) return uriHost(v6(flow.remoteAddress));
    return uriHost(h);
  }

  /** True when ferry sip listens on a loopback address only: every peer is on this host. */
  loopbackOnly(): boolean {
    return isLoopbackHost(this.addressing.host);
  }

  port(flow: Flow): number {
    switch (flow.protocol) {
      case 'ws': return this.addressing.wsPort();
      case 'wss': return this.addressing.wssPort?.() ?? 0;
      case 'tls': return this.addressing.tlsPort?.() ?? 0;
      default: return this.addressing.sipPort();
    }
  }

  /** `;transport=tls` on a `sip:` URI, as drachtio-server writes it for a TLS connection (not a `sips:` URI). */
  contact(flow: Flow): string {
    const t = flow.protocol === 'udp' ? '' : `;transport=${flow.protocol}`;
    return `<sip:${this.host(flow)}:${this.port(flow)}${t}>`;
  }

  /** A fresh top Via for a request we send over `flow` (RFC 3261 §8.1.1.7, RFC 3581 rport). */
  via(flow: Flow): string {
    return `SIP/2.0/${viaTransportName(flow.protocol)} ${this.host(flow)}:${this.port(flow)};rport;branch=${newBranch()}`;
  }
}

/** `[::1]` for an IPv6 literal (already bracketed or not), anything else as it is. */
export function uriHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** A peer on IPv6 proper (not an IPv4 address mapped into a dual-stack socket, `::ffff:1.2.3.4`). */
function isIpv6Peer(address: string): boolean {
  return address.includes(':') && !/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address);
}
