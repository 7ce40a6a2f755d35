import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { KurentoError } from '../../src/media/errors/kurento-error';
import { ALAW_TO_LINEAR, encodeG711, MULAW_TO_LINEAR } from '../../src/media/media-files/g711';
import { AudioMixer, MAX_MIXER_PORTS, type MixerPort } from '../../src/media/mixing/audio-mixer';
import { FRAME_SAMPLES, PLAYOUT_DELAY_SAMPLES } from '../../src/media/mixing/mix-input';
import { Composite } from '../../src/media/objects/composite';
import { HubPort } from '../../src/media/objects/hub-port';
import { MediaElement } from '../../src/media/objects/media-element';
import type { ElementContext } from '../../src/media/objects/object-context';
import { MediaTestObjects } from '../helpers/media-test-objects';
import { goertzelPower, sineSamples } from '../helpers/audio-tone';
import { rng } from '../helpers/seeded-random';

/**
 * The audio mixer on a fake clock: one frame per 20 ms per port, each port hears the exact sum of the
 * OTHER ports' decoded G.711 (never its own), clipped to 16 bits; a party that stops, or never sends,
 * stalls nothing; jitter inside the playout delay changes nothing, a straggler is dropped and counted;
 * the port cap answers 40009; no timer outlives the last port. Then Composite + HubPorts as elements:
 * three tones in, each port's sink hears the other two in its own codec and not its own; hostile
 * packets (random headers, lengths, timestamps) into a port never throw and never stop the mix.
 */

const DELAY_FRAMES = PLAYOUT_DELAY_SAMPLES / FRAME_SAMPLES;

/** A listener keeping a copy of every frame it is handed. */
function recorder(): { frames: Int16Array[]; mixed(frame: Int16Array): void } {
  const frames: Int16Array[] = [];
  return { frames, mixed: (frame) => frames.push(Int16Array.from(frame)) };
}

/** One 20 ms µ-law payload of constant code `byte`. */
const flat = (byte: number) => Buffer.alloc(FRAME_SAMPLES, byte);

function tonePayload(hz: number, from: number, law: 'mulaw' | 'alaw' = 'mulaw', amplitude = 0.3): Buffer {
  const b = Buffer.alloc(FRAME_SAMPLES);
  encodeG711(law, sineSamples(hz, 8000, FRAME_SAMPLES, amplitude, from), 0, FRAME_SAMPLES, b, 0);
  return b;
}

function write(mixer: AudioMixer, port: MixerPort, payload: Buffer, ts: number, ssrc = 1): void {
  mixer.write(port, 'mulaw', payload, 0, payload.length, ts, ssrc);
}

