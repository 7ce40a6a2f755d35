import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ALAW_TO_LINEAR, encodeG711, MULAW_TO_LINEAR, type G711Law } from '../../src/media/media-files/g711';
import { dominantFrequency, sineSamples } from '../helpers/audio-tone';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { MediaServerProcess } from '../helpers/media-server-process';
import { pollUntil } from '../helpers/wait-for';

/**
 * PlayerEndpoint and RecorderEndpoint driven by the real kurento-client against a real `bin/ferry media`:
 * tone WAV files made by sox are played through an RtpEndpoint to a real RTP peer, which decodes the
 * G.711 it receives and finds the tone (Goertzel); a peer's tone is recorded and the WAV checked by sox
 * (format, duration within 5 % of the recording time, frequency); release, SIGTERM and SIGKILL in the
 * middle of a recording still leave a valid WAV; hostile URIs get nothing; /stats back to zero.
 */

function sox(args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync('sox', args, { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`sox ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** What sox says about a WAV file: format, duration, rough frequency, and its samples decoded by sox. */
function soxInspect(file: string): { rate: number; channels: number; encoding: string; bits: number; seconds: number; roughHz: number; samples: Int16Array } {
  const info = (flag: string) => sox(['--i', flag, file]).stdout.trim();
  const stat = sox([file, '-n', 'stat']).stderr;
  const raw = Buffer.from(sox([file, '-t', 's16', '-r', '8000', '-c', '1', '-']).stdout, 'latin1');
  const samples = new Int16Array(raw.length / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = raw.readInt16LE(i * 2);
  return {
    rate: Number(info('-r')),
    channels: Number(info('-c')),
    encoding: info('-e'),
    bits: Number(info('-b')),
    seconds: Number(info('-D')),
    roughHz: Number(/Rough\s+frequency:\s+(\d+)/.exec(stat)?.[1] ?? NaN),
    samples,
  };
}

function decode(law: G711Law, payloads: Buffer[]): Int16Array {
  const table = law === 'mulaw' ? MULAW_TO_LINEAR : ALAW_TO_LINEAR;
  const all = Buffer.concat(payloads);
  const out = new Int16Array(all.length);
  for (let i = 0; i < all.length; i++) out[i] = table[all[i]!]!;
  return out;
}

/** Sends `ms` of a tone as 20 ms G.711 packets paced by the wall clock; resolves after the last one. */
function sendTone(peer: RtpTestPeer, hz: number, ms: number, law: G711Law = 'mulaw'): { done: Promise<void>; stop: () => void; sent: () => number } {
  const total = ms / 20;
  let sent = 0;
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((Date.now() - t0) / 20) + 1);
      for (; sent < due; sent++) {
        const b = Buffer.alloc(160);
        encodeG711(law, sineSamples(hz, 8000, 160, 0.5, sent * 160), 0, 160, b, 0);
        peer.send(law === 'mulaw' ? 0 : 8, b);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    timer = setInterval(tick, 5);
    tick();
  });
  return { done, stop: () => clearInterval(timer), sent: () => sent };
}

interface Seen {
  type: string;
  data: Record<string, unknown>;
}

function collect(obj: KurentoObjectLike, types: string[]): Seen[] {
  const seen: Seen[] = [];
  for (const type of types) obj.on(type, (data) => seen.push({ type, data }));
  return seen;
}

/** How much audio ferry media's /stats says a RecorderEndpoint has put in its file (ms). */
async function recordedMs(server: MediaServerProcess, recorderId: string): Promise<number> {
  const stats = await server.stats();
  for (const p of (stats.pipelinesDetail ?? []) as { elements: { id: string; recordedMs?: number }[] }[]) {
    for (const e of p.elements) if (e.id === recorderId) return e.recordedMs ?? 0;
  }
  return 0;
}

/**
 * The WAV's length must be the recording time within 5 %: the time is known to lie between `shortestMs`
 * (from the answer to record to the request that ended it) and `longestMs` (from that request's sending
 * to the end being done), so control-channel latency on a loaded machine does not count against it.
 */
function assertRecordingLength(seconds: number, shortestMs: number, longestMs: number, what: string): void {
  const ms = seconds * 1000;
  assert.ok(ms >= shortestMs * 0.95 && ms <= longestMs * 1.05, `${what}: ${ms} ms in the WAV, recording time between ${shortestMs} and ${longestMs} ms`);
}

function kurentoCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

describe('media: PlayerEndpoint and RecorderEndpoint through kurento-client', { timeout: 90_000 }, () => {
  let dir: string;
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  let web: http.Server;
  let webBase = '';
  const peers: RtpTestPeer[] = [];
  const extraServers: MediaServerProcess[] = [];
  const env = () => ({ FERRY_MEDIA_FILES_DIR: dir, FERRY_MEDIA_FILE_MAX_BYTES: '200000', FERRY_MEDIA_HTTP_TIMEOUT_MS: '800' });

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-media-files-'));
    // 1.5 s of 1 kHz at 16 kHz 16-bit (resampled by ferry), 1 s of 440 Hz as an 8 kHz µ-law WAV
    sox(['-n', '-r', '16000', '-b', '16', '-c', '1', '-e', 'signed-integer', path.join(dir, 'tone-1k.wav'), 'synth', '1.5', 'sine', '1000', 'vol', '0.5']);
    sox(['-n', '-r', '8000', '-c', '1', '-e', 'u-law', path.join(dir, 'tone-440-ulaw.wav'), 'synth', '1', 'sine', '440', 'vol', '0.5']);
    writeFileSync(path.join(dir, 'not-audio.wav'), 'this is a text file, not a WAV file\n');
    symlinkSync('/etc/hostname', path.join(dir, 'escape.wav'));
    web = http.createServer((req, res) => {
      if (req.url === '/tone.wav') {
        res.writeHead(200, { 'content-type': 'audio/wav' });
        res.end(readFileSync(path.join(dir, 'tone-1k.wav')));
      } else if (req.url === '/huge.wav') {
        res.writeHead(200, { 'content-length': '300000' });
        res.write(Buffer.alloc(1000));
      } else if (req.url === '/endless.wav') {
        res.writeHead(200);
        const t = setInterval(() => res.write(Buffer.alloc(50_000)), 5);
        res.on('close', () => clearInterval(t));
      } else if (req.url === '/silent.wav') {
        // answers nothing: the fetch must time out
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
    webBase = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    server = await MediaServerProcess.start(env());
    client = await connectKurento(server.url);
  });

  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    await server?.stop();
    for (const s of extraServers) await s.stop();
    web?.closeAllConnections();
    await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A pipeline with an RtpEndpoint answering a test peer's offer (codecs as the peer offers them). */
  async function phoneLeg(codecs?: [number, string][]): Promise<{ pipeline: KurentoObjectLike; rtp: KurentoObjectLike; peer: RtpTestPeer; arrivals: number[] }> {
    const pipeline = await client.create('MediaPipeline');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    const arrivals: number[] = [];
    peer.socket.on('message', (m) => {
      if (m.length >= 12 && (m[1]! & 0x7f) < 64) arrivals.push(Date.now());
    });
    peer.useRemoteSdp(await call<string>(rtp, 'processOffer', peer.sdp(codecs ? { codecs } : {})));
    return { pipeline, rtp, peer, arrivals };
  }

  async function releaseAndCheckGone(pipeline: KurentoObjectLike): Promise<void> {
    await pipeline.release();
    await server.waitForPipelineGone(pipeline.id, 5000);
  }

  test('a 16 kHz WAV tone played into an RtpEndpoint: the peer gets 75 paced PCMU packets carrying 1 kHz, then EndOfStream', { timeout: 20_000 }, async () => {
    const { pipeline, rtp, peer, arrivals } = await phoneLeg();
    const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${dir}/tone-1k.wav` });
    const seen = collect(player, ['EndOfStream', 'UriEndpointStateChanged', 'MediaFlowOutStateChanged', 'Error']);
    await call(player, 'connect', rtp);
    const info = await call<Record<string, unknown>>(player, 'getVideoInfo');
    assert.equal(info.isSeekable, true);
    assert.equal(Number(info.duration), 1500);
    assert.equal(Number(info.seekableEnd), 1500);
    const playedAt = Date.now();
    await call(player, 'play');
    await pollUntil(() => seen.some((e) => e.type === 'EndOfStream'), { timeoutMs: 8000, what: 'EndOfStream' });
    const eosAt = Date.now();
    await pollUntil(() => peer.received.length >= 75, { timeoutMs: 2000, what: '75 packets at the peer' });
    assert.equal(peer.received.length, 75, '1.5 s = 75 packets of 20 ms');
    assert.ok(peer.received.every((p) => p.pt === 0 && p.payload.length === 160), 'PCMU, 160 bytes each');
    for (let i = 1; i < 75; i++) {
      assert.equal(peer.received[i]!.seq, (peer.received[i - 1]!.seq + 1) & 0xffff, 'consecutive sequence numbers');
      assert.equal(peer.received[i]!.ts, (peer.received[i - 1]!.ts + 160) >>> 0, 'timestamps 160 apart');
    }
    const spread = arrivals[arrivals.length - 1]! - arrivals[0]!;
    assert.ok(spread >= 1300 && spread <= 2500, `paced by the clock, not a burst: first to last ${spread} ms`);
    assert.ok(eosAt - playedAt >= 1400, `EndOfStream after the media's length (${eosAt - playedAt} ms)`);
    const tone = dominantFrequency(decode('mulaw', peer.received.map((p) => p.payload)), 8000, 10);
    assert.ok(Math.abs(tone.hz - 1000) <= 10 && tone.share > 0.5, `the peer hears 1 kHz: ${JSON.stringify(tone)}`);
    assert.deepEqual(seen.filter((e) => e.type === 'UriEndpointStateChanged').map((e) => e.data.state), ['START', 'STOP']);
    assert.deepEqual(seen.filter((e) => e.type === 'MediaFlowOutStateChanged').map((e) => e.data.state), ['FLOWING', 'NOT_FLOWING']);
    assert.equal(seen.filter((e) => e.type === 'Error').length, 0);
    assert.equal(await call(player, 'getState'), 'STOP');
    assert.equal(Number(await call(player, 'getPosition')), 0, 'back at the start after EndOfStream');
    assert.equal(await call(player, 'getUri'), `file://${dir}/tone-1k.wav`);
    // an application that adopts the pipeline (a second gateway) gets a PlayerEndpoint proxy from describe
    const adopted = await client.getMediaobjectById(player.id);
    assert.equal(typeof adopted.play, 'function');
    assert.equal(Number((await call<Record<string, unknown>>(adopted, 'getVideoInfo')).duration), 1500);
    await releaseAndCheckGone(pipeline);
  });

  test('PCMA towards a phone that offers only PCMA; pause keeps the position, setPosition seeks, play resumes to the end', { timeout: 20_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg([[8, 'PCMA/8000']]);
    const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: 'tone-440-ulaw.wav' });
    const seen = collect(player, ['EndOfStream', 'UriEndpointStateChanged']);
    await call(player, 'connect', rtp);
    await assert.rejects(call(player, 'setPosition', 100), (e: unknown) => kurentoCode(e) === 40700, 'no seek before the media is loaded');
    await call(player, 'play');
    await pollUntil(() => peer.received.length >= 10, { timeoutMs: 3000, what: '10 packets before the pause' });
    await call(player, 'pause');
    const pausedAt = Number(await call(player, 'getPosition'));
    const sentBeforePause = pausedAt / 20;
    assert.ok(pausedAt >= 200 && pausedAt < 1000, `position ${pausedAt} ms`);
    await assert.rejects(call(player, 'setPosition', 5000), (e: unknown) => kurentoCode(e) === 40700, 'past the end');
    await call(player, 'setPosition', 500);
    assert.equal(Number(await call(player, 'getPosition')), 500);
    await call(player, 'play');
    await pollUntil(() => seen.some((e) => e.type === 'EndOfStream'), { timeoutMs: 5000, what: 'EndOfStream' });
    await pollUntil(() => peer.received.length >= sentBeforePause + 25, { timeoutMs: 2000, what: 'the last packets' });
    // nothing was sent while paused: exactly the packets before the pause plus the 500 ms after the seek
    assert.equal(peer.received.length, sentBeforePause + 25);
    assert.ok(peer.received.every((p) => p.pt === 8), 'A-law, the codec the phone negotiated');
    const afterSeek = peer.received.slice(sentBeforePause);
    assert.ok(afterSeek[0]!.marker, 'marker bit on the first packet after the pause');
    const tone = dominantFrequency(decode('alaw', peer.received.map((p) => p.payload)), 8000, 10);
    assert.ok(Math.abs(tone.hz - 440) <= 10 && tone.share > 0.5, `440 Hz heard: ${JSON.stringify(tone)}`);
    assert.deepEqual(seen.filter((e) => e.type === 'UriEndpointStateChanged').map((e) => e.data.state), ['START', 'PAUSE', 'START', 'STOP']);
    await releaseAndCheckGone(pipeline);
  });

  test('an http:// URL is fetched and played; 404, a body above the size limit, an endless body and a server that never answers are Error events', { timeout: 20_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg();
    const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: `${webBase}/tone.wav` });
    const seen = collect(player, ['EndOfStream', 'Error']);
    await call(player, 'connect', rtp);
    await call(player, 'play');
    await pollUntil(() => seen.some((e) => e.type === 'EndOfStream'), { timeoutMs: 8000, what: 'EndOfStream of the fetched file' });
    await pollUntil(() => peer.received.length >= 75, { timeoutMs: 2000, what: '75 packets' });
    assert.equal(Math.abs(dominantFrequency(decode('mulaw', peer.received.map((p) => p.payload)), 8000, 10).hz - 1000) <= 10, true);
    const cases: [string, string, RegExp][] = [
      ['/missing.wav', 'INVALID_URI', /HTTP 404/],
      ['/huge.wav', 'INVALID_MEDIA', /FERRY_MEDIA_FILE_MAX_BYTES/],
      ['/endless.wav', 'INVALID_MEDIA', /FERRY_MEDIA_FILE_MAX_BYTES/],
      ['/silent.wav', 'INVALID_URI', /within 800 ms/],
    ];
    for (const [p, kind, why] of cases) {
      const bad = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: `${webBase}${p}` });
      const errors = collect(bad, ['Error']);
      await call(bad, 'play');
      const e = await pollUntil(() => errors[0], { timeoutMs: 5000, what: `Error event for ${p}` });
      assert.equal(e.data.type, kind, p);
      assert.match(String(e.data.description), why, p);
      assert.equal(e.data.errorCode, 0);
      assert.equal(e.data.source, bad.id);
      assert.equal(await call(bad, 'getState'), 'STOP', `${p}: stopped after the error`);
    }
    await releaseAndCheckGone(pipeline);
  });

  test('hostile or unusable URIs: outside the directory refused at create, a symlink out and a missing file are INVALID_URI, text is INVALID_MEDIA; recorder options ferry does not have are refused', { timeout: 15_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    for (const uri of ['file:///etc/hostname', `file://${dir}/../x.wav`, '../../etc/hostname', `file://${dir}/a%2F..%2F..%2Fetc%2Fhostname`]) {
      await assert.rejects(call(pipeline, 'create', 'PlayerEndpoint', { uri }), (e: unknown) => kurentoCode(e) === 40107, uri);
      await assert.rejects(call(pipeline, 'create', 'RecorderEndpoint', { uri }), (e: unknown) => kurentoCode(e) === 40107, uri);
    }
    await assert.rejects(call(pipeline, 'create', 'PlayerEndpoint', { uri: 'rtsp://camera/stream' }), (e: unknown) => kurentoCode(e) === 40006);
    // an http(s):// recorder URI is accepted, as on KMS (uploaded at the end: media-recorder-http-upload.test.ts)
    const uploadRecorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: `${webBase}/upload` });
    assert.equal(await call(uploadRecorder, 'getUri'), `${webBase}/upload`);
    await uploadRecorder.release();
    await assert.rejects(call(pipeline, 'create', 'RecorderEndpoint', { uri: 'r.webm', mediaProfile: 'WEBM_AUDIO_ONLY' }), (e: unknown) => kurentoCode(e) === 40006 && /WAV/.test(String((e as Error).message)));
    const cases: [string, string][] = [
      ['escape.wav', 'INVALID_URI'],
      ['missing.wav', 'INVALID_URI'],
      ['not-audio.wav', 'INVALID_MEDIA'],
    ];
    for (const [name, kind] of cases) {
      const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${dir}/${name}` });
      const errors = collect(player, ['Error']);
      await call(player, 'play');
      const e = await pollUntil(() => errors[0], { timeoutMs: 3000, what: `Error event for ${name}` });
      assert.equal(e.data.type, kind, name);
      assert.doesNotMatch(String(e.data.description), /hostname|\/etc/, 'nothing about the file behind the link');
      const info = await call<Record<string, unknown>>(player, 'getVideoInfo');
      assert.equal(info.isSeekable, false);
      assert.equal(Number(info.duration), -1);
    }
    await releaseAndCheckGone(pipeline);
  });

  test('a phone tone recorded (RtpEndpoint -> RecorderEndpoint): sox reads a 16-bit 8 kHz mono WAV as long as the recording, with the tone', { timeout: 20_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg();
    const file = path.join(dir, 'calls', 'rec-1.wav');
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: 'calls/rec-1.wav' });
    const seen = collect(recorder, ['Recording', 'Paused', 'Stopped', 'UriEndpointStateChanged', 'MediaFlowInStateChanged']);
    await call(rtp, 'connect', recorder);
    const sender = sendTone(peer, 700, 2400);
    const recordCalled = Date.now();
    await call(recorder, 'record');
    const recordingFrom = Date.now();
    await sender.done;
    const stoppedAt = Date.now();
    await call(recorder, 'stopAndWait');
    const stopReturned = Date.now();
    assert.deepEqual(seen.filter((e) => ['Recording', 'Stopped'].includes(e.type)).map((e) => e.type), ['Recording', 'Stopped']);
    assert.deepEqual(seen.filter((e) => e.type === 'UriEndpointStateChanged').map((e) => e.data.state), ['START', 'STOP']);
    assert.ok(seen.some((e) => e.type === 'MediaFlowInStateChanged' && e.data.state === 'FLOWING'));
    const wav = soxInspect(file);
    assert.equal(wav.rate, 8000);
    assert.equal(wav.channels, 1);
    assert.equal(wav.bits, 16);
    assert.match(wav.encoding, /Signed Integer PCM/);
    assertRecordingLength(wav.seconds, stoppedAt - recordingFrom, stopReturned - recordCalled, 'stopAndWait');
    assert.ok(Math.abs(wav.roughHz - 700) <= 35, `sox's rough frequency ${wav.roughHz} Hz`);
    const tone = dominantFrequency(wav.samples.subarray(800, wav.samples.length - 800), 8000, 10);
    assert.ok(Math.abs(tone.hz - 700) <= 10 && tone.share > 0.5, `700 Hz in the recording: ${JSON.stringify(tone)}`);
    assert.equal(await call(recorder, 'getState'), 'STOP');
    await releaseAndCheckGone(pipeline);
  });

  test('a PlayerEndpoint recorded with stopOnEndOfStream: the recorder stops by itself at the end of the file', { timeout: 15_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: 'tone-440-ulaw.wav' });
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: 'calls/from-player.wav', stopOnEndOfStream: true });
    const seen = collect(recorder, ['Recording', 'Stopped']);
    await call(player, 'connect', recorder);
    await call(recorder, 'record');
    await call(player, 'play');
    await pollUntil(() => seen.some((e) => e.type === 'Stopped'), { timeoutMs: 5000, what: 'Stopped after the player ended' });
    const wav = soxInspect(path.join(dir, 'calls', 'from-player.wav'));
    assert.ok(Math.abs(wav.seconds - 1) <= 0.1, `about the file's 1 s: ${wav.seconds} s`);
    assert.ok(Math.abs(dominantFrequency(wav.samples.subarray(400, -400), 8000, 10).hz - 440) <= 10);
    await releaseAndCheckGone(pipeline);
  });

  test('the recorder released in the middle of a recording (and paused before): the WAV is complete and valid, paused time left out', { timeout: 20_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg();
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: `file://${dir}/calls/released.wav` });
    const seen = collect(recorder, ['Recording', 'Paused']);
    await call(rtp, 'connect', recorder);
    const sender = sendTone(peer, 1200, 4000);
    const t0 = Date.now();
    await call(recorder, 'record');
    const t1 = Date.now();
    await pollUntil(async () => (await recordedMs(server, recorder.id)) >= 800, { timeoutMs: 3000, what: 'a first part recorded' });
    const p0 = Date.now();
    await call(recorder, 'pause');
    const p1 = Date.now();
    const sentAtPause = sender.sent();
    await pollUntil(() => sender.sent() - sentAtPause >= 25, { timeoutMs: 2000, what: '500 ms of tone sent while paused' });
    const r0 = Date.now();
    await call(recorder, 'record');
    const r1 = Date.now();
    const firstPart = await recordedMs(server, recorder.id);
    await pollUntil(async () => (await recordedMs(server, recorder.id)) - firstPart >= 800, { timeoutMs: 3000, what: 'a second part recorded' });
    const x0 = Date.now();
    await recorder.release(); // only the recorder goes (as in KMS); the call's endpoint stays
    const x1 = Date.now();
    sender.stop();
    const after = await server.stats();
    assert.equal(after.elements, 1, 'the phone\'s RtpEndpoint stays after the recorder is released');
    await releaseAndCheckGone(pipeline);
    assert.deepEqual(seen.map((e) => e.type), ['Recording', 'Paused', 'Recording']);
    const wav = soxInspect(path.join(dir, 'calls', 'released.wav'));
    const longest = p1 - t0 + (x1 - r0);
    const shortest = p0 - t1 + (x0 - r1);
    assertRecordingLength(wav.seconds, shortest, longest, 'released');
    assert.ok(Math.abs(dominantFrequency(wav.samples.subarray(800, -800), 8000, 10).hz - 1200) <= 10);
  });

  test('the owning session gone in the middle of a recording: the orphaned pipeline keeps recording until the phone hangs up (RTCP BYE), then the WAV is finalised', { timeout: 20_000 }, async () => {
    const owner = await connectKurento(server.url);
    const pipeline = await owner.create('MediaPipeline');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    peer.useRemoteSdp(await call<string>(rtp, 'processOffer', peer.sdp()));
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: 'calls/orphaned.wav' });
    await call(rtp, 'connect', recorder);
    const sender = sendTone(peer, 850, 5000);
    const t0 = Date.now();
    await call(recorder, 'record');
    const t1 = Date.now();
    await pollUntil(async () => (await recordedMs(server, recorder.id)) >= 500, { timeoutMs: 3000, what: 'recording under way' });
    owner.close();
    await server.waitForStats((st) => ((st.pipelinesDetail ?? []) as { id: string; orphaned: boolean }[]).some((p) => p.id === pipeline.id && p.orphaned), 5000);
    const atOrphan = await recordedMs(server, recorder.id);
    await pollUntil(async () => (await recordedMs(server, recorder.id)) >= atOrphan + 500, { timeoutMs: 3000, what: 'recording going on while orphaned' });
    sender.stop();
    peer.sendRtcpBye();
    const byeAt = Date.now();
    const gone = await server.waitForPipelineGone(pipeline.id, 5000);
    const wav = soxInspect(path.join(dir, 'calls', 'orphaned.wav'));
    assertRecordingLength(wav.seconds, byeAt - t1, gone.at - t0, 'orphaned, ended by BYE');
    assert.ok(Math.abs(dominantFrequency(wav.samples.subarray(800, -800), 8000, 10).hz - 850) <= 10);
  });

  test('ferry media stopped by SIGTERM, or killed by SIGKILL, in the middle of a recording: the WAV is valid', { timeout: 30_000 }, async () => {
    // one server of its own per signal, both started at once; the two cases then run one after the other
    const owns = await Promise.all(['SIGTERM', 'SIGKILL'].map(() => MediaServerProcess.start(env()).then((m) => {
      extraServers.push(m);
      return m;
    })));
    for (const [i, signal] of (['SIGTERM', 'SIGKILL'] as const).entries()) {
      const own = owns[i]!;
      const c = await connectKurento(own.url);
      try {
        const pipeline = await c.create('MediaPipeline');
        const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
        const peer = await RtpTestPeer.open();
        peers.push(peer);
        peer.useRemoteSdp(await call<string>(rtp, 'processOffer', peer.sdp()));
        const name = `calls/${signal}.wav`;
        const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: name });
        await call(rtp, 'connect', recorder);
        const sender = sendTone(peer, 600, 4000);
        const t0 = Date.now();
        await call(recorder, 'record');
        const t1 = Date.now();
        // past two header updates (every second) for the SIGKILL case
        await pollUntil(async () => (await recordedMs(own, recorder.id)) >= 2300, { timeoutMs: 5000, what: 'some recording' });
        const pid = own.pid!;
        const exited = pollUntil(() => own.pid === undefined, { timeoutMs: 10_000, what: `ferry media gone after ${signal}` });
        const killedAt = Date.now();
        process.kill(pid, signal);
        await exited;
        const stoppedAt = Date.now();
        sender.stop();
        const wav = soxInspect(path.join(dir, name));
        assert.equal(wav.rate, 8000);
        if (signal === 'SIGTERM') assertRecordingLength(wav.seconds, killedAt - t1, stoppedAt - t0, 'SIGTERM');
        else assert.ok(wav.seconds >= 1.0 && wav.seconds * 1000 <= stoppedAt - t0, `SIGKILL: ${wav.seconds} s, everything up to the last header update (once a second), of at most ${stoppedAt - t0} ms`);
        assert.ok(Math.abs(dominantFrequency(wav.samples.subarray(800, -800), 8000, 10).hz - 600) <= 10);
      } finally {
        c.close();
      }
    }
  });

  test('/stats back to zero', { timeout: 10_000 }, async () => {
    const s = await server.waitForStats((st) => st.pipelines === 0 && st.elements === 0 && st.boundPorts === 0, 5000);
    assert.equal(s.stats.pipelines, 0);
    assert.ok(existsSync(path.join(dir, 'calls', 'rec-1.wav')));
  });
});
