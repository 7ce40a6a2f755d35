import type { Flow } from '../transport/flow';
import { viaTransportName } from '../transport/flow';
import { newBranch } from './message-builders';

export interface EngineAddressing {
  host: string;
  sipPort(): number;
  wsPort(): number;
  /** SIP over TLS and secure WebSocket ports (0 when not listening) */
  tlsPort?(): number;
  wssPort?(): number;
}

/** What the engine writes about itself in Via, Contact and the drachtio meta tokens, per transport. */
export class LocalAddress {
  constructor(private readonly addressing: EngineAddressing) {}

  host(flow: Flow): string {
    const h = this.addressing.host;
    return h === '0.0.0.0' || h === '::' ? flow.localAddress : h;
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