describe('media: audio mixer (fake clock)', () => {
  test('N-1 sums: each port hears the others exactly, never itself; clipping at 16 bits is counted', { timeout: 5000 }, () => {
    const clock = new FakeClock();
    const mixer = new AudioMixer(clock);
    const [la, lb, lc] = [recorder(), recorder(), recorder()];
    const [a, b, c] = [mixer.addPort(la), mixer.addPort(lb), mixer.addPort(lc)];
    // µ-law 0xE0 / 0xD0 / 0x70: small positive, medium positive, negative values
    const [va, vb, vc] = [MULAW_TO_LINEAR[0xe0]!, MULAW_TO_LINEAR[0xd0]!, MULAW_TO_LINEAR[0x70]!];
    write(mixer, a, flat(0xe0), 1000);
    write(mixer, b, flat(0xd0), 5000, 2);
    write(mixer, c, flat(0x70), 9000, 3);
    clock.advance(20 * DELAY_FRAMES);
    assert.equal(la.frames.length, DELAY_FRAMES, 'one frame per 20 ms');
    assert.ok(la.frames.every((f) => f.every((s) => s === 0)), 'silence until the playout delay has passed');
    clock.advance(20);
    assert.equal(la.frames.at(-1)![0], vb + vc, 'A hears B + C');
    assert.equal(lb.frames.at(-1)![0], va + vc, 'B hears A + C');
    assert.equal(lc.frames.at(-1)![0], va + vb, 'C hears A + B');
    assert.ok(la.frames.at(-1)!.every((s) => s === vb + vc), 'the whole frame');
    // two loud parties: the third hears the clipped sum
    const loud = 0x80; // µ-law full-scale positive (32124)
    write(mixer, a, flat(loud), 1160);
    write(mixer, b, flat(loud), 5160, 2);
    clock.advance(20);
    assert.equal(lc.frames.at(-1)![0], 32767, 'C hears A + B clipped');
    assert.equal(la.frames.at(-1)![0], MULAW_TO_LINEAR[loud], 'A hears B alone (C sent nothing for this frame)');
    assert.equal(c.samplesClipped, FRAME_SAMPLES);
    assert.equal(a.samplesClipped, 0);
    mixer.removePort(a);
    mixer.removePort(b);
    mixer.removePort(c);
    assert.equal(clock.pending(), 0, 'no timer once the last port is gone');
  });

  test('a party that goes silent or never sends stalls nothing; jitter inside the delay changes nothing; stragglers dropped', { timeout: 5000 }, () => {
    const clock = new FakeClock();
    const mixer = new AudioMixer(clock);
    const [la, lb, lc] = [recorder(), recorder(), recorder()];
    const [a, b] = [mixer.addPort(la), mixer.addPort(lb)];
    mixer.addPort(lc); // C never sends
    const va = MULAW_TO_LINEAR[0xe0]!;
    // A sends 10 packets in bursts of two every 40 ms (jitter of one frame), B sends 3 then goes silent
    let tsA = 0;
    for (let i = 0; i < 10; i += 2) {
      write(mixer, a, flat(0xe0), tsA);
      write(mixer, a, flat(0xe0), tsA + 160);
      tsA += 320;
      if (i < 6) {
        write(mixer, b, flat(0xd0), 7000 + (i / 2) * 160, 2);
      }
      clock.advance(40);
    }
    clock.advance(20 * (DELAY_FRAMES + 2));
    const heardByC = lc.frames.map((f) => f[0]);
    const firstA = heardByC.findIndex((s) => s !== 0);
    assert.equal(firstA, DELAY_FRAMES, 'A is heard after the playout delay');
    // C hears A continuously for 10 frames (the bursts are smoothed out), B mixed in for the first 3
    const window = heardByC.slice(firstA, firstA + 10);
    assert.equal(window.length, 10);
    assert.ok(window.every((s) => s === va || s === va + MULAW_TO_LINEAR[0xd0]!), `C hears A without a gap: ${window.join(',')}`);
    assert.equal(window.filter((s) => s === va + MULAW_TO_LINEAR[0xd0]!).length, 3, 'and B for its 3 frames');
    assert.equal(lc.frames.length, la.frames.length, 'every port got every frame, whoever was silent');
    assert.equal(lc.frames.length, 10 + DELAY_FRAMES + 2, 'one frame per 20 ms');
    // a straggler: B's packet for a place already mixed (older than its newest) is dropped and counted
    write(mixer, b, flat(0xd0), 7000 + 3 * 160, 2);
    clock.advance(20 * (DELAY_FRAMES + 1));
    write(mixer, b, flat(0xd0), 7000 + 2 * 160, 2);
    assert.equal(b.input.packetsLate, 1);
    assert.equal(b.input.packetsMixed, 4);
    mixer.close();
    assert.equal(clock.pending(), 0);
  });

  test('lost packets leave silence of their exact length; a stream running late or a new SSRC is placed afresh', { timeout: 5000 }, () => {
    const clock = new FakeClock();
    const mixer = new AudioMixer(clock);
    const [la, lb] = [recorder(), recorder()];
    const a = mixer.addPort(la);
    mixer.addPort(lb);
    write(mixer, a, flat(0xe0), 0);
    write(mixer, a, flat(0xe0), 320); // the packet at 160 was lost
    clock.advance(20 * (DELAY_FRAMES + 3));
    const heard = lb.frames.map((f) => f[0]);
    const first = heard.findIndex((s) => s !== 0);
    assert.deepEqual(heard.slice(first, first + 3), [MULAW_TO_LINEAR[0xe0], 0, MULAW_TO_LINEAR[0xe0]]);
    // the sender stalls for 1 s and resumes with timestamps that continue: its audio is now behind the mix
    clock.advance(1000);
    write(mixer, a, flat(0xd0), 480);
    assert.equal(a.input.reanchors, 1, 'the newest packet of a stream behind the mix re-anchors it');
    write(mixer, a, flat(0xf0), 50_000, 99); // another source (new SSRC)
    assert.equal(a.input.reanchors, 2);
    clock.advance(20 * (DELAY_FRAMES + 1));
    assert.equal(lb.frames.at(-1)![0], MULAW_TO_LINEAR[0xf0], 'the new source is heard after the playout delay');
    mixer.close();
  });

  test(`at most ${MAX_MIXER_PORTS} ports: one more is NOT_ENOUGH_RESOURCES (40009)`, { timeout: 5000 }, () => {
    const clock = new FakeClock();
    const mixer = new AudioMixer(clock);
    for (let i = 0; i < MAX_MIXER_PORTS; i++) mixer.addPort(recorder());
    assert.throws(() => mixer.addPort(recorder()), (e: unknown) => e instanceof KurentoError && e.code === 40009);
    assert.equal(mixer.portCount, MAX_MIXER_PORTS);
    mixer.close();
    assert.equal(clock.pending(), 0);
  });
});

