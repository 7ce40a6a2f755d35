import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { encodeG711, MULAW_TO_LINEAR } from '../../src/media/media-files/g711';
import { parseWav } from '../../src/media/media-files/wav-format';
import { MediaElement } from '../../src/media/objects/media-element';
import type { ElementContext } from '../../src/media/objects/object-context';
import { PlayerEndpoint } from '../../src/media/objects/player-endpoint';
import { RecorderEndpoint } from '../../src/media/objects/recorder-endpoint';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { dominantFrequency, rms, sineSamples } from '../helpers/audio-tone';
import { pollUntil } from '../helpers/wait-for';

/**
 * PlayerEndpoint pacing and RecorderEndpoint placement on a FakeClock: exact packet counts per time,
 * codec per sink, pause/resume timestamps and marker, EndOfStream at the media's length, no timer left;
 * a recording placed by RTP timestamps (jitter inserts no silence, a loss leaves exactly its length,
 * paused time is left out, a flood cannot grow the file faster than time, a new SSRC is placed at the clock).
 */

interface Emitted {
  type: string;
  data: Record<string, unknown>;
}

let nextId = 0;
function context(clock: FakeClock, dir: string, type: string, params: Record<string, unknown>, events: Emitted[]): ElementContext {
  return {
    id: `pipe/${nextId++}_kurento.${type}`,
    pipelineId: 'pipe',
    constructorParams: params,
    host: { emitEvent: (_id, t, data) => events.push({ type: t, data }), lookup: () => undefined, legEnded: () => undefined },
    clock,
    config: loadMediaConfig({ port: 0, mediaFiles: { dir, maxFileBytes: 1_000_000, httpTimeoutMs: 1000 } }, {}),
    ports: new PortAllocator('127.0.0.1', 0, 0),
    logger: createLogger('test.media-files'),
  };
}

/** A sink that keeps what a player delivers, with the codecs it says it negotiated. */
class CaptureSink extends MediaElement {
  readonly got: { codec: string; pt: number; seq: number; ts: number; marker: boolean; payload: Buffer }[] = [];
  constructor(ctx: ElementContext, private readonly keys: string[]) {
    super(ctx, 'CaptureSink');
  }
  override negotiatedCodecKeys(): string[] {
    return this.keys;
  }
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    this.got.push({ codec, pt: packet[1]! & 0x7f, seq: packet.readUInt16BE(2), ts: packet.readUInt32BE(4), marker: (packet[1]! & 0x80) !== 0, payload: packet.subarray(12) });
  }
}

function rtp(seq: number, ts: number, ssrc: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc, 8);
  payload.copy(b, 12);
  return b;
}

function tonePayload(hz: number, from: number): Buffer {
  const b = Buffer.alloc(160);
  encodeG711('mulaw', sineSamples(hz, 8000, 160, 0.5, from), 0, 160, b, 0);
  return b;
}

