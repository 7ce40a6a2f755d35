import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { disableDefaultStunServer, ignoreDuplicateHelloVerify } from '../../src/media/webrtc/werift-internals';

/**
 * One webphone call's media, as a browser would do it but without one: a werift peer connection (ICE,
 * DTLS-SRTP) on 127.0.0.1 offering or answering PCMU + telephone-event with every candidate inline (as
 * JsSIP does), sending PCMU at 50 packets/s, counting what arrives, muting (RTP stops; werift's RTCP
 * goes on), and noticing when the DTLS transport is closed by the far end.
 */
export class WebphoneMedia {
  private readonly pc: RTCPeerConnection;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private sendTimer: NodeJS.Timeout | undefined;
  private seq = Math.floor(Math.random() * 0xffff);
  private readonly ssrc = (Math.floor(Math.random() * 0x7ffffffe) + 1) >>> 0;
  private muted = false;
  private closed = false;
  rtpReceived = 0;
  lastRtpAt = 0;
  rtpSent = 0;
  /** when the DTLS transport went closed/failed while we had not closed it ourselves */
  dtlsEndedAt: number | undefined;

  constructor() {
    this.pc = new RTCPeerConnection({
      iceServers: [],
      codecs: {
        audio: [
          new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 }),
          new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, channels: 1, payloadType: 101 }),
        ],
        video: [],
      },
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      iceInterfaceAddresses: { udp4: '127.0.0.1' },
    });
    this.pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe(() => {
        this.rtpReceived++;
        this.lastRtpAt = Date.now();
      });
    });
  }

  async offer(): Promise<string> {
    this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    const offer = await this.pc.createOffer();
    disableDefaultStunServer(this.pc);
    await this.pc.setLocalDescription(offer);
    await this.gathered();
    this.watchDtls(false);
    return this.pc.localDescription!.sdp;
  }

  async acceptAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  async answer(offer: string): Promise<string> {
    this.pc.onRemoteTransceiverAdded.subscribe((t) => {
      void t.sender.replaceTrack(this.track);
      t.setDirection('sendrecv');
    });
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const answer = await this.pc.createAnswer();
    disableDefaultStunServer(this.pc);
    await this.pc.setLocalDescription(answer);
    await this.gathered();
    this.watchDtls(true);
    return this.pc.localDescription!.sdp;
  }

  /** The SDP we gave last (answers to re-INVITEs reuse it with another direction). */
  localSdp(): string {
    return this.pc.localDescription?.sdp ?? '';
  }

  startSending(): void {
    if (this.sendTimer || this.closed) return;
    this.sendTimer = setInterval(() => {
      if (this.muted) return;
      this.seq = (this.seq + 1) & 0xffff;
      const h = new RtpHeader({ payloadType: 0, sequenceNumber: this.seq, timestamp: (this.seq * 160) >>> 0, ssrc: this.ssrc });
      try {
        this.track.writeRtp(new RtpPacket(h, Buffer.alloc(160, 0xd5)));
        this.rtpSent++;
      } catch {
        // not connected yet / closed: a browser drops the frame too
      }
    }, 20);
  }

  mute(on: boolean): void {
    this.muted = on;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sendTimer) clearInterval(this.sendTimer);
    this.sendTimer = undefined;
    await this.pc.close().catch(() => undefined);
  }

  private watchDtls(answering: boolean): void {
    for (const t of this.pc.dtlsTransports) {
      t.onStateChange.subscribe((s) => {
        if (s === 'connecting' && answering) ignoreDuplicateHelloVerify(t);
        if ((s === 'closed' || s === 'failed') && !this.closed && this.dtlsEndedAt === undefined) this.dtlsEndedAt = Date.now();
      });
    }
  }

  private async gathered(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise<void>((r) => this.pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && r()));
  }
}
