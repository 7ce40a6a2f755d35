import { MediaServerProcess } from './media-server-process';
import { MediaProxyProcess, type CallAnswer } from './media-proxy-process';
import type { PhonePeer } from './rtp-phone';
import { WeriftWebphone } from './werift-webphone';

/** What a call needs from a webphone (WeriftWebphone or BrowserWebphone). */
export interface WebphoneMedia {
  createOffer(): Promise<string>;
  setAnswer(sdp: string): Promise<void>;
  addIceCandidate(c: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }): Promise<void>;
  waitConnected(timeoutMs?: number): Promise<void>;
  startMedia?(): void;
  close(): Promise<void>;
}

/**
 * One bridged call without SIP, for the media-only lifecycle scenarios (S3-S8, S10, S15, S16):
 * ferry media (child process) + a kurento-client "proxy" (child process, killable) + a scripted
 * RTP phone (leg 0, RtpEndpoint) + a werift webphone (leg 1, WebRtcEndpoint), connected both ways,
 * media flowing both ways. The caller owns `media` unless it passed one in; `close()` ends everything
 * this object started (use it in after()).
 */
export class MediaCall<W extends WebphoneMedia = WeriftWebphone> {
  webphone: W | undefined;
  answer: CallAnswer | undefined;
  private ownsMedia = false;

  private constructor(
    readonly media: MediaServerProcess,
    readonly proxy: MediaProxyProcess,
    readonly phone: PhonePeer,
  ) {}

  /** A call with a werift webphone (or none, `webphone: false`: a single RtpEndpoint). */
  static async start(options: { media?: MediaServerProcess; mediaEnv?: Record<string, string>; phone: PhonePeer; webphone?: boolean }): Promise<MediaCall<WeriftWebphone>> {
    return MediaCall.startWith<WeriftWebphone>({ ...options, webphone: options.webphone === false ? undefined : new WeriftWebphone() });
  }

  /** A call with the given webphone (e.g. a BrowserWebphone in Chromium). */
  static async startWith<W extends WebphoneMedia>(options: { media?: MediaServerProcess; mediaEnv?: Record<string, string>; phone: PhonePeer; webphone: W | undefined }): Promise<MediaCall<W>> {
    const media = options.media ?? (await MediaServerProcess.start(options.mediaEnv));
    const call = new MediaCall<W>(media, await MediaProxyProcess.spawn(media.url), options.phone);
    call.ownsMedia = !options.media;
    call.webphone = options.webphone;
    try {
      await call.connect();
    } catch (err) {
      await call.close();
      throw new Error(`call set-up failed: ${err instanceof Error ? err.message : String(err)}\nferry media log:\n${media.log(40)}`);
    }
    return call;
  }

  private async connect(): Promise<void> {
    await this.phone.start();
    const legs: { kind: 'rtp' | 'webrtc'; offer: string }[] = [{ kind: 'rtp', offer: await this.phone.sdp() }];
    if (this.webphone) {
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
      webphone.startMedia?.();
    }
  }

  async close(): Promise<void> {
    await this.proxy.kill('SIGKILL').catch(() => undefined);
    await this.phone.close().catch(() => undefined);
    await this.webphone?.close().catch(() => undefined);
    if (this.ownsMedia) await this.media.stop();
  }
}
