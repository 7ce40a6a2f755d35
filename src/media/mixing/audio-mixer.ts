import type { Clock } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import type { G711Law } from '../media-files/g711';
import { clipFrame } from './clip-frame';
import { FrameSchedule } from './frame-schedule';
import { FRAME_SAMPLES, MixInput } from './mix-input';

/** Ports one mixer takes (documented in docs/media-server.md); one more is NOT_ENOUGH_RESOURCES. */
export const MAX_MIXER_PORTS = 32;

/** Where a port's mix goes: called once per frame with the mix of every other port (valid only during the call). */
export interface MixListener {
  mixed(frame: Int16Array): void;
}

/** One party of a mix: its input (jitter buffer) and the frame it hears. */
export class MixerPort {
  readonly input = new MixInput();
  /** What this port hears: every other port's input, summed and clipped. */
  readonly out = new Int16Array(FRAME_SAMPLES);
  samplesClipped = 0;
  constructor(readonly listener: MixListener) {}
}

/**
 * N-1 audio mixing of G.711 telephone audio, paced by the clock: every 20 ms each port's input gives
 * one frame of linear PCM (silence when it has nothing: a silent, late or gone party never stalls the
 * mix), the frames are summed once, and each port is handed the sum minus its own frame, clipped to
 * 16 bits — so everybody hears everybody else and nobody hears themselves, at O(ports) cost per frame.
 * The frame buffers are allocated with the port; the mixing loop allocates nothing. The timer
 * (./frame-schedule.ts) runs while the mixer has ports.
 */
export class AudioMixer {
  private readonly ports: MixerPort[] = [];
  private readonly total = new Int32Array(FRAME_SAMPLES);
  private readonly schedule: FrameSchedule;
  /** Mix position (samples) of the next frame to be mixed. */
  private readPos = 0;
  framesMixed = 0;

  constructor(
    clock: Clock,
    readonly maxPorts = MAX_MIXER_PORTS,
  ) {
    this.schedule = new FrameSchedule(clock, () => this.mixFrame());
  }

  get portCount(): number {
    return this.ports.length;
  }

  get scheduleRestarts(): number {
    return this.schedule.restarts;
  }

  /** A new party; NOT_ENOUGH_RESOURCES (40009) when the mixer has `maxPorts` already. */
  addPort(listener: MixListener): MixerPort {
    if (this.ports.length >= this.maxPorts) {
      throw KurentoErrors.notEnoughResources(`a Composite mixes at most ${this.maxPorts} HubPorts`);
    }
    const port = new MixerPort(listener);
    this.ports.push(port);
    this.schedule.start();
    return port;
  }

  removePort(port: MixerPort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports.splice(i, 1);
    if (this.ports.length === 0) this.schedule.stop();
  }

  /** A packet's G.711 payload from the party of `port` (bytes[offset..offset+length), read in place). */
  write(port: MixerPort, law: G711Law, bytes: Uint8Array, offset: number, length: number, ts: number, ssrc: number): void {
    port.input.write(law, bytes, offset, length, ts, ssrc, this.readPos);
  }

  /** Mix one frame now (the schedule calls this; tests may too). */
  mixFrame(): void {
    const ports = this.ports;
    const total = this.total;
    const pos = this.readPos;
    total.fill(0);
    for (let p = 0; p < ports.length; p++) {
      const input = ports[p]!.input;
      if (!input.read(pos)) continue;
      const f = input.frame;
      for (let i = 0; i < FRAME_SAMPLES; i++) total[i] += f[i]!;
    }
    for (let p = 0; p < ports.length; p++) {
      const port = ports[p]!;
      // its own frame is all zero when the input gave nothing
      port.samplesClipped += clipFrame(total, port.input.frame, port.out);
    }
    this.readPos += FRAME_SAMPLES;
    this.framesMixed++;
    // handed out once every port's frame is ready (listeners encode and send; they add or remove no port)
    for (let p = 0; p < ports.length; p++) ports[p]!.listener.mixed(ports[p]!.out);
  }

  close(): void {
    this.schedule.stop();
    this.ports.length = 0;
  }
}
