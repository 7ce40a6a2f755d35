/** The validated contents of the sip-config file: users, trunks (IP phones / PBX) and the dial plan. */
export type Transport = 'udp' | 'tcp';

export interface SipUser {
  /** user part of the AOR (`alice` in sip:alice@domain); also the digest username */
  user: string;
  password: string;
  displayName?: string;
}

export interface SipTrunk {
  name: string;
  /** where calls to this trunk are sent: host:port */
  address: string;
  transport: Transport;
  /** INVITEs arriving from these `host` or `host:port` sources (UDP/TCP only) are accepted without digest auth */
  acceptFrom: string[];
}

export type RouteTarget = { kind: 'user'; user?: string } | { kind: 'trunk'; trunk: string };

export interface SipRoute {
  match: RegExp;
  to: RouteTarget;
  /** replacement for the dialled number (`$1` etc. refer to the match's groups); default: unchanged */
  rewrite?: string;
}

export interface SipConfig {
  /** the digest realm and the host of the AORs */
  domain: string;
  users: SipUser[];
  trunks: SipTrunk[];
  routes: SipRoute[];
  /** registration expiry bounds in seconds */
  minExpires: number;
  maxExpires: number;
}
