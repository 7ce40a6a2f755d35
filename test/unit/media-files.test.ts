import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KurentoError } from '../../src/media/errors/kurento-error';
import { ALAW_TO_LINEAR, decodeG711, encodeG711, MULAW_TO_LINEAR } from '../../src/media/media-files/g711';
import { openRecordingFile, MediaSourceError, loadMediaBytes } from '../../src/media/media-files/media-file-access';
import { resolveMediaUri } from '../../src/media/media-files/media-uri';
import { decodeTelephoneAudio } from '../../src/media/media-files/telephone-audio';
import { loadTelephoneAudio } from '../../src/media/media-files/telephone-audio-loader';
import { MediaFormatError, parseWav, pcm16WavHeader } from '../../src/media/media-files/wav-format';
import { WavRecordingWriter } from '../../src/media/media-files/wav-recording-writer';
import { dominantFrequency, rms, sineSamples } from '../helpers/audio-tone';
import { rng } from '../helpers/seeded-random';

/** A WAV file built by hand: `fmt` fields and raw sample bytes. */
function wav(format: number, channels: number, rate: number, bits: number, data: Buffer, extraChunk?: Buffer): Buffer {
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(format, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(rate, 12);
  fmt.writeUInt32LE((rate * channels * bits) / 8, 16);
  fmt.writeUInt16LE((channels * bits) / 8, 20);
  fmt.writeUInt16LE(bits, 22);
  const dataHead = Buffer.alloc(8);
  dataHead.write('data', 0, 'latin1');
  dataHead.writeUInt32LE(data.length, 4);
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), fmt, extraChunk ?? Buffer.alloc(0), dataHead, data]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

function pcm16Bytes(samples: Int16Array): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => b.writeInt16LE(s, i * 2));
  return b;
}

