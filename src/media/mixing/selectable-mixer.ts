import type { Clock } from '../../common/clock';
import type { G711Law } from '../media-files/g711';
import { clipFrame, SILENCE_FRAME } from './clip-frame';
import { FrameSchedule } from './frame-schedule';
import { FRAME_SAMPLES, MixInput } from './mix-input';

/** Where a port's mix goes: a frame every 20 ms while it has sources, and word when it has none left. */
export interface SelectableListener {
  /** The sum of this port's sources for one frame (valid only during the call). */
  mixed(frame: Int16Array): void;
  /** The port's last source was taken away: it sends nothing until it has one again. */
  stopped(): void;
}

/** One port of a selectable mix: its input (jitter buffer), the sources it hears, the frame it hears. */
export class SelectablePort {
  readonly input = new MixInput();
  readonly out = new Int16Array(FRAME_SAMPLES);
  /** The ports this one hears (Kurento's `Mixer.connect(AUDIO, source, thisPort)`), in the order selected. */
  readonly sources: SelectablePort[] = [];
  samplesClipped = 0;
  constructor(readonly listener: SelectableListener) {}
}

/**
 * Kurento's selectable audio mix (the Mixer hub): each port hears the sum of the ports selected as its
 * sources — none, one, several, itself included if selected — not everybody else as in a Composite.
 * Every 20 ms (../mixing/frame-schedule.ts) each input gives one frame of linear PCM (silence when it has
 * nothing), and each port that has at least one source is handed the sum of their frames, clipped to
 * 16 bits. A port with no source is handed nothing. Buffers are allocated with the port; the frame loop
 * allocates nothing. The timer runs while the mix has ports.
 */
export class SelectableMixer {
  private readonly ports: SelectablePort[] = [];
  private readonly sum = new Int32Array(FRAME_SAMPLES);
  private readonly schedule: FrameSchedule;
  /** Mix position (samples) of the next frame. */
  private readPos = 0;
  framesMixed = 0;

  constructor(clock: Clock) {
    this.schedule = new FrameSchedule(clock, () => this.mixFrame());
  }

  get portCount(): number {
    return this.ports.length;
  }

  get scheduleRestarts(): number {
    return this.schedule.restarts;
  }

  addPort(listener: SelectableListener): SelectablePort {
    const port = new SelectablePort(listener);
    this.ports.push(port);
    this.schedule.start();
    return port;
  }

  /** The port leaves: it is nobody's source any more; a port that had only it as source is told it stopped. */
  removePort(port: SelectablePort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports.splice(i, 1);
    port.sources.length = 0;
    for (const p of this.ports) this.deselect(port, p);
    if (this.ports.length === 0) this.schedule.stop();
  }

  /** `sink` hears `source` from the next frame on. False when it already did. */
  select(source: SelectablePort, sink: SelectablePort): boolean {
    if (sink.sources.includes(source)) return false;
    sink.sources.push(source);
    return true;
  }

  /** `sink` no longer hears `source`. False when it did not. */
  deselect(source: SelectablePort, sink: SelectablePort): boolean {
    const i = sink.sources.indexOf(source);
    if (i < 0) return false;
    sink.sources.splice(i, 1);
    if (sink.sources.length === 0) sink.listener.stopped();
    return true;
  }

  /** A packet's G.711 payload from the party of `port` (bytes[offset..offset+length), read in place). */
  write(port: SelectablePort, law: G711Law, bytes: Uint8Array, offset: number, length: number, ts: number, ssrc: number): void {
    port.input.write(law, bytes, offset, length, ts, ssrc, this.readPos);
  }

  /** Mix one frame now (the schedule calls this; tests may too). */
  mixFrame(): void {
    const ports = this.ports;
    const pos = this.readPos;
    for (let p = 0; p < ports.length; p++) ports[p]!.input.read(pos);
    const sum = this.sum;
    for (let p = 0; p < ports.length; p++) {
      const port = ports[p]!;
      const sources = port.sources;
      if (sources.length === 0) continue;
      sum.fill(0);
      for (let s = 0; s < sources.length; s++) {
        const input = sources[s]!.input;
        if (!input.active) continue;
        const f = input.frame;
        for (let i = 0; i < FRAME_SAMPLES; i++) sum[i] += f[i]!;
      }
      port.samplesClipped += clipFrame(sum, SILENCE_FRAME, port.out);
    }
    this.readPos += FRAME_SAMPLES;
    this.framesMixed++;
    // handed out once every frame is ready (listeners encode and send; they add or remove no port)
    for (let p = 0; p < ports.length; p++) if (ports[p]!.sources.length > 0) ports[p]!.listener.mixed(ports[p]!.out);
  }

  close(): void {
    this.schedule.stop();
    this.ports.length = 0;
  }
}
