import os from 'node:os';
import { envInt, envPort, envString, type Env } from '../../common/env';
import { loadIceSettings, type IceSettings } from '../webrtc/ice-settings';
import { mediaFilesConfigFromEnv, type MediaFilesConfig } from '../media-files/media-files-config';
import { mediaQuotasFromEnv, type MediaQuotas } from './media-quotas';
import { controlHttpPolicyFromEnv, type ControlHttpPolicy } from './control-http-guard';
import { checkMediaWatchdogMs, DEFAULT_MEDIA_WATCHDOG_MS } from './main-loop-watchdog';

export type AutoReleasePolicy = 'orphans' | 'always' | 'never';

/** What a relay worker is (FERRY_MEDIA_WORKER_KIND): a worker thread, or a child process of its own. */
export type RelayWorkerKind = 'thread' | 'process';

/** Who forwards the packets of simple calls: JavaScript, or the native relay (docs/native-relay.md). */
export type MediaRelayKind = 'js' | 'native';

/**
 * FERRY_MEDIA_RELAY: `auto` (the default) is `native` when the addon builds and loads on this machine and
 * `js` otherwise (ferry media says so in one log line); `native` refuses to start without it; `js` never
 * loads it. startMediaServer() resolves `auto` before anything runs, so elements and relay workers only
 * ever see `js` or `native`.
 */
export type MediaRelaySetting = MediaRelayKind | 'auto';

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
  /** Who may use that port: Origin and Host checks, the header deadline (control-http-guard.ts). */
  controlHttp: ControlHttpPolicy;
  /** RTP port range for RtpEndpoints; 0/0 = ports chosen by the OS. */
  rtpPortMin: number;
  rtpPortMax: number;
  /** A leg with neither RTP nor RTCP for this long is dead (docs/lifecycle.md T_dead). */
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
  /** Where WebRtcEndpoints gather ICE candidates (FERRY_MEDIA_ICE_*, FERRY_MEDIA_PUBLIC_IP; ice-settings.ts). */
  ice: IceSettings;
  /** Orphaned pipelines that never negotiated media are released after this long (FERRY_MEDIA_ORPHAN_TTL_MS, default 240000 as KMS's GC). */
  orphanTtlMs: number;
  /** The event-loop lag window /stats reports over (FERRY_MEDIA_LAG_WINDOW_MS, default 10000). */
  lagWindowMs: number;
  /** PlayerEndpoint/RecorderEndpoint: the media files directory and fetch limits (FERRY_MEDIA_FILES_DIR & co., media-files-config.ts). */
  mediaFiles: MediaFilesConfig;
  /**
   * Relay workers (FERRY_MEDIA_WORKERS, default: the number of cores, os.availableParallelism()): each
   * holds whole pipelines on its own thread; 1 = everything on the main thread (docs/media-server.md).
   */
  workers: number;
  /**
   * What each relay worker is (FERRY_MEDIA_WORKER_KIND, default thread): a worker thread, or a child process
   * (`process`: a native crash, a SIGKILL or the OOM killer ends only that worker's calls). Only with 2+ workers.
   */
  workerKind: RelayWorkerKind;
  /**
   * FERRY_MEDIA_RELAY (default auto): `native` hands the packets of simple calls (two legs connected one to
   * one) to the native relay (src/media/native/, docs/native-relay.md); ferry media refuses to start when
   * it cannot be built or loaded. `auto` is native when it can be, else js (MediaRelaySetting).
   */
  relay: MediaRelaySetting;
  /**
   * FERRY_MEDIA_WATCHDOG_MS (default 20000; 0 = off; otherwise at least 1000): `ferry media` ends its own
   * process (SIGKILL) once its main thread has been stuck this long (main-loop-watchdog.ts).
   */
  watchdogMs: number;
}

/** More relay workers than this is a typo, not a machine. */
export const MAX_MEDIA_WORKERS = 64;

/**
 * Reads every FERRY_MEDIA_* variable once, at start: a bad value (a port outside 0..65535, an ICE address
 * that is not IPv4, an unknown policy) throws here, naming the variable, before anything listens.
 * `env` is the process environment except in tests; the quotas always come from the process environment.
 */
