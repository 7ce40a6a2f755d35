import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeG711 } from '../../src/media/media-files/g711';
import { pcm16WavHeader } from '../../src/media/media-files/wav-format';
import { UploadBody, UploadRefused, uploadAudioKind } from '../../src/media/http-post/upload-body';
import { dominantFrequency, sineSamples } from '../helpers/audio-tone';
import { rng } from '../helpers/seeded-random';

/**
 * The body of a POST to an HttpPostEndpoint, as it streams: WAV (streamed when it is telephone audio,
 * decoded whole otherwise), raw G.711 by Content-Type, the file part of a multipart/form-data form, cut
 * into chunks anywhere; what cannot be played is UploadRefused 415, a malformed form 400; random bodies,
 * types and chunkings never throw anything else and never hang.
 */

function wavPcm16(samples: Int16Array, rate = 8000, channels = 1): Buffer {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  return Buffer.concat([pcm16WavHeader(rate, channels, data.length), data]);
}

function mulawWav(samples: Int16Array): Buffer {
  const data = Buffer.alloc(samples.length);
  encodeG711('mulaw', samples, 0, samples.length, data, 0);
  const h = pcm16WavHeader(8000, 1, data.length);
  h.writeUInt16LE(7, 20); // WAVE_FORMAT_MULAW
  h.writeUInt32LE(8000, 28);
  h.writeUInt16LE(1, 32);
  h.writeUInt16LE(8, 34);
  return Buffer.concat([h, data]);
}

async function feed(contentType: string | undefined, body: Buffer, chunk: (i: number) => number): Promise<Int16Array> {
  const parts: Int16Array[] = [];
  const upload = new UploadBody(contentType, (s) => parts.push(s));
  for (let at = 0, i = 0; at < body.length; i++) {
    const n = Math.max(1, chunk(i));
    upload.push(body.subarray(at, at + n));
    at += n;
  }
  const { samples } = await upload.end();
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  assert.equal(out.length, samples, 'the samples reported are the samples handed over');
  return out;
}

function multipart(boundary: string, file: Buffer, fileType: string, filename = 'tone.wav'): Buffer {
  return Buffer.concat([
    Buffer.from(`preamble to ignore\r\n--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello --${boundary.slice(0, 5)}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="media"; filename="${filename}"\r\nContent-Type: ${fileType}\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\nepilogue`),
  ]);
}

