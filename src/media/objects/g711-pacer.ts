import { randomInt } from 'node:crypto';
import type { Clock, TimerHandle } from '../../common/clock';
import { encodeG711, type G711Law } from '../media-files/g711';
import { TELEPHONE_RATE } from '../media-files/telephone-audio';
import type { MediaElement, MediaType } from './media-element';

export const PACKET_MS = 20;
export const SAMPLES_PER_PACKET = (TELEPHONE_RATE * PACKET_MS) / 1000;
/** Packets sent at once to catch up after a late timer; further behind, the schedule restarts (a gap, no burst). */
const MAX_CATCH_UP_PACKETS = 10;
export const PCMU = 'pcmu/8000';
export const PCMA = 'pcma/8000';

/** The next 20 ms a pacer sends: `SAMPLES_PER_PACKET` samples of `audio` from `offset` (silence past its end). */
export interface PacedFrame {
  audio: Int16Array;
  offset: number;
}

/**
 * Where a pacer takes its audio from. `next()` hands over (and consumes) the next frame; 'wait' when no
 * audio is there yet (the pacer stops and `starved` is called: start it again when there is), 'end'
 * when the media is over (the pacer stops and `ended` is called).
 */
export interface PacerFeed {
  next(): PacedFrame | 'wait' | 'end';
}

export interface PacerHooks {
  /** The pacer started or stopped sending (MediaFlowOutStateChanged). */
  flowing(flowing: boolean): void;
  ended(): void;
  starved?(): void;
}

/**
 * Audio played into a pipeline as RTP-equivalent packets: 20 ms of G.711 every 20 ms of the clock, into
 * every AUDIO sink in the codec that sink negotiated (PCMU, else PCMA), one RTP stream (SSRC, sequence,
 * timestamp) whose clock keeps running across pauses so receivers see the gap, the marker bit on the
 * first packet of every run. Packet n of a run is due at start + n * 20 ms; a late timer is caught up
 * by at most 10 packets, further behind the schedule restarts. PlayerEndpoint and HttpPostEndpoint feed it.
 */
export class G711Pacer {
  readonly sinks = new Set<MediaElement>();

  /** Follows the source's sinks through connect (`connected`) and disconnect: AUDIO ones, or those of every media type. */
  followSink(sink: MediaElement, mediaType: MediaType | undefined, connected: boolean): void {
    if (mediaType !== undefined && mediaType !== 'AUDIO') return;
    if (connected) this.sinks.add(sink);
    else this.sinks.delete(sink);
  }
  private timer: TimerHandle | undefined;
  private scheduleStart = 0;
  private sentSinceStart = 0;
  private readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0x10000);
  private timestamp = randomInt(0, 0xffffffff);
  private lastSentAt: number | undefined;
  private markNext = true;
  private sending = false;
  packetsSent = 0;

  constructor(
    private readonly clock: Clock,
    private readonly feed: PacerFeed,
    private readonly hooks: PacerHooks,
  ) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  get flowing(): boolean {
    return this.sending;
  }

  /** The next packet starts a new run (marker bit): after a seek. */
  markDiscontinuity(): void {
    this.markNext = true;
  }

  start(): void {
    if (this.timer) return;
    const now = this.clock.now();
    if (this.lastSentAt !== undefined) {
      // the RTP clock keeps running while paused, so receivers see the gap
      const elapsed = Math.max(SAMPLES_PER_PACKET, Math.round(((now - this.lastSentAt) * TELEPHONE_RATE) / 1000));
      this.timestamp = (this.timestamp + elapsed - SAMPLES_PER_PACKET) >>> 0;
    }
    this.markNext = true;
    this.scheduleStart = now;
    this.sentSinceStart = 0;
    this.setFlowing(true);
    this.timer = this.clock.setInterval(() => this.tick(), PACKET_MS);
    this.tick();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.setFlowing(false);
  }

  /** Stop without a flow event (the element is going away). */
  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.sinks.clear();
  }

  private setFlowing(flowing: boolean): void {
    if (this.sending === flowing) return;
    this.sending = flowing;
    this.hooks.flowing(flowing);
  }

  private tick(): void {
    if (!this.timer) return;
    const now = this.clock.now();
    let due = Math.floor((now - this.scheduleStart) / PACKET_MS) + 1;
    if (due - this.sentSinceStart > MAX_CATCH_UP_PACKETS) {
      this.scheduleStart = now - this.sentSinceStart * PACKET_MS;
      due = this.sentSinceStart + 1;
    }
    while (this.sentSinceStart < due && this.timer) {
      const frame = this.feed.next();
      if (frame === 'end') {
        this.stop();
        this.hooks.ended();
        return;
      }
      if (frame === 'wait') {
        this.stop();
        this.hooks.starved?.();
        return;
      }
      this.sendPacket(frame, now);
      this.sentSinceStart++;
    }
  }

  private sendPacket(frame: PacedFrame, now: number): void {
    const packets = new Map<G711Law, Buffer>();
    for (const sink of this.sinks) {
      const codec = chooseCodec(sink);
      const law: G711Law = codec === PCMA ? 'alaw' : 'mulaw';
      let packet = packets.get(law);
      if (!packet) packets.set(law, (packet = this.buildPacket(law, frame, law === 'alaw' ? 8 : 0)));
      sink.deliverFromPipeline(Buffer.from(packet), codec);
    }
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + SAMPLES_PER_PACKET) >>> 0;
    this.markNext = false;
    this.lastSentAt = now;
    this.packetsSent++;
  }

  private buildPacket(law: G711Law, frame: PacedFrame, pt: number): Buffer {
    const b = Buffer.alloc(12 + SAMPLES_PER_PACKET);
    b[0] = 0x80;
    b[1] = (this.markNext ? 0x80 : 0) | pt;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE(this.timestamp, 4);
    b.writeUInt32BE(this.ssrc, 8);
    encodeG711(law, frame.audio, frame.offset, SAMPLES_PER_PACKET, b, 12);
    return b;
  }
}

/** The G.711 codec a sink negotiated (its own preference order), PCMU when it has negotiated neither yet. */
function chooseCodec(sink: MediaElement): string {
  for (const key of sink.negotiatedCodecKeys()) if (key === PCMU || key === PCMA) return key;
  return PCMU;
}
