import { WebhookReceiver } from '../webhooks/webhook-config';

/** The validated contents of the sip-config file: users, trunks (IP phones / PBX) and the dial plan. */
export type Transport = 'udp' | 'tcp' | 'tls';

/** One source a trunk's INVITEs are trusted from: all three must match the request's transport and source address. */
export interface TrunkSource {
  transport: Transport;
  /** an IP address (source addresses are compared as they are; names are not resolved) */
  host: string;
  port: number;
}

/** A digest username and password, as a PBX uses them. */
export interface DigestSecret {
  username: string;
  password: string;
}

export interface SipUser {
  /** user part of the AOR (`alice` in sip:alice@domain); also the digest username */
  user: string;
  password: string;
  displayName?: string;
  /** record every call this user is a party of (docs/recording.md) */
  record?: boolean;
}

export interface SipTrunk {
  name: string;
  /** where calls to this trunk are sent: host:port */
  address: string;
  transport: Transport;
  /**
   * INVITEs arriving from exactly one of these sources (transport + address + port; never over
   * WebSocket) are this trunk's. Without `inboundAuth` they need no password: trust in an address,
   * which over UDP anyone can forge.
   */
  acceptFrom: TrunkSource[];
  /** the PBX authenticates its INVITEs to us with these (digest); with acceptFrom too, only from those sources */
  inboundAuth?: DigestSecret;
  /** we answer the PBX's 401/407 with these when we send it a call */
  outboundAuth?: DigestSecret;
}

export type RouteTarget = { kind: 'user'; user?: string } | { kind: 'trunk'; trunk: string };

export interface SipRoute {
  match: RegExp;
  to: RouteTarget;
  /** replacement for the dialled number (`$1` etc. refer to the match's groups); default: unchanged */
  rewrite?: string;
  /** record every call routed by this route (docs/recording.md) */
  record?: boolean;
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
  /** bindings one user may hold at once (default 10): a new one beyond replaces the least recently refreshed */
  maxContacts?: number;
  /** webhook receivers of call events (docs/webhooks.md); none when absent */
  webhooks?: WebhookReceiver[];
}

/** Bindings one user may hold when the configuration does not say (`maxContacts`). */
export const DEFAULT_MAX_CONTACTS = 10;
