/** How a SIP message travels: one UDP peer address, or one TCP, TLS, WebSocket or secure WebSocket connection. */
export type SipProtocol = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

export interface Flow {
  /** stable id: `udp/1.2.3.4:5060` for UDP, `tcp#7` / `ws#3` for connections */
  readonly id: string;
  readonly protocol: SipProtocol;
  readonly reliable: boolean;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly closed: boolean;
  send(data: Buffer): void;
}

/** Where a request should go when no connection is known yet. */
export interface SipTarget {
  protocol: SipProtocol;
  host: string;
  port: number;
}

export function viaTransportName(p: SipProtocol): string {
  return p.toUpperCase();
}

/** A byte stream framed by Content-Length (TCP, TLS), as opposed to datagrams and WebSocket messages. */
export function isByteStream(p: SipProtocol): boolean {
  return p === 'tcp' || p === 'tls';
}
