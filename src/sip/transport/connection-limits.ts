import { positiveLimitsFromEnv } from '../../common/env';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../message/sip-stream-framer';

/**
 * What ferry sip accepts from a SIP connection (TCP, TLS, WebSocket): how big a message may be, how long
 * a peer may take to send one, how long a connection nobody uses may stay open, and how many
 * connections one address (and everybody together) may hold. Enforced by ConnectionGuard.
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
  /** Connections open at once from one IP address; more are closed on accept. */
  maxPerSource: number;
  /** Connections open at once in all (accepted and opened, every transport); more are closed on accept. */
  maxConnections: number;
  /** WebSocket ping interval; a connection that has not answered the previous ping by the next one is closed. */
  wsPingIntervalMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxPerSource: 50,
  maxConnections: 4096,
  wsPingIntervalMs: 30_000,
};

/**
 * FERRY_SIP_MAX_MESSAGE_BYTES, FERRY_SIP_HEADER_TIMEOUT_MS, FERRY_SIP_BODY_TIMEOUT_MS, FERRY_SIP_IDLE_TIMEOUT_MS,
 * FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE, FERRY_SIP_MAX_CONNECTIONS, FERRY_SIP_WS_PING_INTERVAL_MS
 * (docs/configuration.md, docs/security.md "Connections").
 */
export function connectionLimitsFromEnv(): ConnectionLimits {
  const limits = positiveLimitsFromEnv('SIP connection limit', DEFAULT_CONNECTION_LIMITS, {
    maxMessageBytes: 'FERRY_SIP_MAX_MESSAGE_BYTES',
    headerTimeoutMs: 'FERRY_SIP_HEADER_TIMEOUT_MS',
    bodyTimeoutMs: 'FERRY_SIP_BODY_TIMEOUT_MS',
    idleTimeoutMs: 'FERRY_SIP_IDLE_TIMEOUT_MS',
    maxPerSource: 'FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE',
    maxConnections: 'FERRY_SIP_MAX_CONNECTIONS',
    wsPingIntervalMs: 'FERRY_SIP_WS_PING_INTERVAL_MS',
  });
  if (limits.maxMessageBytes < 1024) throw new Error(`FERRY_SIP_MAX_MESSAGE_BYTES must be at least 1024 (got ${limits.maxMessageBytes})`);
  return limits;
}
