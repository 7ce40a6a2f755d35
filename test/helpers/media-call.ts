import { MediaServerProcess } from './media-server-process';
import { MediaProxyProcess, type CallAnswer } from './media-proxy-process';
import type { PhonePeer } from './rtp-phone';
import { WeriftWebphone } from './werift-webphone';

/**
 * One bridged call without SIP, for the media-only lifecycle scenarios (S3-S8, S10, S15, S16):
 * ferry media (child process) + a kurento-client "proxy" (child process, killable) + a scripted
 * RTP phone (leg 0, RtpEndpoint) + a werift webphone (leg 1, WebRtcEndpoint), connected both ways,
 * media flowing both ways. The caller owns `media` unless it passed one in; `close()` ends everything
 * this object started (use it in after()).
 */
export class MediaCall {
  webphone: WeriftWebphone | undefined;
  answer: CallAnswer | undefined;
  private ownsMedia = false;

  private constructor(
    readonly media: MediaServerProcess,
    readonly proxy: MediaProxyProcess,
    readonly phone: PhonePeer,
  ) {}

  static async start(options: { media?: MediaServerProcess; mediaEnv?: Record<string, string>; phone: PhonePeer; webphone?: boolean }): Promise<MediaCall> {
    const media = options.media ?? (await MediaServerProcess.start(options.mediaEnv));
    const proxy = await MediaProxyProcess.spawn(media.url);
    const call = new MediaCall(media, proxy, options.phone);
    call.ownsMedia = !options.media;
    try {
      await call.connect(options.webphone ?? true);
    } catch (err) {
      await call.close();
      throw new Error(`call set-up failed: ${err instanceof Error ? err.message : String(err)}\nferry media log:\n${media.log(40)}`);
    }
    return call;
  }

  private async connect(withWebphone: boolean): Promise<void> {
    await this.phone.start();
    const legs: { kind: 'rtp' | 'webrtc'; offer: string }[] = [{ kind: 'rtp', offer: await this.phone.sdp() }];
    if (withWebphone) {
      this.webphone = new WeriftWebphone();
      legs.push({ kind: 'webrtc', offer: await this.webphone.createOffer() });
    }
    this.answer = await this.proxy.createCall(legs);
    await this.phone.applyRemoteSdp(this.answer.legs[0]!.answer);
    await this.phone.startMedia();
    if (this.webphone) {
      const webphone = this.webphone;
      await webphone.setAnswer(this.answer.legs[1]!.answer);
      // Trickle: relay every IceCandidateFound the WebRtcEndpoint reported (before and after this point).
      let relayed = 0;
      const relay = async (): Promise<void> => {
        const found = this.proxy.events.filter((e) => e.event === 'IceCandidateFound' && e.leg === 1);
        for (; relayed < found.length; relayed++) {
          const c = found[relayed]!.data.candidate as { candidate: string; sdpMid?: string; sdpMLineIndex?: number };
          await webphone.addIceCandidate(c).catch(() => undefined);
        }
      };
      const timer = setInterval(() => void relay(), 20);
      try {
        await webphone.waitConnected(15_000);
      } finally {
        clearInterval(timer);
      }
      webphone.startMedia();
    }
  }

  async close(): Promise<void> {
    await this.proxy.kill('SIGKILL').catch(() => undefined);
    await this.phone.close().catch(() => undefined);
    await this.webphone?.close().catch(() => undefined);
    if (this.ownsMedia) await this.media.stop();
  }
}
