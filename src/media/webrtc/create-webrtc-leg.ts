import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import { loadIceSettings, type IceSettings } from './ice-settings';
import type { WebRtcLeg } from './webrtc-leg';
import { WeriftLeg } from './werift-leg';

/**
 * The one place that picks the WebRTC stack. Elements ask for a `WebRtcLeg`; swapping werift for
 * node-datachannel means a second implementation and a change here only.
 */
const iceSettingsByHost = new Map<string, IceSettings>();

/** `host`: the media server's RTP address (FERRY_MEDIA_RTP_HOST, else FERRY_MEDIA_HOST), the default ICE address when FERRY_MEDIA_ICE_ADDRESSES is unset. */
export function createWebRtcLeg(opts: { clock: Clock; logger: Logger; host: string; ice?: IceSettings; rtcpIntervalMs?: number }): WebRtcLeg {
  let ice = opts.ice ?? iceSettingsByHost.get(opts.host);
  if (!ice) {
    ice = loadIceSettings(process.env, opts.host);
    iceSettingsByHost.set(opts.host, ice);
  }
  return new WeriftLeg({ clock: opts.clock, logger: opts.logger, ice, rtcpIntervalMs: opts.rtcpIntervalMs });
}
