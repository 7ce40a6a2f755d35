import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { IceSettings } from './ice-settings';
import type { WebRtcLeg } from './webrtc-leg';
import { WeriftLeg } from './werift-leg';

/**
 * The one place that picks the WebRTC stack. Elements ask for a `WebRtcLeg`; swapping werift for
 * node-datachannel means a second implementation and a change here only. `ice` comes from the media
 * server's configuration (MediaConfig.ice), read and checked at start-up, never here.
 */
export function createWebRtcLeg(opts: { clock: Clock; logger: Logger; ice: IceSettings; rtcpIntervalMs?: number }): WebRtcLeg {
  return new WeriftLeg({ clock: opts.clock, logger: opts.logger, ice: opts.ice, rtcpIntervalMs: opts.rtcpIntervalMs });
}
