import { ALAW_TO_LINEAR, MULAW_TO_LINEAR, type G711Law } from '../media-files/g711';

/** Samples in one mixed frame: 20 ms at 8 kHz. */
export const FRAME_SAMPLES = 160;
/** Ring of decoded samples per input (power of two): about 0.5 s, more than MAX_AHEAD + a packet. */
const RING_SAMPLES = 4096;
const RING_MASK = RING_SAMPLES - 1;
/** A new stream's first packet is played this far (samples) after the next frame to be mixed: room for jitter. */
export const PLAYOUT_DELAY_SAMPLES = 320;
/** Audio placed further ahead of the mix than this (samples) re-anchors the stream: a peer cannot build up latency. */
const MAX_AHEAD_SAMPLES = 1600;
/** Largest payload taken from one packet (samples): 60 ms of G.711; the rest is dropped. */
export const MAX_PACKET_SAMPLES = 480;

/**
 * One party's audio on its way into the mix: a small jitter buffer of decoded G.711, placed by RTP
 * timestamp. A stream's first packet (or the first after its SSRC changes) is anchored
 * PLAYOUT_DELAY_SAMPLES after the next frame to be mixed; later packets land at their timestamp's
 * distance from the anchor, so jitter and reordering inside the delay change nothing and a lost packet
 * leaves silence of its exact length. A packet arriving after its place was mixed is dropped (counted)
 * unless it is the newest of its stream (then the whole stream runs late: it is anchored afresh); a
 * stream running too far ahead is anchored afresh too. The mix reads one frame per tick whatever came:
 * an input with nothing there contributes nothing and never holds the mix up.
 *
 * Positions are in mix samples (the mixer's frame counter times FRAME_SAMPLES); the ring is zero
 * everywhere except [read position, filledUntil), so reading an unfilled place yields silence.
 * Nothing is allocated per packet or per frame.
 */
export class MixInput {
  private readonly ring = new Int16Array(RING_SAMPLES);
  /** The last frame read (what this input contributed to the current mix). */
  readonly frame = new Int16Array(FRAME_SAMPLES);
  /** Did the last frame read hold anything? */
  active = false;
  private filledUntil = 0;
  private anchored = false;
  private anchorSsrc = 0;
  private anchorTs = 0;
  private anchorAt = 0;
  /** End (mix position) of the newest audio placed for the anchored stream. */
  private newestEnd = 0;

  packetsMixed = 0;
  packetsLate = 0;
  reanchors = 0;

  /**
   * Place one packet's G.711 payload, `readPos` being the next position the mix will read. `bytes`
   * is read from `offset` for `length` bytes (the packet buffer itself: nothing is copied).
   */
  write(law: G711Law, bytes: Uint8Array, offset: number, length: number, ts: number, ssrc: number, readPos: number): void {
    const n = Math.min(length, MAX_PACKET_SAMPLES);
    if (n <= 0) return;
    if (!this.anchored || ssrc !== this.anchorSsrc) this.anchorStream(ssrc, ts, readPos);
    let at = this.anchorAt + ((ts - this.anchorTs) | 0);
    if (at > readPos + MAX_AHEAD_SAMPLES) {
      this.reanchor(ssrc, ts, readPos);
      at = this.anchorAt;
    } else if (at + n <= readPos) {
      if (at + n <= this.newestEnd) {
        this.packetsLate++; // a straggler whose place was already mixed
        return;
      }
      this.reanchor(ssrc, ts, readPos); // the stream as a whole fell behind the mix
      at = this.anchorAt;
    }
    const skip = Math.max(0, readPos - at);
    const table = law === 'mulaw' ? MULAW_TO_LINEAR : ALAW_TO_LINEAR;
    let idx = (at + skip) % RING_SAMPLES;
    for (let i = offset + skip, end = offset + n; i < end; i++) {
      this.ring[idx] = table[bytes[i]!]!;
      idx = (idx + 1) & RING_MASK;
    }
    if (at + n > this.filledUntil) this.filledUntil = at + n;
    if (at + n > this.newestEnd) this.newestEnd = at + n;
    this.packetsMixed++;
  }

  /** Take the frame at `readPos` into `frame` (zeroing its place in the ring); false, and a zero frame, when nothing is there. */
  read(readPos: number): boolean {
    if (this.filledUntil <= readPos) {
      if (this.active) this.frame.fill(0);
      this.active = false;
      return false;
    }
    let idx = readPos % RING_SAMPLES;
    const ring = this.ring;
    const frame = this.frame;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      frame[i] = ring[idx]!;
      ring[idx] = 0;
      idx = (idx + 1) & RING_MASK;
    }
    this.active = true;
    return true;
  }

  /** A stream seen for the first time (or a new SSRC): anchored at the playout delay. */
  private anchorStream(ssrc: number, ts: number, readPos: number): void {
    if (this.anchored) this.reanchor(ssrc, ts, readPos);
    else this.setAnchor(ssrc, ts, readPos);
  }

  /** Forget what is queued of the old anchoring and place the stream afresh. */
  private reanchor(ssrc: number, ts: number, readPos: number): void {
    this.reanchors++;
    for (let p = readPos; p < this.filledUntil; p++) this.ring[p % RING_SAMPLES] = 0;
    this.filledUntil = readPos;
    this.setAnchor(ssrc, ts, readPos);
  }

  private setAnchor(ssrc: number, ts: number, readPos: number): void {
    this.anchored = true;
    this.anchorSsrc = ssrc;
    this.anchorTs = ts;
    this.anchorAt = readPos + PLAYOUT_DELAY_SAMPLES;
    this.newestEnd = this.anchorAt;
  }
}
