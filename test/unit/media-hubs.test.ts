import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock, TimerHandle } from '../../src/common/clock';
import { KurentoError } from '../../src/media/errors/kurento-error';
import { encodeG711, MULAW_TO_LINEAR, ALAW_TO_LINEAR } from '../../src/media/media-files/g711';
import { MAX_MIXER_PORTS } from '../../src/media/mixing/audio-mixer';
import { FRAME_SAMPLES, PLAYOUT_DELAY_SAMPLES } from '../../src/media/mixing/mix-input';
import { FrameSchedule } from '../../src/media/mixing/frame-schedule';
import { transcodeG711InPlace } from '../../src/media/mixing/rtp-g711';
import { AlphaBlending } from '../../src/media/objects/alpha-blending';
import { Composite } from '../../src/media/objects/composite';
import { Dispatcher } from '../../src/media/objects/dispatcher';
import { DispatcherOneToMany } from '../../src/media/objects/dispatcher-one-to-many';
import { HubPort } from '../../src/media/objects/hub-port';
import { MediaElement } from '../../src/media/objects/media-element';
import { Mixer } from '../../src/media/objects/mixer';
import type { ElementContext } from '../../src/media/objects/object-context';
import { MediaTestObjects } from '../helpers/media-test-objects';
import { rng } from '../helpers/seeded-random';

/**
 * The hubs besides Composite as elements on a fake clock, with capture sinks standing in for endpoints:
 * Dispatcher routes one port's packets to the ports connected to it, uncopied for one sink, moved by a
 * new connect, stopped by the source port's release; DispatcherOneToMany broadcasts its source to every
 * port (the source's own included, as KMS), to ports created later too, switched by setSource, stopped by
 * removeSource or the source's release; a sink that negotiated only the other G.711 law gets the payload
 * converted, the others the original bytes; Mixer gives each port the exact sum of the ports selected
 * for it; AlphaBlending mixes N-1 like a Composite; every bad parameter gets KMS's code; no timer outlives
 * the hubs; random packets through a converting dispatcher port never throw; the Mixer's 20 ms schedule
 * catches up a late timer and restarts after a long stall.
 */

const PCMU = 'pcmu/8000';
const PCMA = 'pcma/8000';
const DELAY_FRAMES = PLAYOUT_DELAY_SAMPLES / FRAME_SAMPLES;

class Objects extends MediaTestObjects {
  constructor() {
    super('test.media-hubs');
  }
  port(hub: { id: string }): HubPort {
    return this.add(new HubPort(this.context('HubPort', { hub: hub.id })));
  }
  flowOut(id: string): string[] {
    return this.events.filter((e) => e.id === id && e.type === 'MediaFlowOutStateChanged').map((e) => String(e.data.state));
  }
}

/** Stands in for an endpoint: says which codecs it negotiated, keeps what it is sent (the Buffer itself). */
class CaptureSink extends MediaElement {
  readonly got: { codec: string; packet: Buffer; payload: Buffer }[] = [];
  constructor(ctx: ElementContext, private readonly keys: string[]) {
    super(ctx, 'CaptureSink');
  }
  override negotiatedCodecKeys(): string[] {
    return this.keys;
  }
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    this.got.push({ codec, packet, payload: Buffer.from(packet.subarray(12)) });
  }
}

function rtp(seq: number, payload: Buffer, pt = 0, ssrc = 0x1234): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE((seq * 160) >>> 0, 4);
  b.writeUInt32BE(ssrc, 8);
  payload.copy(b, 12);
  return b;
}

/** A payload whose bytes say who sent it and which packet it was. */
const marked = (who: number, n: number) => Buffer.from(Array.from({ length: FRAME_SAMPLES }, (_, i) => (who * 37 + n * 11 + i) & 0xff));

const kurentoCode = (code: number, text?: RegExp) => (e: unknown) => e instanceof KurentoError && e.code === code && (!text || text.test(e.message));

