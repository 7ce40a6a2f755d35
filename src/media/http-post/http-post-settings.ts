import { isIP } from 'node:net';
import { envInt, envString, type Env } from '../../common/env';
import type { MediaConfig } from '../server/media-config';

/** The path prefix of every HttpPostEndpoint's URL on ferry media's control listener. */
export const HTTP_POST_PATH = '/ferry-http-post/';

/** FERRY_MEDIA_HTTP_POST_MAX_BYTES default: 4 MiB, about 8.7 minutes of G.711 (4.4 of 16-bit PCM at 8 kHz). */
export const DEFAULT_HTTP_POST_MAX_BYTES = 4 * 1024 * 1024;

/** The largest body one POST to an HttpPostEndpoint may send (FERRY_MEDIA_HTTP_POST_MAX_BYTES, at least 1024). */
export function httpPostMaxBytes(env: Env = process.env): number {
  const n = envInt('FERRY_MEDIA_HTTP_POST_MAX_BYTES', DEFAULT_HTTP_POST_MAX_BYTES, env);
  if (n < 1024) throw new Error(`FERRY_MEDIA_HTTP_POST_MAX_BYTES=${n} must be at least 1024`);
  return n;
}

/**
 * The host an HttpPostEndpoint's URL names: FERRY_MEDIA_HTTP_POST_ADDRESS when set (the address or name
 * clients reach the control listener by: behind NAT, a proxy...), else the control listener's address
 * (FERRY_MEDIA_HOST), else, when that is a wildcard, the address ferry media advertises for media
 * (FERRY_MEDIA_SDP_ADDRESS / FERRY_MEDIA_PUBLIC_IP / FERRY_MEDIA_RTP_HOST). IPv6 in brackets.
 */
export function httpPostUrlBase(config: MediaConfig, env: Env = process.env): string {
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  const host = envString('FERRY_MEDIA_HTTP_POST_ADDRESS', wildcard ? config.sdpAddress : config.host, env).trim();
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${config.port}`;
}
