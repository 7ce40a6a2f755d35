import type { Clock, TimerHandle } from '../../common/clock';
import type { LegActivity, LegEndReason } from '../relay/media-leg';

export interface LivenessLimits {
  /** No RTP and no RTCP from the peer for this long = dead (FERRY_MEDIA_DEAD_MS). */
  deadMs: number;
  /** The same while the peer's SDP says it will not send (FERRY_MEDIA_HOLD_MS). */
  holdMs: number;
}

/**
 * Decides when one media leg is over (docs/lifecycle.md, rules 2 and 3), from the leg's counters and explicit
 * signals, on an injected clock. Pure: no sockets, no events other than the one `onEnd` call.
 * - an explicit signal (RTCP BYE from a phone, DTLS close_notify, ICMP unreachable, ICE failed) ends it at once;
 * - otherwise it ends when neither RTP nor RTCP arrived for deadMs (holdMs when the peer will not send);
 * - RTCP alone keeps it alive: "no RTP while RTCP arrives" (mute, hold, silence suppression) is never an end.
 */
export class LegLiveness {
  private timer: TimerHandle | undefined;
  private startedAt = 0;
  private sinceDirectionChange = 0;
  private peerWillSend = true;
  private endReason: LegEndReason | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly limits: LivenessLimits,
    private readonly activity: () => LegActivity,
    private readonly onEnd: (reason: LegEndReason) => void,
  ) {}

  get ended(): LegEndReason | undefined {
    return this.endReason;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Start watching (at negotiation). Idempotent. */
  start(): void {
    if (this.timer || this.endReason) return;
    this.startedAt = this.clock.now();
    this.sinceDirectionChange = this.startedAt;
    const every = Math.max(20, Math.min(1000, Math.floor(this.limits.deadMs / 5)));
    this.timer = this.clock.setInterval(() => this.check(), every);
  }

  /** The SDP direction changed (hold: false; resume: true). The silence clock restarts. */
  setPeerWillSend(willSend: boolean): void {
    if (willSend === this.peerWillSend) return;
    this.peerWillSend = willSend;
    this.sinceDirectionChange = this.clock.now();
  }

  /** An explicit end signal from the transport: ends the leg now. */
  signal(reason: LegEndReason): void {
    this.end(reason);
  }

  /** Stop without deciding anything (the element is being released). */
  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Milliseconds since the last sign of life (RTP or RTCP from the peer, start, or direction change). */
  silenceMs(): number {
    const a = this.activity();
    const last = Math.max(a.lastRtpInAt ?? 0, a.lastRtcpInAt ?? 0, this.sinceDirectionChange);
    return this.clock.now() - last;
  }

  private check(): void {
    if (this.endReason) return;
    const limit = this.peerWillSend ? this.limits.deadMs : this.limits.holdMs;
    if (this.silenceMs() >= limit) this.end(this.peerWillSend ? 'media-timeout' : 'hold-timeout');
  }

  private end(reason: LegEndReason): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.stop();
    this.onEnd(reason);
  }
}