describe('media: Dispatcher, DispatcherOneToMany, Mixer, AlphaBlending as elements (fake clock)', () => {
  test('Dispatcher: A reaches only the port connected to it, uncopied; a new connect moves it; the other way is its own; release of the source stops its sinks', { timeout: 10_000 }, async () => {
    const o = new Objects();
    const hub = o.add(new Dispatcher(o.context('Dispatcher', {})));
    const [a, b, c] = [o.port(hub), o.port(hub), o.port(hub)];
    const [sa, sb, sc] = [0, 1, 2].map(() => new CaptureSink(o.context('CaptureSink', {}), [PCMU]));
    a!.connectTo(sa!, undefined);
    b!.connectTo(sb!, 'AUDIO');
    c!.connectTo(sc!, undefined);
    assert.deepEqual(await hub.invoke('getChildren', {}), [a!.id, b!.id, c!.id]);

    // nothing routed: A's packets are dropped (counted), nobody receives
    a!.deliverFromPipeline(rtp(1, marked(1, 1)), PCMU);
    assert.deepEqual([sa!.got.length, sb!.got.length, sc!.got.length], [0, 0, 0]);
    assert.equal((a!.describeForStats() as { packetsUnrouted: number }).packetsUnrouted, 1);

    await hub.invoke('connect', { source: a!.id, sink: b!.id });
    const sent = [2, 3, 4].map((n) => rtp(n, marked(1, n)));
    for (const p of sent) a!.deliverFromPipeline(p, PCMU);
    assert.equal(sb!.got.length, 3, 'B hears A');
    assert.deepEqual([sa!.got.length, sc!.got.length], [0, 0], 'only B');
    sb!.got.forEach((g, i) => {
      assert.equal(g.packet, sent[i], 'one sink: the very packet, not a copy');
      assert.deepEqual(g.payload, marked(1, i + 2), 'byte-exact');
      assert.equal(g.codec, PCMU);
    });
    assert.deepEqual(o.flowOut(b!.id), ['FLOWING']);

    // the other direction is a connect of its own
    await hub.invoke('connect', { source: b!.id, sink: a!.id });
    b!.deliverFromPipeline(rtp(1, marked(2, 1)), PCMU);
    assert.deepEqual(sa!.got.map((g) => g.payload), [marked(2, 1)]);
    assert.equal(sb!.got.length, 3, 'B does not hear itself');

    // connecting B to another source moves it
    await hub.invoke('connect', { source: c!.id, sink: b!.id });
    a!.deliverFromPipeline(rtp(5, marked(1, 5)), PCMU);
    assert.equal(sb!.got.length, 3, 'B was moved to C: A no longer reaches it');
    c!.deliverFromPipeline(rtp(1, marked(3, 1)), PCMU);
    assert.deepEqual(sb!.got.at(-1)!.payload, marked(3, 1), 'B hears C now');
    await hub.invoke('connect', { source: c!.id, sink: c!.id });
    await hub.invoke('connect', { source: c!.id, sink: a!.id });
    const fromC = rtp(2, marked(3, 2));
    c!.deliverFromPipeline(fromC, PCMU);
    assert.deepEqual([sa!.got.at(-1)!.payload, sb!.got.at(-1)!.payload, sc!.got.at(-1)!.payload], [marked(3, 2), marked(3, 2), marked(3, 2)], 'one source, three ports (itself included)');
    assert.equal([sa!.got.at(-1)!.packet, sb!.got.at(-1)!.packet, sc!.got.at(-1)!.packet].filter((p) => p === fromC).length, 1, 'each sink its own buffer, the last the original');
    assert.deepEqual(hub.describeForStats().routes, { [a!.id]: c!.id, [b!.id]: c!.id, [c!.id]: c!.id });

    // errors, as KMS answers them
    const other = o.add(new Dispatcher(o.context('Dispatcher', {})));
    const foreign = o.port(other);
    await assert.rejects(hub.invoke('connect', { source: foreign.id, sink: a!.id }), kurentoCode(40004, /Can not connect ports/), 'a port of another hub');
    await assert.rejects(hub.invoke('connect', { source: a!.id, sink: foreign.id }), kurentoCode(40004));
    await assert.rejects(hub.invoke('connect', { source: a!.id, sink: sa!.id }), kurentoCode(40101), 'not registered: not found');
    o.add(sa!);
    await assert.rejects(hub.invoke('connect', { source: a!.id, sink: sa!.id }), kurentoCode(40001, /should be a HubPort/), 'another kind of object');
    await assert.rejects(hub.invoke('connect', { source: a!.id }), kurentoCode(40001, /'sink' parameter/));
    await assert.rejects(hub.invoke('connect', { source: 7, sink: a!.id }), kurentoCode(40001, /'source' parameter/));
    await assert.rejects(hub.invoke('connect', { source: 'pipe/nothing', sink: a!.id }), kurentoCode(40101));
    await assert.rejects(hub.invoke('disconnect', { sink: a!.id }), /not found/, 'a hub has no MediaElement disconnect');

    // the source port released: every port it fed stops (NOT_FLOWING at once), nothing throws
    const before = sb!.got.length;
    await c!.teardown({ notifyPeer: false });
    assert.equal(o.flowOut(b!.id).at(-1), 'NOT_FLOWING');
    assert.equal(o.flowOut(a!.id).at(-1), 'NOT_FLOWING');
    assert.deepEqual(hub.describeForStats().routes, {});
    b!.deliverFromPipeline(rtp(9, marked(2, 9)), PCMU); // B feeds nobody
    assert.equal(sb!.got.length, before);
    await hub.invoke('connect', { source: b!.id, sink: a!.id });
    b!.deliverFromPipeline(rtp(10, marked(2, 10)), PCMU);
    assert.deepEqual(sa!.got.at(-1)!.payload, marked(2, 10), 'a fresh connect works after the release');

    for (const e of [hub, other, a!, b!, foreign, sa!, sb!, sc!]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0, 'no timer outlives the hub');
  });

  test('forwarding ports: MediaFlowOut goes NOT_FLOWING 2-4 s after the last packet; a sink that negotiated only the other law gets it converted', { timeout: 10_000 }, async () => {
    const o = new Objects();
    const hub = o.add(new Dispatcher(o.context('Dispatcher', {})));
    const [a, b] = [o.port(hub), o.port(hub)];
    const onlyA = new CaptureSink(o.context('CaptureSink', {}), [PCMA, 'telephone-event/8000']);
    const both = new CaptureSink(o.context('CaptureSink', {}), [PCMA, PCMU]);
    const onlyU = new CaptureSink(o.context('CaptureSink', {}), [PCMU]);
    for (const s of [onlyA, both, onlyU]) b!.connectTo(s, 'AUDIO');
    await hub.invoke('connect', { source: a!.id, sink: b!.id });
    const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const p = rtp(1, payload);
    a!.deliverFromPipeline(p, PCMU);
    assert.equal(onlyA.got[0]!.codec, PCMA, 'converted for the A-law-only sink');
    const expected = Buffer.from(Array.from({ length: 256 }, (_, i) => {
      const out = Buffer.alloc(1);
      encodeG711('alaw', Int16Array.of(MULAW_TO_LINEAR[i]!), 0, 1, out, 0);
      return out[0]!;
    }));
    assert.deepEqual(onlyA.got[0]!.payload, expected, 'each µ-law byte as the A-law byte of its sample');
    assert.ok(ALAW_TO_LINEAR.every((_, i) => Math.abs(ALAW_TO_LINEAR[expected[i]!]! - MULAW_TO_LINEAR[i]!) <= Math.max(16, Math.abs(MULAW_TO_LINEAR[i]!) / 16)), 'the conversion keeps each sample within a quantisation step');
    assert.deepEqual([both.got[0]!.codec, both.got[0]!.payload], [PCMU, payload], 'a sink with both laws gets the original bytes');
    assert.deepEqual([onlyU.got[0]!.codec, onlyU.got[0]!.payload], [PCMU, payload]);
    const ev = rtp(2, Buffer.from([1, 0x8a, 0, 160]), 101);
    a!.deliverFromPipeline(ev, 'telephone-event/8000');
    assert.deepEqual(onlyA.got.at(-1)!.payload, Buffer.from([1, 0x8a, 0, 160]), 'telephone-events forwarded as they are');
    assert.equal(b!.describeForStats().packetsTranscoded, 1);
    assert.equal(transcodeG711InPlace(Buffer.from(ev), 'telephone-event/8000'), false);

    assert.deepEqual(o.flowOut(b!.id), ['FLOWING']);
    assert.equal(await b!.invoke('isMediaFlowingOut', { mediaType: 'AUDIO' }), true);
    o.clock.advance(4100);
    assert.deepEqual(o.flowOut(b!.id), ['FLOWING', 'NOT_FLOWING'], 'NOT_FLOWING once nothing was forwarded for a check interval');
    assert.equal(await b!.invoke('isMediaFlowingOut', { mediaType: 'AUDIO' }), false);
    assert.equal(o.clock.pending(), 0, 'the watch stops with the flow');
    a!.deliverFromPipeline(rtp(3, payload), PCMU);
    assert.deepEqual(o.flowOut(b!.id).at(-1), 'FLOWING', 'and FLOWING again with the next packet');
    for (const e of [hub, a!, b!, onlyA, both, onlyU]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });

  test('DispatcherOneToMany: the source reaches every port (itself included), late ports too; setSource switches; removeSource and the source\'s release stop it', { timeout: 10_000 }, async () => {
    const o = new Objects();
    const hub = o.add(new DispatcherOneToMany(o.context('DispatcherOneToMany', {})));
    const ports = [o.port(hub), o.port(hub), o.port(hub)];
    const sinks = ports.map((p) => {
      const s = new CaptureSink(o.context('CaptureSink', {}), [PCMU]);
      p.connectTo(s, undefined);
      return s;
    });
    const count = () => sinks.map((s) => s.got.length);
    ports[0]!.deliverFromPipeline(rtp(1, marked(0, 1)), PCMU);
    assert.deepEqual(count(), [0, 0, 0], 'no source yet: nothing');

    await hub.invoke('setSource', { source: ports[0]!.id });
    ports[0]!.deliverFromPipeline(rtp(2, marked(0, 2)), PCMU);
    ports[1]!.deliverFromPipeline(rtp(1, marked(1, 1)), PCMU);
    assert.deepEqual(count(), [1, 1, 1], 'the source to every port; another port\'s input to nobody');
    assert.ok(sinks.every((s) => s.got[0]!.payload.equals(marked(0, 2))));

    // a port created now gets the source at once
    const late = o.port(hub);
    const lateSink = new CaptureSink(o.context('CaptureSink', {}), [PCMU]);
    late.connectTo(lateSink, undefined);
    ports[0]!.deliverFromPipeline(rtp(3, marked(0, 3)), PCMU);
    assert.deepEqual([...count(), lateSink.got.length], [2, 2, 2, 1]);

    // setSource switches
    await hub.invoke('setSource', { source: ports[1]!.id });
    ports[0]!.deliverFromPipeline(rtp(4, marked(0, 4)), PCMU);
    ports[1]!.deliverFromPipeline(rtp(2, marked(1, 2)), PCMU);
    assert.deepEqual([...count(), lateSink.got.length], [3, 3, 3, 2]);
    assert.ok([...sinks, lateSink].every((s) => s.got.at(-1)!.payload.equals(marked(1, 2))), 'everybody hears the new source, nobody the old');
    assert.equal(hub.describeForStats().source, ports[1]!.id);

    // removeSource: nothing flows out of any port
    await hub.invoke('removeSource', {});
    ports[1]!.deliverFromPipeline(rtp(3, marked(1, 3)), PCMU);
    assert.deepEqual([...count(), lateSink.got.length], [3, 3, 3, 2]);
    assert.ok(ports.every((p) => o.flowOut(p.id).at(-1) === 'NOT_FLOWING'));
    await hub.invoke('removeSource', {}); // no source: still fine

    // the source port released: as removeSource, without errors
    await hub.invoke('setSource', { source: ports[2]!.id });
    ports[2]!.deliverFromPipeline(rtp(1, marked(2, 1)), PCMU);
    assert.deepEqual([...count(), lateSink.got.length], [4, 4, 4, 3]);
    await ports[2]!.teardown({ notifyPeer: false });
    assert.equal(hub.describeForStats().source, null);
    assert.equal(o.flowOut(ports[0]!.id).at(-1), 'NOT_FLOWING');
    ports[0]!.deliverFromPipeline(rtp(9, marked(0, 9)), PCMU);
    assert.deepEqual([sinks[0]!.got.length, sinks[1]!.got.length, lateSink.got.length], [4, 4, 3]);

    const other = o.add(new Dispatcher(o.context('Dispatcher', {})));
    const foreign = o.port(other);
    await assert.rejects(hub.invoke('setSource', { source: foreign.id }), kurentoCode(40004));
    await assert.rejects(hub.invoke('setSource', { source: ports[2]!.id }), kurentoCode(40101), 'a released port');
    await assert.rejects(hub.invoke('setSource', {}), kurentoCode(40001));
    await assert.rejects(hub.invoke('connect', { source: ports[0]!.id, sink: ports[1]!.id }), /not found/, 'no Dispatcher.connect on a DispatcherOneToMany');
    for (const e of [hub, other, ...ports, late, foreign, ...sinks, lateSink]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });

  test('Mixer: each port hears the exact sum of the ports selected for it, nothing without a selection; errors as KMS', { timeout: 10_000 }, async () => {
    const o = new Objects();
    const hub = o.add(new Mixer(o.context('Mixer', {})));
    const [a, b, c, sup] = [o.port(hub), o.port(hub), o.port(hub), o.port(hub)];
    const sinks = [a, b, c, sup].map((p) => {
      const s = new CaptureSink(o.context('CaptureSink', {}), [PCMU]);
      p!.connectTo(s, undefined);
      return s;
    });
    const levels = [0xe0, 0xd0, 0xc0];
    const speak = (frames: number) => {
      for (let f = 0; f < frames; f++) {
        [a, b, c].forEach((p, i) => p!.deliverFromPipeline(rtp(seq, Buffer.alloc(FRAME_SAMPLES, levels[i]!), 0, 10 + i), PCMU));
        seq++;
        o.clock.advance(20);
      }
    };
    let seq = 0;
    speak(5);
    assert.ok(sinks.every((s) => s.got.length === 0), 'no port has a source: nothing is sent');

    await hub.invoke('connect', { media: 'AUDIO', source: a!.id, sink: sup!.id });
    await hub.invoke('connect', { media: 'AUDIO', source: b!.id, sink: sup!.id });
    await hub.invoke('connect', { media: 'AUDIO', source: a!.id, sink: sup!.id }); // again: no double
    await hub.invoke('connect', { media: 'AUDIO', source: b!.id, sink: a!.id });
    await hub.invoke('connect', { media: 'VIDEO', source: c!.id, sink: sup!.id }); // accepted, audio unchanged
    speak(10 + DELAY_FRAMES);
    const expect = (...codes: number[]) => {
      const out = Buffer.alloc(1);
      encodeG711('mulaw', Int16Array.of(codes.reduce((s, x) => s + MULAW_TO_LINEAR[x]!, 0)), 0, 1, out, 0);
      return out[0]!;
    };
    const last = (s: CaptureSink) => s.got.at(-1)!.payload;
    assert.ok(last(sinks[3]!).every((x) => x === expect(levels[0]!, levels[1]!)), 'the supervisor hears A + B exactly');
    assert.ok(last(sinks[0]!).every((x) => x === expect(levels[1]!)), 'A hears B only');
    assert.equal(sinks[1]!.got.length, 0, 'B has no source: nothing');
    assert.equal(sinks[2]!.got.length, 0);
    const n = sinks[3]!.got.length;
    assert.ok(n >= 10 && n <= 11 + DELAY_FRAMES, `one packet per 20 ms once selected: ${n}`);
    assert.deepEqual(sup!.describeForStats().mixSources, [a!.id, b!.id]);

    await hub.invoke('disconnect', { media: 'AUDIO', source: a!.id, sink: sup!.id });
    speak(DELAY_FRAMES + 1);
    assert.ok(last(sinks[3]!).every((x) => x === expect(levels[1]!)), 'after disconnect the supervisor hears B only');
    await hub.invoke('disconnect', { media: 'AUDIO', source: b!.id, sink: a!.id });
    const aCount = sinks[0]!.got.length;
    assert.equal(o.flowOut(a!.id).at(-1), 'NOT_FLOWING', 'its last source gone, the port stops at once');
    speak(3);
    assert.equal(sinks[0]!.got.length, aCount);

    await assert.rejects(hub.invoke('disconnect', { media: 'AUDIO', source: a!.id, sink: sup!.id }), kurentoCode(40004), 'not connected');
    await assert.rejects(hub.invoke('disconnect', { media: 'VIDEO', source: c!.id, sink: sup!.id }), kurentoCode(40005, /Video disconnection is not implemented yet/));
    await assert.rejects(hub.invoke('connect', { media: 'DATA', source: c!.id, sink: sup!.id }), kurentoCode(40005, /Invalid media type/));
    await assert.rejects(hub.invoke('connect', { media: 'SOUND', source: c!.id, sink: sup!.id }), kurentoCode(40001));
    await assert.rejects(hub.invoke('connect', { source: c!.id, sink: sup!.id }), kurentoCode(40001, /'media' parameter/));
    const other = o.add(new Composite(o.context('Composite', {})));
    const foreign = o.port(other);
    await assert.rejects(hub.invoke('connect', { media: 'AUDIO', source: foreign.id, sink: sup!.id }), kurentoCode(40004));

    // a source released: the ports that heard only it stop
    await hub.invoke('connect', { media: 'AUDIO', source: c!.id, sink: b!.id });
    speak(2);
    await c!.teardown({ notifyPeer: false });
    assert.equal(o.flowOut(b!.id).at(-1), 'NOT_FLOWING');
    const bCount = sinks[1]!.got.length;
    speak(2);
    assert.equal(sinks[1]!.got.length, bCount);

    const extra = [];
    for (let i = hub.portCount; i < MAX_MIXER_PORTS; i++) extra.push(o.port(hub));
    assert.throws(() => o.port(hub), kurentoCode(40009, /a Mixer mixes at most 32 HubPorts/));
    for (const e of [hub, other, a!, b!, sup!, foreign, ...extra, ...sinks]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });

  test('AlphaBlending mixes audio N-1 like a Composite; setMaster and setPortProperties check their parameters', { timeout: 10_000 }, async () => {
    const o = new Objects();
    const hub = o.add(new AlphaBlending(o.context('AlphaBlending', {})));
    const ports = [o.port(hub), o.port(hub), o.port(hub)];
    const sinks = ports.map((p) => {
      const s = new CaptureSink(o.context('CaptureSink', {}), [PCMU]);
      p.connectTo(s, undefined);
      return s;
    });
    const levels = [0xe0, 0xd0, 0xc0];
    for (let f = 0; f < 5 + DELAY_FRAMES; f++) {
      ports.forEach((p, i) => p.deliverFromPipeline(rtp(f, Buffer.alloc(FRAME_SAMPLES, levels[i]!), 0, 20 + i), PCMU));
      o.clock.advance(20);
    }
    sinks.forEach((s, i) => {
      const sum = levels.reduce((acc, x, j) => (j === i ? acc : acc + MULAW_TO_LINEAR[x]!), 0);
      const out = Buffer.alloc(1);
      encodeG711('mulaw', Int16Array.of(sum), 0, 1, out, 0);
      assert.ok(s.got.at(-1)!.payload.every((x) => x === out[0]), `port ${i} hears the two others exactly`);
    });
    await hub.invoke('setMaster', { source: ports[0]!.id, zOrder: 1 });
    await hub.invoke('setPortProperties', { relativeX: 0.5, relativeY: 0, zOrder: 2, relativeWidth: 0.25, relativeHeight: 1, port: ports[1]!.id });
    assert.equal(hub.describeForStats().master, ports[0]!.id);
    await assert.rejects(hub.invoke('setMaster', { source: ports[0]!.id, zOrder: 1.5 }), kurentoCode(40001, /'zOrder'/));
    await assert.rejects(hub.invoke('setMaster', { zOrder: 1 }), kurentoCode(40001, /'source'/));
    await assert.rejects(hub.invoke('setPortProperties', { relativeX: 'left', relativeY: 0, zOrder: 2, relativeWidth: 0.25, relativeHeight: 1, port: ports[1]!.id }), kurentoCode(40001, /'relativeX'/));
    await assert.rejects(hub.invoke('setPortProperties', { relativeX: 0, relativeY: 0, zOrder: 2, relativeWidth: 0.25, relativeHeight: 1 }), kurentoCode(40001, /'port'/));
    for (let i = 3; i < MAX_MIXER_PORTS; i++) ports.push(o.port(hub));
    assert.throws(() => o.port(hub), kurentoCode(40009, /an? AlphaBlending mixes at most 32/));
    for (const e of [hub, ...ports, ...sinks]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });

  test('fuzz: 20 000 random packets through a dispatcher port with a PCMU, a PCMA-only and a two-law sink never throw', { timeout: 10_000 }, async () => {
    const random = rng(0xd15);
    const o = new Objects();
    const hub = o.add(new Dispatcher(o.context('Dispatcher', {})));
    const [a, b] = [o.port(hub), o.port(hub)];
    const sinks = [[PCMU], [PCMA], [PCMA, PCMU]].map((k) => new CaptureSink(o.context('CaptureSink', {}), k));
    for (const s of sinks) b!.connectTo(s, 'AUDIO');
    await hub.invoke('connect', { source: a!.id, sink: b!.id });
    for (let i = 0; i < 20_000; i++) {
      const p = Buffer.alloc(Math.floor(random() * 400));
      for (let j = 0; j < p.length; j++) p[j] = Math.floor(random() * 256);
      if (p.length > 0 && random() < 0.7) p[0] = 0x80 | (p[0]! & 0x3f);
      a!.deliverFromPipeline(p, random() < 0.5 ? PCMU : PCMA);
    }
    assert.ok(sinks.every((s) => s.got.length === 20_000), 'every packet to every sink');
    const stats = b!.describeForStats() as { packetsForwarded: number; packetsTranscoded: number };
    assert.equal(stats.packetsForwarded, 20_000);
    assert.ok(stats.packetsTranscoded > 5_000, `the PCMU packets were converted for the PCMA-only sink: ${stats.packetsTranscoded}`);
    for (const e of [hub, a!, b!, ...sinks]) await e.teardown({ notifyPeer: false });
    assert.equal(o.clock.pending(), 0);
  });

  test('FrameSchedule: a late timer runs the missed frames (up to 10), later than that the run restarts (a gap, no burst)', { timeout: 5_000 }, () => {
    let now = 1_000;
    let tick: (() => void) | undefined;
    const clock: Clock = {
      now: () => now,
      setTimeout: () => ({ cancel: () => undefined }) as TimerHandle,
      setInterval: (fn) => {
        tick = fn;
        return { cancel: () => (tick = undefined) } as TimerHandle;
      },
    };
    let frames = 0;
    const schedule = new FrameSchedule(clock, () => frames++);
    schedule.start();
    now += 20;
    tick!();
    assert.equal(frames, 1);
    now += 100; // five frames late: all five run now
    tick!();
    assert.equal(frames, 6);
    now += 20 * 30; // thirty frames late: one frame, the run restarts
    tick!();
    assert.deepEqual([frames, schedule.restarts], [7, 1]);
    now += 20;
    tick!();
    assert.equal(frames, 8, 'and goes on at 20 ms from there');
    schedule.stop();
    assert.equal(tick, undefined);
    assert.equal(schedule.running, false);
  });
});
