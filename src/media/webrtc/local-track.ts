import type { MediaStreamTrack, RTCRtpSender } from 'werift';
import type { Logger } from '../../common/logger';

/**
 * Puts the leg's outgoing audio track on a sender. werift's `replaceTrack` rejects when the track was
 * already stopped (the leg closed while the offer was being applied) or does not fit the negotiated
 * codec; that is logged on one line and the promise returned here never rejects, so the caller may
 * leave it floating without an unhandled rejection. Resolves true when the track is on the sender.
 */
export async function attachLocalTrack(sender: RTCRtpSender, track: MediaStreamTrack, logger: Logger): Promise<boolean> {
  try {
    await sender.replaceTrack(track);
    return true;
  } catch (err) {
    logger.warn('local audio track not attached', { error: err instanceof Error ? err.message : String(err) });
    return false;
  }
}
