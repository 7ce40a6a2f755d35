import { positiveLimitsFromEnv } from '../../common/env';
import { sourceIpv6PrefixFromEnv } from '../../common/source-key';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../message/sip-stream-framer';

/**
 * What ferry sip accepts from a SIP connection (TCP, TLS, WebSocket): how big a message may be, how long
 * a peer may take to send one, how long a connection nobody uses may stay open, and how many
 * connections one source (and everybody together) may hold, and how fast one source may open connections
 * that need a TLS handshake. A source is an IPv4 address or an IPv6 prefix (src/common/source-key.ts).
 * Enforced by ConnectionGuard.
 */
export interface ConnectionLimits {
  /** Largest SIP message, headers and body together (a WebSocket message likewise). Larger: 413 or close. */
  maxMessageBytes: number;
  /** A message's headers must be complete this long after its first byte (a WebSocket handshake too). */
  headerTimeoutMs: number;
  /** A message's body must be complete this long after its headers. */
  bodyTimeoutMs: number;
  /**
   * A connection with no registration binding, no dialog and no transaction is closed after this long
   * without a SIP message. Connections in use are never closed for idleness.
   */
  idleTimeoutMs: number;
  /** Connections open at once from one source (an IPv4 address, an IPv6 /64); more are closed on accept. */
  maxPerSource: number;
  /** Connections open at once in all (accepted and opened, every transport); more are closed on accept. */
  maxConnections: number;
  /** WebSocket ping interval; a connection that has not answered the previous ping by the next one is closed. */
  wsPingIntervalMs: number;
  /**
   * New TLS and WSS connections one source may open per second on average (a token bucket); more are
   * closed on accept, before any handshake work. TCP and WS connections do not count.
   */
  tlsHandshakesPerSourcePerSecond: number;
  /** ...and at once after a quiet spell (the bucket's size). */
  tlsHandshakeBurst: number;
  /** IPv6 sources are counted by this many leading bits (48..128; absent: FERRY_SOURCE_IPV6_PREFIX, default 64). */
  sourceIpv6Prefix?: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxPerSource: 50,
  maxConnections: 4096,
  wsPingIntervalMs: 30_000,
  // a phone or a proxy opens one connection and keeps it; 40 at once covers a proxy reconnecting its
  // connections after a restart, 20/s bounds a source that opens and drops connections in a loop to
  // about 20-40 ms of handshake CPU per second
  tlsHandshakesPerSourcePerSecond: 20,
  tlsHandshakeBurst: 40,
};

/**
 * FERRY_SIP_MAX_MESSAGE_BYTES, FERRY_SIP_HEADER_TIMEOUT_MS, FERRY_SIP_BODY_TIMEOUT_MS, FERRY_SIP_IDLE_TIMEOUT_MS,
 * FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE, FERRY_SIP_MAX_CONNECTIONS, FERRY_SIP_WS_PING_INTERVAL_MS,
 * FERRY_SIP_TLS_HANDSHAKES_PER_SOURCE_PER_SECOND, FERRY_SIP_TLS_HANDSHAKE_BURST, FERRY_SOURCE_IPV6_PREFIX
 * (docs/configuration.md, docs/security.md "Connections").
 */
export function connectionLimitsFromEnv(): ConnectionLimits {
  const limits = positiveLimitsFromEnv<Omit<ConnectionLimits, 'sourceIpv6Prefix'>>('SIP connection limit', DEFAULT_CONNECTION_LIMITS, {
    maxMessageBytes: 'FERRY_SIP_MAX_MESSAGE_BYTES',
    headerTimeoutMs: 'FERRY_SIP_HEADER_TIMEOUT_MS',
    bodyTimeoutMs: 'FERRY_SIP_BODY_TIMEOUT_MS',
    idleTimeoutMs: 'FERRY_SIP_IDLE_TIMEOUT_MS',
    maxPerSource: 'FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE',
    maxConnections: 'FERRY_SIP_MAX_CONNECTIONS',
    wsPingIntervalMs: 'FERRY_SIP_WS_PING_INTERVAL_MS',
    tlsHandshakesPerSourcePerSecond: 'FERRY_SIP_TLS_HANDSHAKES_PER_SOURCE_PER_SECOND',
    tlsHandshakeBurst: 'FERRY_SIP_TLS_HANDSHAKE_BURST',
  });
  if (limits.maxMessageBytes < 1024) throw new Error(`FERRY_SIP_MAX_MESSAGE_BYTES must be at least 1024 (got ${limits.maxMessageBytes})`);
  return { ...limits, sourceIpv6Prefix: sourceIpv6PrefixFromEnv() };
}
