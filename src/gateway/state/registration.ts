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
  instanceId?: string;
}
