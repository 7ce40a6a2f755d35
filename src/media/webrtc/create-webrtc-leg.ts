import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import { loadIceSettings, type IceSettings } from './ice-settings';
import type { WebRtcLeg } from './webrtc-leg';
import { WeriftLeg } from './werift-leg';

/**
 * The one place that picks the WebRTC stack. Elements ask for a `WebRtcLeg`; swapping werift for
 * node-datachannel means a second implementation and a change here only.
 */
let processIceSettings: IceSettings | undefined;

export function createWebRtcLeg(opts: { clock: Clock; logger: Logger; ice?: IceSettings; rtcpIntervalMs?: number }): WebRtcLeg {
  const ice = opts.ice ?? (processIceSettings ??= loadIceSettings(process.env));
  return new WeriftLeg({ clock: opts.clock, logger: opts.logger, ice, rtcpIntervalMs: opts.rtcpIntervalMs });
}
