import type { Clock, TimerHandle } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';

/**
 * ferry media's `sendDtmf` extension (docs/kurento-protocol.md): one endpoint sends RFC 4733
 * telephone-event packets to its own peer, as if the tones came from the other side of the call.
 *
 * Per tone (an "event"): one RTP timestamp (the stream's position when the event starts), a packet
 * every 20 ms of the server clock whose duration field is the time elapsed so far (160, 320, … samples
 * at 8 kHz), the marker bit on the first packet, and the final packet (duration = the whole tone) sent
 * three times with the end bit (RFC 4733 2.5.1.4). Volume 10 (-10 dBm0). Between tones `gapMs` passes
 * with no event. While an event is being sent the endpoint sends nothing relayed from the pipeline
 * (the other party's audio and its own telephone-events are dropped for the event's duration and
 * flow again in the gaps and afterwards); the relayed stream then continues with the next sequence
 * number, a timestamp after the event, and the marker bit.
 */

export const DTMF_TONES = /^[0-9*#A-Da-d]{1,64}$/;
export const DTMF_DURATION_MIN_MS = 40;
export const DTMF_DURATION_MAX_MS = 2000;
export const DTMF_DURATION_DEFAULT_MS = 100;
export const DTMF_GAP_MIN_MS = 0;
export const DTMF_GAP_MAX_MS = 2000;
export const DTMF_GAP_DEFAULT_MS = 50;
/** Tones waiting or being sent on one endpoint at most (a second `sendDtmf` queues after the first). */
export const DTMF_QUEUE_MAX = 128;
/** Packet interval and RTP clock of telephone-event/8000. */
const PACKET_MS = 20;
const RATE = 8000;
const END_REPEATS = 3;
const VOLUME = 10;

export interface DtmfRequest {
  tones: string;
  durationMs: number;
  gapMs: number;
}

/** The event code of a tone (RFC 4733 3.2: 0-9, * = 10, # = 11, A-D = 12-15). */
export function dtmfEventCode(tone: string): number {
  const c = tone.toUpperCase();
  if (c >= '0' && c <= '9') return c.charCodeAt(0) - 48;
  if (c === '*') return 10;
  if (c === '#') return 11;
  if (c >= 'A' && c <= 'D') return 12 + c.charCodeAt(0) - 65;
  throw new RangeError(`not a DTMF tone: ${JSON.stringify(tone)}`);
}

/** Validates `sendDtmf`'s params (Kurento errors naming the param). */
export function parseDtmfParams(params: Record<string, unknown>): DtmfRequest {
  const tones = params.tones;
  if (typeof tones !== 'string' || !DTMF_TONES.test(tones)) {
    throw KurentoErrors.illegalParam("'tones' parameter should be a string of 1-64 DTMF tones (0-9 * # A-D)");
  }
  const int = (key: string, def: number, min: number, max: number): number => {
    const v = params[key] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw KurentoErrors.illegalParam(`'${key}' parameter should be an integer from ${min} to ${max} (ms)`);
    }
    return v;
  };
  return {
    tones,
    durationMs: int('durationMs', DTMF_DURATION_DEFAULT_MS, DTMF_DURATION_MIN_MS, DTMF_DURATION_MAX_MS),
    gapMs: int('gapMs', DTMF_GAP_DEFAULT_MS, DTMF_GAP_MIN_MS, DTMF_GAP_MAX_MS),
  };
}

/** Where the generated packets go: the endpoint (its leg, its outgoing stream, its relay). */
export interface DtmfOutput {
  /** The payload type the peer negotiated for telephone-event/8000, undefined when it did not (any more). */
  payloadType(): number | undefined;
  /** The outgoing stream's RTP timestamp now (8 kHz). */
  currentTimestamp(now: number): number;
  /** Stamp (sequence number, payload type, SSRC) and send one generated packet; `streamTs` as in RtpStreamRewriter.stampGenerated. */
  send(packet: Buffer, payloadType: number, streamTs: number, now: number): void;
  /** True while an event is being sent: the endpoint drops what the pipeline relays to it. */
  suppressRelay(on: boolean): void;
  /** The queue stopped early (the peer no longer takes telephone-event, the leg went away). */
  aborted(reason: string, tonesLeft: number): void;
}

interface QueuedTone {
  event: number;
  durationMs: number;
  gapMs: number;
}