describe('media: HttpPostEndpoint upload bodies', { timeout: 30_000 }, () => {
  const tone = sineSamples(440, 8000, 8000, 0.5);

  test('a 16-bit 8 kHz WAV cut into 1..7-byte chunks decodes sample for sample', async () => {
    const r = rng(1);
    const out = await feed('audio/wav', wavPcm16(tone), () => 1 + Math.floor(r() * 7));
    assert.deepEqual(out, tone);
  });

  test('a µ-law WAV and raw µ-law (audio/basic) and raw A-law (audio/PCMA) decode to the tone', async () => {
    for (const [type, body] of [
      ['audio/x-wav', mulawWav(tone)],
      ['audio/basic', (() => { const b = Buffer.alloc(tone.length); encodeG711('mulaw', tone, 0, tone.length, b, 0); return b; })()],
      ['audio/PCMA; rate=8000', (() => { const b = Buffer.alloc(tone.length); encodeG711('alaw', tone, 0, tone.length, b, 0); return b; })()],
    ] as const) {
      const out = await feed(type, body, () => 333);
      assert.equal(out.length, 8000, type);
      assert.equal(dominantFrequency(out, 8000, 10).hz, 440, type);
    }
  });

  test('a 16 kHz stereo WAV (decoded whole, as a file) gives 1 s at 8 kHz', async () => {
    const stereo = new Int16Array(32000);
    const src = sineSamples(1000, 16000, 16000, 0.5);
    for (let i = 0; i < 16000; i++) stereo[2 * i] = stereo[2 * i + 1] = src[i]!;
    const out = await feed(undefined, wavPcm16(stereo, 16000, 2), () => 4096);
    assert.ok(Math.abs(out.length - 8000) <= 2, `${out.length} samples`);
    assert.equal(dominantFrequency(out, 8000, 10).hz, 1000);
  });

  test('the file part of a multipart/form-data form, the boundary split across chunks', async () => {
    const body = multipart('----ferryBoundary42', wavPcm16(tone), 'audio/wav');
    for (const size of [1, 2, 17, 4096]) {
      const out = await feed('multipart/form-data; boundary=----ferryBoundary42', body, () => size);
      assert.deepEqual(out, tone, `chunks of ${size}`);
    }
    const raw = Buffer.alloc(tone.length);
    encodeG711('alaw', tone, 0, tone.length, raw, 0);
    const out = await feed('multipart/form-data; boundary="b"', multipart('b', raw, 'application/octet-stream', 'tone.alaw'), () => 100);
    assert.equal(dominantFrequency(out, 8000, 10).hz, 440, 'raw A-law named by its extension');
  });

  test('what cannot be played is 415, a malformed form 400, with a message', async () => {
    const cases: [string | undefined, Buffer, number, RegExp][] = [
      ['text/plain', Buffer.from('hello'), 415, /Content-Type "text\/plain" is not audio/],
      ['video/webm', Buffer.from('x'), 415, /video\/webm/],
      ['audio/wav', Buffer.from('this is not a RIFF file at all'), 415, /not a WAV file/],
      ['audio/wav', Buffer.alloc(0), 415, /empty/],
      ['audio/basic; rate=16000', Buffer.alloc(10), 415, /16000 Hz/],
      ['audio/wav', (() => { const w = wavPcm16(tone); w.writeUInt16LE(0x55, 20); return w; })(), 415, /format tag 85/],
      ['audio/wav', wavPcm16(tone, 4000), 415, /sample rate 4000/],
      ['multipart/form-data', Buffer.from('x'), 400, /boundary/],
      ['multipart/form-data; boundary=zz', Buffer.from('--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nonly text\r\n--zz--\r\n'), 400, /no file part/],
      ['multipart/form-data; boundary=zz', Buffer.from('--zz\r\nContent-Disposition: form-data; name="a"; filename="a.wav"\r\n\r\nRIFF'), 400, /ends inside its file part/],
    ];
    for (const [type, body, status, message] of cases) {
      await assert.rejects(feed(type, body, () => 3), (err: unknown) => {
        assert.ok(err instanceof UploadRefused, `${type}: ${String(err)}`);
        assert.equal(err.status, status, `${type}: ${err.message}`);
        assert.match(err.message, message);
        return true;
      });
    }
    assert.throws(() => uploadAudioKind('application/json'), UploadRefused);
  });

  test('fuzz: random types, bodies and chunkings end in samples or UploadRefused, never hang', async () => {
    const r = rng(20261205);
    const types = ['audio/wav', 'audio/basic', 'audio/PCMA', 'multipart/form-data; boundary=q', 'multipart/form-data; boundary="a b"', undefined, 'application/octet-stream', 'x/y; rate=8000', ';;;', 'multipart/form-data; boundary='];
    const seeds = [wavPcm16(tone.subarray(0, 800)), mulawWav(tone.subarray(0, 400)), multipart('q', wavPcm16(tone.subarray(0, 200)), 'audio/wav'), Buffer.alloc(0)];
    let refused = 0;
    let played = 0;
    for (let i = 0; i < 3000; i++) {
      const type = types[Math.floor(r() * types.length)];
      let body: Buffer;
      const mode = r();
      if (mode < 0.4) {
        body = Buffer.from(seeds[Math.floor(r() * seeds.length)]!);
        for (let k = Math.floor(r() * 8); k > 0 && body.length > 0; k--) body[Math.floor(r() * body.length)] = Math.floor(r() * 256);
        if (r() < 0.3) body = body.subarray(0, Math.floor(r() * body.length));
      } else {
        body = Buffer.alloc(Math.floor(r() * 600));
        for (let k = 0; k < body.length; k++) body[k] = Math.floor(r() * 256);
        if (r() < 0.3) Buffer.from('RIFF\x00\x00\x00\x00WAVEfmt ', 'latin1').copy(body);
      }
      try {
        await feed(type, body, () => 1 + Math.floor(r() * 64));
        played++;
      } catch (err) {
        if (!(err instanceof UploadRefused)) throw new Error(`case ${i} (${String(type)}, ${body.length} bytes) threw ${String(err)}`);
        refused++;
      }
    }
    assert.ok(refused > 100 && played > 100, `both outcomes seen (refused ${refused}, played ${played})`);
  });
});