export function loadMediaConfig(overrides: Partial<MediaConfig> = {}, env: Env = process.env): MediaConfig {
  const policy = envString('FERRY_MEDIA_AUTO_RELEASE', 'orphans', env);
  if (policy !== 'orphans' && policy !== 'always' && policy !== 'never') {
    throw new Error(`FERRY_MEDIA_AUTO_RELEASE=${JSON.stringify(policy)} must be one of orphans, always, never`);
  }
  const host = overrides.host ?? envString('FERRY_MEDIA_HOST', '127.0.0.1', env);
  const rtpHost = overrides.rtpHost ?? envString('FERRY_MEDIA_RTP_HOST', host, env);
  const config: MediaConfig = {
    host,
    rtpHost,
    sdpAddress: envString('FERRY_MEDIA_SDP_ADDRESS', envString('FERRY_MEDIA_PUBLIC_IP', rtpHost, env), env),
    wsPingMs: envInt('FERRY_MEDIA_WS_PING_MS', 20000, env),
    port: envPort('FERRY_MEDIA_PORT', 8888, env),
    controlHttp: overrides.controlHttp ?? controlHttpPolicyFromEnv(env),
    rtpPortMin: envPort('FERRY_MEDIA_RTP_PORT_MIN', 0, env),
    rtpPortMax: envPort('FERRY_MEDIA_RTP_PORT_MAX', 0, env),
    deadMs: envInt('FERRY_MEDIA_DEAD_MS', 15000, env),
    holdMs: envInt('FERRY_MEDIA_HOLD_MS', 3600000, env),
    autoRelease: policy,
    releaseGraceMs: envInt('FERRY_MEDIA_RELEASE_GRACE_MS', 5000, env),
    rtcpIntervalMs: envInt('FERRY_MEDIA_RTCP_INTERVAL_MS', 5000, env),
    quotas: overrides.quotas ?? mediaQuotasFromEnv(),
    ice: overrides.ice ?? loadIceSettings(env, rtpHost),
    orphanTtlMs: envInt('FERRY_MEDIA_ORPHAN_TTL_MS', 240000, env),
    lagWindowMs: envInt('FERRY_MEDIA_LAG_WINDOW_MS', 10_000, env),
    mediaFiles: overrides.mediaFiles ?? mediaFilesConfigFromEnv(env),
    workers: envInt('FERRY_MEDIA_WORKERS', Math.min(MAX_MEDIA_WORKERS, os.availableParallelism()), env),
    workerKind: envString('FERRY_MEDIA_WORKER_KIND', 'thread', env) as RelayWorkerKind,
    relay: envString('FERRY_MEDIA_RELAY', 'auto', env) as MediaRelaySetting,
    watchdogMs: envInt('FERRY_MEDIA_WATCHDOG_MS', DEFAULT_MEDIA_WATCHDOG_MS, env),
    ...overrides,
  };
  if (config.sdpAddress === '0.0.0.0' || config.sdpAddress === '::') {
    throw new Error(`the RTP address ${config.rtpHost} (FERRY_MEDIA_RTP_HOST / FERRY_MEDIA_HOST) is a wildcard: set FERRY_MEDIA_SDP_ADDRESS to the address phones should send RTP to`);
  }
  if (!Number.isInteger(config.workers) || config.workers < 1 || config.workers > MAX_MEDIA_WORKERS) {
    throw new Error(`FERRY_MEDIA_WORKERS=${config.workers} must be 1..${MAX_MEDIA_WORKERS} (1 = no relay workers, everything on one thread)`);
  }
  if (config.workerKind !== 'thread' && config.workerKind !== 'process') {
    throw new Error(`FERRY_MEDIA_WORKER_KIND=${JSON.stringify(config.workerKind)} must be thread or process (what each relay worker is)`);
  }
  if (config.relay !== 'js' && config.relay !== 'native' && config.relay !== 'auto') {
    throw new Error(`FERRY_MEDIA_RELAY=${JSON.stringify(config.relay)} must be auto, js or native (who forwards the packets of simple calls)`);
  }
  checkMediaWatchdogMs(config.watchdogMs);
  if (config.rtpPortMin > config.rtpPortMax) {
    throw new Error(`FERRY_MEDIA_RTP_PORT_MIN (${config.rtpPortMin}) is above FERRY_MEDIA_RTP_PORT_MAX (${config.rtpPortMax})`);
  }
  return config;
}