interface RunningEvent {
  tone: QueuedTone;
  ts: number;
  startedAt: number;
  packets: number;
}

/** One endpoint's queue of tones, sent one at a time, paced by the clock. */
export class DtmfSender {
  private readonly queue: QueuedTone[] = [];
  private current: RunningEvent | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  eventsSent = 0;
  packetsSent = 0;

  constructor(
    private readonly clock: Clock,
    private readonly out: DtmfOutput,
  ) {}

  /** Tones waiting or being sent. */
  get pending(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  /**
   * Queue the tones; the first starts now when nothing is being sent. Returns the ms until the last
   * queued tone has been sent. Throws when the queue would exceed DTMF_QUEUE_MAX.
   */
  enqueue(req: DtmfRequest): number {
    if (this.stopped) throw KurentoErrors.notAvailable('The endpoint is released');
    if (this.pending + req.tones.length > DTMF_QUEUE_MAX) {
      throw KurentoErrors.notEnoughResources(`DTMF queue full: ${this.pending} tone(s) pending, at most ${DTMF_QUEUE_MAX}`);
    }
    for (const t of req.tones) this.queue.push({ event: dtmfEventCode(t), durationMs: req.durationMs, gapMs: req.gapMs });
    if (!this.current && !this.timer) this.startNext();
    return this.remainingMs();
  }

  private remainingMs(): number {
    const now = this.clock.now();
    let ms = 0;
    if (this.current) ms += Math.max(0, this.current.startedAt + this.current.tone.durationMs - now);
    for (const t of this.queue) ms += t.gapMs + t.durationMs;
    return ms;
  }

  /** Stop at once (release, leg ended): nothing more is sent and relaying resumes. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.queue.length = 0;
    if (this.current) this.out.suppressRelay(false);
    this.current = undefined;
  }

  private startNext(): void {
    this.timer = undefined;
    const tone = this.queue.shift();
    if (!tone || this.stopped) return;
    const now = this.clock.now();
    this.current = { tone, ts: this.out.currentTimestamp(now), startedAt: now, packets: 0 };
    this.out.suppressRelay(true);
    this.scheduleNextPacket();
  }

  /** Packet k of the event goes out at startedAt + min(20 (k+1), duration), reporting the time elapsed. */
  private scheduleNextPacket(): void {
    const ev = this.current!;
    const at = ev.startedAt + Math.min(PACKET_MS * (ev.packets + 1), ev.tone.durationMs);
    this.timer = this.clock.setTimeout(() => this.sendPacket(), Math.max(0, at - this.clock.now()));
  }

  private sendPacket(): void {
    this.timer = undefined;
    const ev = this.current;
    if (!ev || this.stopped) return;
    const pt = this.out.payloadType();
    if (pt === undefined) {
      const left = this.pending;
      this.current = undefined;
      this.queue.length = 0;
      this.out.suppressRelay(false);
      this.out.aborted('the peer no longer negotiates telephone-event/8000', left);
      return;
    }
    const total = ev.tone.durationMs * (RATE / 1000);
    const duration = Math.min((ev.packets + 1) * PACKET_MS * (RATE / 1000), total);
    const end = duration >= total;
    const now = this.clock.now();
    for (let i = 0; i < (end ? END_REPEATS : 1); i++) {
      this.out.send(telephoneEventPacket(ev.tone.event, end, duration, ev.ts, ev.packets === 0 && i === 0), pt, ev.ts + duration, now);
      this.packetsSent++;
    }
    ev.packets++;
    if (!end) {
      this.scheduleNextPacket();
      return;
    }
    this.current = undefined;
    this.eventsSent++;
    this.out.suppressRelay(false);
    const next = this.queue[0];
    if (next) this.timer = this.clock.setTimeout(() => this.startNext(), next.gapMs);
  }
}

/** An RTP packet (12-byte header, sequence number and SSRC left for the sender) with one RFC 4733 event. */
export function telephoneEventPacket(event: number, end: boolean, durationSamples: number, ts: number, marker: boolean): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x80;
  b[1] = marker ? 0x80 : 0;
  b.writeUInt32BE(ts >>> 0, 4);
  b[12] = event;
  b[13] = (end ? 0x80 : 0) | VOLUME;
  b.writeUInt16BE(Math.min(durationSamples, 0xffff), 14);
  return b;
}