// ---- Composite and HubPort as elements --------------------------------------------------------------


/** Stands in for an endpoint: says which codecs it negotiated, keeps what it is sent. */
class CaptureSink extends MediaElement {
  readonly got: { codec: string; pt: number; payload: Buffer }[] = [];
  constructor(ctx: ElementContext, private readonly keys: string[]) {
    super(ctx, 'CaptureSink');
  }
  override negotiatedCodecKeys(): string[] {
    return this.keys;
  }
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    this.got.push({ codec, pt: packet[1]! & 0x7f, payload: packet.subarray(12) });
  }
  heard(): Int16Array {
    const pcm = new Int16Array(this.got.length * FRAME_SAMPLES);
    this.got.forEach((p, i) => p.payload.forEach((b, j) => (pcm[i * FRAME_SAMPLES + j] = (p.codec === 'pcma/8000' ? ALAW_TO_LINEAR : MULAW_TO_LINEAR)[b]!)));
    return pcm;
  }
}

function rtp(seq: number, ts: number, ssrc: number, payload: Buffer, pt = 0): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc, 8);
  payload.copy(b, 12);
  return b;
}

describe('media: Composite and HubPort elements (fake clock)', () => {
  test('three tones: each port\'s sink hears the other two, in its own codec, and not its own; teardown frees the mixer', { timeout: 10_000 }, async () => {
    const o = new MediaTestObjects('test.media-mixer');
    const hub = o.add(new Composite(o.context('Composite', {})));
    const ports = [0, 1, 2].map(() => o.add(new HubPort(o.context('HubPort', { hub: hub.id }))));
    assert.deepEqual(await hub.invoke('getChildren', {}), ports.map((p) => p.id));
    assert.equal(await ports[0]!.invoke('getParent', {}), hub.id);
    await assert.rejects(hub.invoke('connect', { sink: ports[0]!.id }), /not found/, 'a Hub has no connect');
    const codecs = [['pcmu/8000'], ['pcma/8000', 'telephone-event/8000'], []];
    const sinks = codecs.map((k) => new CaptureSink(o.context('CaptureSink', {}), k));
    ports.forEach((p, i) => p.connectTo(sinks[i]!, undefined));
    const tones = [400, 700, 1100];
    // party 1 speaks A-law into its port: the port decodes whatever its source sends
    const inLaw = ['mulaw', 'alaw', 'mulaw'] as const;
    for (let f = 0; f < 50; f++) {
      ports.forEach((p, i) => p.deliverFromPipeline(rtp(f, f * 160, 10 + i, tonePayload(tones[i]!, f * 160, inLaw[i]), inLaw[i] === 'alaw' ? 8 : 0), inLaw[i] === 'alaw' ? 'pcma/8000' : 'pcmu/8000'));
      o.clock.advance(20);
    }
    o.clock.advance(20 * DELAY_FRAMES);
    sinks.forEach((s, i) => {
      assert.equal(s.got.length, 50 + DELAY_FRAMES, `sink ${i}: one packet per 20 ms`);
      assert.ok(s.got.every((p) => p.codec === (i === 1 ? 'pcma/8000' : 'pcmu/8000') && p.pt === (i === 1 ? 8 : 0)), `sink ${i} in its codec`);
      const pcm = s.heard().subarray(DELAY_FRAMES * FRAME_SAMPLES, 50 * FRAME_SAMPLES);
      const power = tones.map((hz) => goertzelPower(pcm, 8000, hz));
      const others = power.filter((_, j) => j !== i);
      assert.ok(Math.min(...others) > 100 * power[i]!, `sink ${i} hears the other two tones, not its own: ${power.map((p) => p.toFixed(0)).join(' / ')}`);
    });
    await ports[2]!.teardown({ notifyPeer: false });
    assert.equal(hub.mixer.portCount, 2);
    assert.deepEqual(await hub.invoke('getChildren', {}), [ports[0]!.id, ports[1]!.id]);
    for (const e of [hub, ...ports, ...sinks]) await e.teardown({ notifyPeer: false });
    assert.equal(hub.mixer.portCount, 0);
    assert.equal(o.clock.pending(), 0, 'no timer outlives the hub');
    assert.throws(() => new HubPort(o.context('HubPort', { hub: hub.id })), (e: unknown) => e instanceof KurentoError && e.code === 40101, 'a released hub takes no port');
    assert.throws(() => new HubPort(o.context('HubPort', { hub: sinks[0]!.id })), (e: unknown) => e instanceof KurentoError && e.code === 40101);
    o.add(sinks[0]!);
    assert.throws(() => new HubPort(o.context('HubPort', { hub: sinks[0]!.id })), /should be a Hub/);
    assert.throws(() => new HubPort(o.context('HubPort', {})), /'hub' constructor parameter is required/);
  });

  test('fuzz: 20 000 random packets into a port never throw, the mix keeps its pace and stays bounded', { timeout: 10_000 }, async () => {
    const random = rng(0x4d1c);
    const o = new MediaTestObjects('test.media-mixer');
    const hub = o.add(new Composite(o.context('Composite', {})));
    const [hostile, listener] = [0, 1].map(() => o.add(new HubPort(o.context('HubPort', { hub: hub.id }))));
    const sink = new CaptureSink(o.context('CaptureSink', {}), ['pcmu/8000']);
    listener!.connectTo(sink, 'AUDIO');
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.alloc(Math.floor(random() * 700));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
      if (b.length > 0 && random() < 0.7) b[0] = 0x80 | (b[0]! & 0x3f); // mostly version 2, any flags
      hostile!.deliverFromPipeline(b, random() < 0.5 ? 'pcmu/8000' : 'pcma/8000');
      if (i % 100 === 0) o.clock.advance(20);
    }
    assert.equal(sink.got.length, 200, 'one frame per 20 ms throughout');
    assert.ok(sink.got.every((p) => p.payload.length === FRAME_SAMPLES), 'every frame 20 ms, whatever came in');
    const input = hostile!.describeForStats() as { packetsMixed: number; packetsLate: number };
    assert.ok(input.packetsMixed > 1000, `packets were taken into the mix: ${JSON.stringify(input)}`);
    for (const e of [hub, hostile!, listener!, sink]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });
});
