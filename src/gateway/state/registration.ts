/** One registered contact of a user, as stored by the registrar. */
export interface Registration {
  aor: string;
  user: string;
  /** the Contact URI exactly as the device sent it (requests to the device use it as R-URI) */
  contact: string;
  transport: 'udp' | 'tcp' | 'ws' | 'wss' | 'tls';
  /** where the REGISTER came from (ip:port) */
  source: string;
  /** true for browsers (SIP over WebSocket: their media is WebRTC) */
  webrtc: boolean;
  registeredAt: number;
  expiresAt: number;
  /** the gateway that took the REGISTER: the one that qualifies it (src/gateway/registrar/qualify.ts) */
  instanceId?: string;
  /**
   * true when the registrar found the binding reachable only over the connection it was registered over
   * (a WebSocket, or TCP/TLS from behind NAT with a private Contact): it goes when that connection does
   * (src/gateway/registrar/flow-binding.ts)
   */
  flowBound?: boolean;
  /**
   * set when the binding stopped answering the gateway's OPTIONS pings (qualify): calls skip it until a
   * ping is answered again or the device registers again (a new REGISTER writes the binding without it)
   */
  unreachableSince?: number;
}
