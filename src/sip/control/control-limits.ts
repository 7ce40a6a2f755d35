import { positiveLimitsFromEnv } from '../../common/env';

/**
 * What the drachtio control port accepts from a connection that has not yet authenticated, and how
 * many connections it holds. An unauthenticated peer can make ferry sip buffer at most
 * `maxUnauthenticated × preAuthMaxFrameBytes`, for at most `authTimeoutMs`.
 */
export interface ControlLimits {
  /** Largest frame before authentication (the `authenticate` message is a few dozen bytes). */
  preAuthMaxFrameBytes: number;
  /** A connection that has not authenticated by then is closed. */
  authTimeoutMs: number;
  /** Connections open at once, authenticated or not; more are closed on accept. */
  maxConnections: number;
  /** Connections that have not authenticated yet, at once; more are closed on accept. */
  maxUnauthenticated: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = {
  preAuthMaxFrameBytes: 4096,
  authTimeoutMs: 5000,
  maxConnections: 64,
  maxUnauthenticated: 16,
};

/** FERRY_SIP_CONTROL_PRE_AUTH_MAX_BYTES, _AUTH_TIMEOUT_MS, _MAX_CONNECTIONS, _MAX_UNAUTHENTICATED (docs/configuration.md). */
export function controlLimitsFromEnv(): ControlLimits {
  return positiveLimitsFromEnv('control port limit', DEFAULT_CONTROL_LIMITS, {
    preAuthMaxFrameBytes: 'FERRY_SIP_CONTROL_PRE_AUTH_MAX_BYTES',
    authTimeoutMs: 'FERRY_SIP_CONTROL_AUTH_TIMEOUT_MS',
    maxConnections: 'FERRY_SIP_CONTROL_MAX_CONNECTIONS',
    maxUnauthenticated: 'FERRY_SIP_CONTROL_MAX_UNAUTHENTICATED',
  });
}
