import { positiveLimitsFromEnv } from '../../common/env';
import { KurentoErrors, type KurentoError } from '../errors/kurento-error';

/**
 * How much one Kurento control session, and all of them together, may hold in ferry media. A create
 * that would go above a limit is refused with Kurento's NOT_ENOUGH_RESOURCES (40009), the error KMS
 * gives when it cannot take more. Ports are counted as bound now, with every RTP/WebRTC endpoint
 * counted as at least one RTP+RTCP pair even before it binds (it will when it negotiates).
 */
export interface MediaQuotas {
  /** Pipelines in the whole server (FERRY_MEDIA_MAX_PIPELINES). */
  maxPipelines: number;
  /** Pipelines created by one control session and not yet released (FERRY_MEDIA_MAX_PIPELINES_PER_SESSION). */
  maxPipelinesPerSession: number;
  /** Elements in one pipeline (FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE). */
  maxElementsPerPipeline: number;
  /** UDP ports bound by media endpoints in the whole server (FERRY_MEDIA_MAX_PORTS). */
  maxPorts: number;
  /** UDP ports bound by the endpoints of the pipelines one session created (FERRY_MEDIA_MAX_PORTS_PER_SESSION). */
  maxPortsPerSession: number;
  /** Control WebSocket connections at once (FERRY_MEDIA_MAX_CONNECTIONS); more get HTTP 503 on upgrade. */
  maxConnections: number;
}

/** Sized for a 2-core host: about 200 WebRTC↔RTP or 500 RTP↔RTP calls fit, one pipeline each. */
export const DEFAULT_MEDIA_QUOTAS: MediaQuotas = {
  maxPipelines: 1000,
  maxPipelinesPerSession: 600,
  maxElementsPerPipeline: 16,
  maxPorts: 8000,
  maxPortsPerSession: 4800,
  maxConnections: 256,
};

/** Ports an endpoint is counted for before it has bound any (one RTP + RTCP pair). */
export const PORTS_RESERVED_PER_ENDPOINT = 2;

export function mediaQuotasFromEnv(): MediaQuotas {
  return positiveLimitsFromEnv('media quota', DEFAULT_MEDIA_QUOTAS, {
    maxPipelines: 'FERRY_MEDIA_MAX_PIPELINES',
    maxPipelinesPerSession: 'FERRY_MEDIA_MAX_PIPELINES_PER_SESSION',
    maxElementsPerPipeline: 'FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE',
    maxPorts: 'FERRY_MEDIA_MAX_PORTS',
    maxPortsPerSession: 'FERRY_MEDIA_MAX_PORTS_PER_SESSION',
    maxConnections: 'FERRY_MEDIA_MAX_CONNECTIONS',
  });
}

/** The error a refused create gets: `Not enough resources: <what> (<used>/<limit>)`. */
export function quotaExceeded(what: string, used: number, limit: number): KurentoError {
  return KurentoErrors.notEnoughResources(`Not enough resources: ${what} (${used}/${limit})`);
}