describe('media: PlayerEndpoint and RecorderEndpoint on a fake clock', () => {
  test('player: one 20 ms packet per tick in each sink\'s codec, pause keeps the place, EndOfStream after 1 s of media, no timer left', { timeout: 10_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-player-clock-'));
    try {
      const tone = Buffer.alloc(8000);
      encodeG711('mulaw', sineSamples(500, 8000, 8000), 0, 8000, tone, 0);
      writeFileSync(path.join(dir, 'tone.ul'), tone);
      const clock = new FakeClock();
      const events: Emitted[] = [];
      const player = new PlayerEndpoint(context(clock, dir, 'PlayerEndpoint', { uri: 'tone.ul' }, events));
      const alaw = new CaptureSink(context(clock, dir, 'CaptureSink', {}, []), ['pcma/8000', 'telephone-event/8000']);
      const ulaw = new CaptureSink(context(clock, dir, 'CaptureSink', {}, []), []);
      player.connectTo(alaw, undefined);
      player.connectTo(ulaw, 'AUDIO');
      await player.invoke('play', {});
      await pollUntil(() => ulaw.got.length > 0, { timeoutMs: 3000, what: 'the media loaded and the first packet sent' });
      assert.equal(ulaw.got.length, 1, 'the first packet at once');
      for (let i = 0; i < 10; i++) clock.advance(20);
      assert.equal(ulaw.got.length, 11, 'then one per 20 ms');
      assert.equal(alaw.got.length, 11);
      assert.ok(alaw.got.every((p) => p.codec === 'pcma/8000' && p.pt === 8));
      assert.ok(ulaw.got.every((p) => p.codec === 'pcmu/8000' && p.pt === 0));
      assert.deepEqual(ulaw.got[0]!.payload, tone.subarray(0, 160), 'the file\'s bytes, as they are (µ-law in, µ-law out)');
      await player.invoke('pause', {});
      const atPause = ulaw.got.length;
      clock.advance(1000);
      assert.equal(ulaw.got.length, atPause, 'nothing while paused (positive control: 11 packets in the 200 ms before)');
      assert.equal(await player.invoke('getPosition', {}), 220);
      await player.invoke('play', {});
      const resumed = ulaw.got[atPause]!;
      assert.ok(resumed.marker, 'marker after the pause');
      assert.equal(resumed.ts - ulaw.got[atPause - 1]!.ts, 8000, 'RTP time ran on through the pause: 1 s between the two packets');
      assert.deepEqual(resumed.payload, tone.subarray(220 * 8, 220 * 8 + 160), 'resumed where it paused');
      player.disconnectFrom(alaw, undefined);
      clock.advance(2000);
      assert.equal(ulaw.got.length, 50, '1 s of media = 50 packets, no more');
      assert.equal(alaw.got.length, atPause + 1, 'a disconnected sink gets nothing more');
      assert.deepEqual(events.filter((e) => e.type === 'EndOfStream').length, 1);
      assert.deepEqual(events.filter((e) => e.type === 'UriEndpointStateChanged').map((e) => e.data.state), ['START', 'PAUSE', 'START', 'STOP']);
      assert.equal(dominantFrequency(Array.from(Buffer.concat(ulaw.got.map((p) => p.payload)), (b) => MULAW_TO_LINEAR[b]!), 8000, 10).hz, 500);
      await player.teardown({ notifyPeer: false });
      await alaw.teardown({ notifyPeer: false });
      await ulaw.teardown({ notifyPeer: false });
      assert.equal(clock.pending(), 0, 'no timer outlives the elements');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('recorder: placed by RTP timestamps — jitter adds no silence, a loss leaves its exact length, pause is left out, a flood is capped, a new SSRC starts at the clock', { timeout: 10_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-recorder-clock-'));
    try {
      const clock = new FakeClock();
      const events: Emitted[] = [];
      const rec = new RecorderEndpoint(context(clock, dir, 'RecorderEndpoint', { uri: 'r.wav' }, events));
      await rec.invoke('record', {});
      const ssrc = 0x1234;
      let seq = 0;
      let ts = 999_000;
      const send = (hz: number, s = ssrc) => {
        rec.deliverFromPipeline(rtp(seq++, ts, s, tonePayload(hz, ts)), 'pcmu/8000');
        ts += 160;
      };
      // 1 s on time
      for (let i = 0; i < 50; i++) {
        send(400);
        clock.advance(20);
      }
      // 300 ms of jitter: 15 packets late, then all at once
      clock.advance(300);
      for (let i = 0; i < 15; i++) send(400);
      // 500 ms lost: timestamps run on, nothing arrives
      ts += 25 * 160;
      seq += 25;
      clock.advance(500);
      for (let i = 0; i < 10; i++) {
        send(400);
        clock.advance(20);
      }
      // pause 5 s (left out), resume: a new stream placed at the clock
      await rec.invoke('pause', {});
      clock.advance(5000);
      await rec.invoke('record', {});
      ts += 123_456;
      for (let i = 0; i < 25; i++) {
        send(1000);
        clock.advance(20);
      }
      // a flood: 400 packets at once, with timestamps running far ahead
      for (let i = 0; i < 400; i++) send(1000);
      const stats = rec.describeForStats();
      assert.ok(Number(stats.packetsDroppedAhead) >= 340, `the flood was dropped: ${JSON.stringify(stats)}`);
      await rec.invoke('stopAndWait', {});
      const wav = parseWav(readFileSync(path.join(dir, 'r.wav')));
      const pcm = new Int16Array(wav.data.length / 2);
      for (let i = 0; i < pcm.length; i++) pcm[i] = wav.data.readInt16LE(i * 2);
      const recordingMs = 1000 + 300 + 500 + 200 + 500;
      const ms = (pcm.length * 1000) / 8000;
      assert.ok(ms >= recordingMs && ms <= recordingMs + 1000 + 20, `length ${ms} ms: the recording time, plus at most the 1 s a flood may run ahead`);
      const at = (t: number, len: number) => pcm.subarray(t * 8, (t + len) * 8);
      assert.ok(rms(at(1000, 280)) > 5000, 'the jittered packets follow the first second without silence between');
      assert.ok(rms(at(1320, 480)) === 0, 'the lost 500 ms are silence');
      assert.ok(rms(at(1810, 180)) > 5000, 'audio again after the loss');
      assert.equal(dominantFrequency(at(2000, 480), 8000, 10).hz, 1000, 'after the resume, at the clock: no 5 s hole');
      assert.deepEqual(events.filter((e) => ['Recording', 'Paused', 'Stopped'].includes(e.type)).map((e) => e.type), ['Recording', 'Paused', 'Recording', 'Stopped']);
      await rec.teardown({ notifyPeer: false });
      assert.equal(clock.pending(), 0, 'no timer left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
