import { envInt, envString } from '../../common/env';
import { mediaQuotasFromEnv, type MediaQuotas } from './media-quotas';

export type AutoReleasePolicy = 'orphans' | 'always' | 'never';

/** ferry media's configuration, read once at start. */
export interface MediaConfig {
  /** Address the Kurento control port and /stats listen on (FERRY_MEDIA_HOST, default 127.0.0.1: a control listener). */
  host: string;
  /** Address the RTP sockets and ICE candidates bind (FERRY_MEDIA_RTP_HOST; defaults to `host`). */
  rtpHost: string;
  /** Address written in RtpEndpoint SDP (FERRY_MEDIA_SDP_ADDRESS, else FERRY_MEDIA_PUBLIC_IP, else `rtpHost`; required when that is a wildcard). */
  sdpAddress: string;
  /** Ping interval for control WebSockets (a dead peer without FIN is dropped after two missed pongs); 0 = off. */
  wsPingMs: number;
  /** WebSocket + /stats port (0 = any free port). */
  port: number;
  /** RTP port range for RtpEndpoints; 0/0 = ports chosen by the OS. */
  rtpPortMin: number;
  rtpPortMax: number;
  /** A leg with neither RTP nor RTCP for this long is dead (lifecycle.md T_dead). */
  deadMs: number;
  /** Same when the SDP says the peer will not send (hold) (T_hold). */
  holdMs: number;
  autoRelease: AutoReleasePolicy;
  /** With autoRelease=always: how long after a leg ends ferry media waits for the app to release. */
  releaseGraceMs: number;
  /** RTCP report interval on RTP legs. */
  rtcpIntervalMs: number;
  /** Pipeline, element and port limits (media-quotas.ts). */
  quotas: MediaQuotas;
}

export function loadMediaConfig(overrides: Partial<MediaConfig> = {}): MediaConfig {
  const policy = envString('FERRY_MEDIA_AUTO_RELEASE', 'orphans');
  if (policy !== 'orphans' && policy !== 'always' && policy !== 'never') {
    throw new Error(`FERRY_MEDIA_AUTO_RELEASE=${JSON.stringify(policy)} must be one of orphans, always, never`);
  }
  const host = overrides.host ?? envString('FERRY_MEDIA_HOST', '127.0.0.1');
  const rtpHost = overrides.rtpHost ?? envString('FERRY_MEDIA_RTP_HOST', host);
  const config: MediaConfig = {
    host,
    rtpHost,
    sdpAddress: envString('FERRY_MEDIA_SDP_ADDRESS', envString('FERRY_MEDIA_PUBLIC_IP', rtpHost)),
    wsPingMs: envInt('FERRY_MEDIA_WS_PING_MS', 20000),
    port: envInt('FERRY_MEDIA_PORT', 8888),
    rtpPortMin: envInt('FERRY_MEDIA_RTP_PORT_MIN', 0),
    rtpPortMax: envInt('FERRY_MEDIA_RTP_PORT_MAX', 0),
    deadMs: envInt('FERRY_MEDIA_DEAD_MS', 15000),
    holdMs: envInt('FERRY_MEDIA_HOLD_MS', 3600000),
    autoRelease: policy,
    releaseGraceMs: envInt('FERRY_MEDIA_RELEASE_GRACE_MS', 5000),
    rtcpIntervalMs: envInt('FERRY_MEDIA_RTCP_INTERVAL_MS', 5000),
    quotas: mediaQuotasFromEnv(),
    ...overrides,
  };
  if (config.sdpAddress === '0.0.0.0' || config.sdpAddress === '::') {
    throw new Error(`the RTP address ${config.rtpHost} (FERRY_MEDIA_RTP_HOST / FERRY_MEDIA_HOST) is a wildcard: set FERRY_MEDIA_SDP_ADDRESS to the address phones should send RTP to`);
  }
  if (config.rtpPortMin > config.rtpPortMax) {
    throw new Error(`FERRY_MEDIA_RTP_PORT_MIN (${config.rtpPortMin}) is above FERRY_MEDIA_RTP_PORT_MAX (${config.rtpPortMax})`);
  }
  return config;
}