describe('media files: G.711, WAV, resampling, URIs, recording files', () => {
  test('G.711: known code points, and decode->encode gives every code back', { timeout: 5000 }, () => {
    assert.equal(MULAW_TO_LINEAR[0xff], 0);
    assert.equal(MULAW_TO_LINEAR[0x80], 32124);
    assert.equal(MULAW_TO_LINEAR[0x00], -32124);
    assert.equal(ALAW_TO_LINEAR[0xd5], 8);
    assert.equal(ALAW_TO_LINEAR[0x55], -8);
    assert.equal(ALAW_TO_LINEAR[0xaa], 32256);
    assert.equal(ALAW_TO_LINEAR[0x2a], -32256);
    for (const law of ['mulaw', 'alaw'] as const) {
      const table = law === 'mulaw' ? MULAW_TO_LINEAR : ALAW_TO_LINEAR;
      const out = Buffer.alloc(256);
      encodeG711(law, table, 0, 256, out, 0);
      for (let code = 0; code < 256; code++) {
        // µ-law has two zeros (0x7f and 0xff); both decode to 0, which encodes as 0xff
        const expected = law === 'mulaw' && code === 0x7f ? 0xff : code;
        assert.equal(out[code], expected, `${law} code 0x${code.toString(16)}`);
      }
    }
    // a quiet and a loud tone survive the round trip within G.711's quantisation (about 1/30 of the level)
    const tone = sineSamples(1000, 8000, 800, 0.6);
    const bytes = Buffer.alloc(800);
    encodeG711('mulaw', tone, 0, 800, bytes, 0);
    const back = new Int16Array(800);
    decodeG711('mulaw', bytes, back, 0);
    let err = 0;
    for (let i = 0; i < 800; i++) err = Math.max(err, Math.abs(back[i]! - tone[i]!) / Math.max(1, Math.abs(tone[i]!)));
    assert.ok(err < 0.07, `largest relative error ${err}`);
  });

  test('WAV: PCM 16 at 16 kHz, 44.1 kHz stereo, 24-bit, float and µ-law at 8 kHz all become 8 kHz mono with the tone kept', { timeout: 10_000 }, async () => {
    const cases: { name: string; file: Buffer; seconds: number }[] = [];
    cases.push({ name: 'pcm16 16k', file: wav(1, 1, 16000, 16, pcm16Bytes(sineSamples(1000, 16000, 16000))), seconds: 1 });
    const st = sineSamples(700, 44100, 44100);
    const stereo = new Int16Array(st.length * 2);
    st.forEach((s, i) => {
      stereo[2 * i] = s;
      stereo[2 * i + 1] = s;
    });
    cases.push({ name: 'pcm16 44.1k stereo', file: wav(1, 2, 44100, 16, pcm16Bytes(stereo)), seconds: 1 });
    const s24 = sineSamples(1200, 48000, 24000);
    const b24 = Buffer.alloc(s24.length * 3);
    s24.forEach((s, i) => b24.writeIntLE(s * 256, i * 3, 3));
    cases.push({ name: 'pcm24 48k', file: wav(1, 1, 48000, 24, b24), seconds: 0.5 });
    const sf = sineSamples(500, 22050, 22050);
    const bf = Buffer.alloc(sf.length * 4);
    sf.forEach((s, i) => bf.writeFloatLE(s / 32768, i * 4));
    cases.push({ name: 'float 22.05k', file: wav(3, 1, 22050, 32, bf), seconds: 1 });
    const mu = Buffer.alloc(8000);
    encodeG711('mulaw', sineSamples(900, 8000, 8000), 0, 8000, mu, 0);
    cases.push({ name: 'mulaw 8k', file: wav(7, 1, 8000, 8, mu, Buffer.from('LIST\x04\x00\x00\x00INFO', 'latin1')), seconds: 1 });
    const expectHz = [1000, 700, 1200, 500, 900];
    for (const [i, c] of cases.entries()) {
      const pcm = await decodeTelephoneAudio(c.file, 'x.wav');
      assert.ok(Math.abs(pcm.length - c.seconds * 8000) <= 2, `${c.name}: ${pcm.length} samples`);
      const mid = pcm.subarray(800, pcm.length - 800);
      const d = dominantFrequency(mid, 8000, 10);
      assert.ok(Math.abs(d.hz - expectHz[i]!) <= 10, `${c.name}: dominant ${d.hz} Hz`);
      assert.ok(d.share > 0.5, `${c.name}: tone share ${d.share}`);
      assert.ok(rms(mid) > 0.3 * 32767 * 0.5, `${c.name}: level kept (${rms(mid)})`);
    }
    // a 3.5 kHz tone at 44.1 kHz passes; 6 kHz (above the 4 kHz of telephone audio) is filtered, not aliased to 2 kHz
    const hi = await decodeTelephoneAudio(wav(1, 1, 44100, 16, pcm16Bytes(sineSamples(6000, 44100, 44100))), 'x.wav');
    assert.ok(rms(hi.subarray(800, -800)) < 0.02 * 16384, `6 kHz tone removed (rms ${rms(hi.subarray(800, -800))})`);
  });

  test('raw G.711 by extension; unsupported formats and rates are MediaFormatErrors naming the problem', { timeout: 5000 }, async () => {
    const raw = Buffer.alloc(1600);
    encodeG711('alaw', sineSamples(800, 8000, 1600), 0, 1600, raw, 0);
    assert.equal(dominantFrequency(await decodeTelephoneAudio(raw, '/p/x.alaw'), 8000, 10).hz, 800);
    await assert.rejects(decodeTelephoneAudio(raw, '/p/x.mp3'), (e: Error) => e instanceof MediaFormatError && /raw G\.711 extension/.test(e.message));
    await assert.rejects(decodeTelephoneAudio(wav(1, 1, 96000, 16, Buffer.alloc(100)), 'x.wav'), /sample rate 96000 Hz is not supported/);
    await assert.rejects(decodeTelephoneAudio(wav(2, 1, 8000, 4, Buffer.alloc(100)), 'x.wav'), /format tag 2 is not supported/);
    await assert.rejects(decodeTelephoneAudio(wav(1, 1, 8000, 16, Buffer.alloc(0)), 'x.wav'), /no samples/);
    await assert.rejects(decodeTelephoneAudio(Buffer.from('RIFF\x04\x00\x00\x00WAVE', 'latin1'), 'x.wav'), /no fmt chunk/);
  });

  test('WAV parser fuzz: 3000 mutated and truncated files only ever give audio or a MediaFormatError', { timeout: 30_000 }, async () => {
    const base = wav(1, 2, 16000, 16, pcm16Bytes(sineSamples(1000, 16000, 800)), Buffer.from('LIST\x04\x00\x00\x00INFO', 'latin1'));
    const random = rng(4711);
    for (let i = 0; i < 3000; i++) {
      const f = Buffer.from(base);
      const flips = 1 + Math.floor(random() * 8);
      for (let j = 0; j < flips; j++) f[Math.floor(random() * 60)] = Math.floor(random() * 256);
      const cut = random() < 0.3 ? f.subarray(0, Math.floor(random() * f.length)) : f;
      try {
        const pcm = await decodeTelephoneAudio(cut, 'x.wav');
        assert.ok(pcm.length <= 8000 * 60, 'decoded length bounded by the input');
      } catch (err) {
        assert.ok(err instanceof MediaFormatError, `case ${i}: ${String(err)}`);
      }
    }
  });

  test('URIs: file:// and relative inside the directory; outside, encoded slashes, remote hosts and other schemes refused', { timeout: 5000 }, () => {
    const dir = '/srv/ferry-media';
    assert.deepEqual(resolveMediaUri('file:///srv/ferry-media/a/b.wav', dir, true), { kind: 'file', path: '/srv/ferry-media/a/b.wav' });
    assert.deepEqual(resolveMediaUri('prompts/hello.wav', dir, true), { kind: 'file', path: '/srv/ferry-media/prompts/hello.wav' });
    assert.deepEqual(resolveMediaUri('file://localhost/srv/ferry-media/x%20y.wav', dir, true), { kind: 'file', path: '/srv/ferry-media/x y.wav' });
    assert.equal(resolveMediaUri('https://example.com/a.wav', dir, true).kind, 'http');
    const refused: [string, RegExp, number][] = [
      ['file:///etc/passwd', /inside the media files directory/, 40107],
      ['file:///srv/ferry-media/../ferry-media-other/x.wav', /inside/, 40107],
      ['file:///srv/ferry-media', /inside/, 40107],
      ['../etc/passwd', /inside/, 40107],
      ['/etc/passwd', /inside/, 40107],
      ['file:///srv/ferry-media/a%2F..%2F..%2Fetc%2Fpasswd', /no encoded/, 40107],
      ['file://evil.example/srv/ferry-media/a.wav', /no host/, 40107],
      ['file:///srv/ferry-media/a\u0000.wav', /control characters/, 40107],
      ['rtsp://cam/stream', /scheme 'rtsp' is not supported/, 40006],
      ['http://example.com/a.wav', /file:\/\/ only/, 40006],
      ['x'.repeat(5000), /1 to 4096/, 40107],
    ];
    for (const [uri, msg, code] of refused) {
      assert.throws(() => resolveMediaUri(uri, dir, uri.startsWith('http') ? false : true), (e: unknown) => e instanceof KurentoError && e.code === code && msg.test(e.message), uri);
    }
  });

  test('files: symbolic links out of the directory are neither read nor written through; the recording WAV is valid after each flush and after close', { timeout: 10_000 }, async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'ferry-media-files-'));
    const dir = path.join(root, 'media');
    const outside = path.join(root, 'outside');
    mkdirSync(dir);
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret.wav'), wav(1, 1, 8000, 16, Buffer.alloc(1600)));
    symlinkSync(path.join(outside, 'secret.wav'), path.join(dir, 'link.wav'));
    symlinkSync(outside, path.join(dir, 'linkdir'));
    const cfg = { dir, maxFileBytes: 1000, httpTimeoutMs: 1000 };
    try {
      const signal = new AbortController().signal;
      await assert.rejects(loadMediaBytes({ kind: 'file', path: path.join(dir, 'link.wav') }, cfg, signal), (e: Error) => e instanceof MediaSourceError && e.kind === 'INVALID_URI');
      await assert.rejects(loadMediaBytes({ kind: 'file', path: path.join(dir, 'linkdir', 'secret.wav') }, cfg, signal), (e: Error) => e instanceof MediaSourceError && e.kind === 'INVALID_URI');
      writeFileSync(path.join(dir, 'big.wav'), Buffer.alloc(1001));
      await assert.rejects(loadMediaBytes({ kind: 'file', path: path.join(dir, 'big.wav') }, cfg, signal), (e: Error) => e instanceof MediaSourceError && e.kind === 'INVALID_MEDIA' && /FERRY_MEDIA_FILE_MAX_BYTES/.test(e.message));
      await assert.rejects(openRecordingFile(path.join(dir, 'linkdir', 'new.wav'), cfg), MediaSourceError);
      await assert.rejects(openRecordingFile(path.join(dir, 'linkdir', 'deeper', 'new.wav'), cfg), MediaSourceError);
      await assert.rejects(openRecordingFile(path.join(dir, 'link.wav'), cfg), MediaSourceError);
      assert.equal(existsSync(path.join(outside, 'new.wav')), false);
      assert.equal(existsSync(path.join(outside, 'deeper')), false);
      assert.equal(readFileSync(path.join(outside, 'secret.wav')).length, 44 + 1600, 'the file behind the link is untouched');

      const fh = await openRecordingFile(path.join(dir, 'calls', '2026', 'rec.wav'), cfg);
      const errors: Error[] = [];
      const w = new WavRecordingWriter(fh, 8000, (e) => errors.push(e));
      w.append(sineSamples(1000, 8000, 4000));
      await w.flush();
      const mid = parseWav(readFileSync(path.join(dir, 'calls', '2026', 'rec.wav')));
      assert.equal(mid.data.length, 8000, 'valid while recording: header sizes match the data written');
      w.append(undefined, 4000);
      await w.close();
      await w.close();
      const done = readFileSync(path.join(dir, 'calls', '2026', 'rec.wav'));
      assert.deepEqual(done.subarray(0, 44), pcm16WavHeader(8000, 1, 16000));
      assert.equal(done.length, 44 + 16000);
      assert.equal(errors.length, 0);
      // an existing recording is truncated by a new one
      const again = await openRecordingFile(path.join(dir, 'calls', '2026', 'rec.wav'), cfg);
      await new WavRecordingWriter(again, 8000, () => undefined).close();
      assert.equal(readFileSync(path.join(dir, 'calls', '2026', 'rec.wav')).length, 44);
      // players of the same file share one decoded copy (also when they load at the same time); a changed file is read again
      const mu = Buffer.alloc(800);
      encodeG711('mulaw', sineSamples(500, 8000, 800), 0, 800, mu, 0);
      writeFileSync(path.join(dir, 'hold.ul'), mu);
      const loc = { kind: 'file' as const, path: path.join(dir, 'hold.ul') };
      const [a, b] = await Promise.all([loadTelephoneAudio(loc, cfg, signal), loadTelephoneAudio(loc, cfg, signal)]);
      const c = await loadTelephoneAudio(loc, cfg, signal);
      assert.equal(a.audio, b.audio);
      assert.equal(a.audio, c.audio);
      assert.deepEqual([a.shared || b.shared, c.shared], [true, true]);
      writeFileSync(path.join(dir, 'hold.ul'), mu.subarray(0, 400));
      const d = await loadTelephoneAudio(loc, cfg, signal);
      assert.equal(d.shared, false);
      assert.equal(d.audio.length, 400, 'the edited file');
      // a write error is reported once and later samples are dropped
      const ro = await open(path.join(dir, 'calls', '2026', 'rec.wav'), 'r');
      const failing = new WavRecordingWriter(ro, 8000, (e) => errors.push(e));
      failing.append(sineSamples(1000, 8000, 100));
      await failing.close();
      assert.equal(errors.length, 1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
