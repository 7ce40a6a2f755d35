import { maxGap } from './rtp-phone';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCDtlsTransport,
} from 'werift';
import { pollPause } from './wait-for';

/**
 * A webphone's media side without a browser: a real WebRTC stack (werift: full ICE, DTLS-SRTP) in the
 * test process, offering PCMU + telephone-event, sending 50 packets/s and recording every RTP arrival
 * time, so scenario tests can count packets and measure gaps (S3: no gap > 100 ms), and see the DTLS
 * transport close when ferry media sends close_notify (S4, S5, S7: "the webphone is told").
 * Chromium (browser-webphone.ts) is the webphone where a scenario is about browser behaviour (S1, S6, S9).
 * Gathers on 127.0.0.1 only and never contacts a STUN server.
 */
export class WeriftWebphone {
  private readonly pc: RTCPeerConnection;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private sendTimer: NodeJS.Timeout | undefined;
  private seq = 1000;
  private readonly arrivals: number[] = [];
  private readonly sends: number[] = [];
  private muted = false;
  /** Times the DTLS transport reached each state (e.g. closed on a received close_notify). */
  readonly dtlsStates: { state: string; at: number }[] = [];
  readonly connectionStates: { state: string; at: number }[] = [];
  rtpSent = 0;

  constructor() {
    this.pc = new RTCPeerConnection({
      iceServers: [],
      codecs: {
        audio: [
          new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 }),
          new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, channels: 1, payloadType: 101 }),
        ],
      },
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      iceInterfaceAddresses: { udp4: '127.0.0.1' },
    });
    this.pc.connectionStateChange.subscribe((state) => this.connectionStates.push({ state, at: Date.now() }));
    this.pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe(() => this.arrivals.push(Date.now()));
    });
  }

  /** A complete offer (gathering done, candidates inline). */
  async createOffer(): Promise<string> {
    const transceiver = this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    void transceiver;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this.gatheringComplete();
    this.watchDtls();
    return this.pc.localDescription!.sdp;
  }

  async setAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /** A trickled candidate from the far end (kurento IceCandidateFound). */
  async addIceCandidate(candidate: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }): Promise<void> {
    await this.pc.addIceCandidate({ candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? '0', sdpMLineIndex: candidate.sdpMLineIndex ?? 0 });
  }

  async waitConnected(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pc.connectionState !== 'connected') {
      if (Date.now() > deadline) throw new Error(`werift webphone not connected after ${timeoutMs} ms (state ${this.pc.connectionState})`);
      await pollPause(20);
    }
  }

  startMedia(): void {
    if (this.sendTimer) return;
    this.sendTimer = setInterval(() => {
      if (this.muted) return;
      this.seq = (this.seq + 1) & 0xffff;
      const header = new RtpHeader({ payloadType: 0, sequenceNumber: this.seq, timestamp: this.seq * 160, ssrc: 0x5eb0 });
      this.track.writeRtp(new RtpPacket(header, Buffer.alloc(160, 0xd5)));
      this.rtpSent++;
      this.sends.push(Date.now());
    }, 20);
  }

  /** Stop sending RTP (a muted webphone track; RTCP continues from werift itself). */
  mute(): void {
    this.muted = true;
  }

  unmute(): void {
    this.muted = false;
  }

  rtpReceived(): number {
    return this.arrivals.length;
  }

  rtpReceivedBetween(from: number, to: number): number {
    return this.arrivals.filter((t) => t >= from && t <= to).length;
  }

  maxRtpGap(from: number, to: number): number {
    return maxGap(this.arrivals, from, to);
  }

  rtpSentBetween(from: number, to: number): number {
    return this.sends.filter((t) => t >= from && t <= to).length;
  }

  /** Largest gap between our own consecutive sends (the test process may be starved on a shared CPU). */
  maxSendGap(from: number, to: number): number {
    return maxGap(this.sends, from, to);
  }

  /** First time the DTLS transport left `connected` for closed/failed (undefined while still up). */
  dtlsEndedAt(): number | undefined {
    return this.dtlsStates.find((s) => s.state === 'closed' || s.state === 'failed')?.at;
  }

  /** Close the peer connection (what a browser's pc.close() does on the wire: close_notify). */
  async close(): Promise<void> {
    if (this.sendTimer) clearInterval(this.sendTimer);
    this.sendTimer = undefined;
    await this.pc.close().catch(() => undefined);
  }

  private watchDtls(): void {
    const transports = (this.pc as unknown as { dtlsTransports: RTCDtlsTransport[] }).dtlsTransports ?? [];
    for (const dtls of transports) {
      dtls.onStateChange.subscribe((state) => this.dtlsStates.push({ state, at: Date.now() }));
    }
  }

  private gatheringComplete(): Promise<void> {
    return new Promise((resolve) => {
      if (this.pc.iceGatheringState === 'complete') return resolve();
      this.pc.iceGatheringStateChange.subscribe((s) => {
        if (s === 'complete') resolve();
      });
    });
  }
}
