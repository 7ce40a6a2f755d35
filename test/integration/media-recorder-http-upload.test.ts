import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseWav, pcm16WavHeader } from '../../src/media/media-files/wav-format';
import { dominantFrequency, sineSamples } from '../helpers/audio-tone';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess } from '../helpers/media-server-process';
import { pollUntil } from '../helpers/wait-for';

/**
 * A RecorderEndpoint whose URI is http(s):// (KMS records there through GStreamer's curlhttpsink: an
 * HTTP POST, `user:password@` as Basic authentication), against a real `bin/ferry media` and a real
 * HTTP server: `create` accepts the URI (it used to be 40006), a player's 1 s tone is recorded and the
 * server receives one POST of a valid WAV holding the tone, with the credentials as Basic auth and not
 * in the request line; a server answering 500 gives an `Error` event (RESOURCE_ERROR_WRITE) while
 * `stop` itself succeeds; the temporary files are gone afterwards (the media server's TMPDIR is private).
 */

interface Upload {
  method: string;
  url: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}

function toneWav(hz: number, seconds: number): Buffer {
  const samples = sineSamples(hz, 8000, 8000 * seconds, 0.4);
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  return Buffer.concat([pcm16WavHeader(8000, 1, data.length), data]);
}

describe('RecorderEndpoint to an http(s):// URI', { timeout: 60_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  let httpServer: http.Server;
  let httpPort = 0;
  let mediaDir: string;
  let tmpDir: string;
  const uploads: Upload[] = [];

  before(async () => {
    mediaDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-rec-http-media-'));
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-rec-http-tmp-'));
    fs.writeFileSync(path.join(mediaDir, 'tone.wav'), toneWav(700, 1));
    httpServer = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        uploads.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
          body: Buffer.concat(chunks),
        });
        res.statusCode = req.url?.startsWith('/refuse') ? 500 : 201;
        res.end();
      });
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    httpPort = (httpServer.address() as AddressInfo).port;
    server = await MediaServerProcess.start({ FERRY_MEDIA_FILES_DIR: mediaDir, TMPDIR: tmpDir });
    client = await connectKurento(server.url);
  });

  after(async () => {
    client?.close();
    await server?.stop();
    httpServer?.close();
    fs.rmSync(mediaDir, { recursive: true, force: true });
    fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  test('a played tone is recorded and POSTed as a WAV, credentials as Basic auth; the temporary file is removed', async () => {
    const pipeline = await client.create('MediaPipeline');
    const player = await call<KurentoObjectLike>(pipeline, 'create', 'PlayerEndpoint', { uri: 'tone.wav' });
    const uri = `http://rec%20user:s3cret@127.0.0.1:${httpPort}/store/call.wav`;
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri });
    assert.equal(await call(recorder, 'getUri'), uri);
    await call(player, 'connect', recorder);
    const ended = new Promise<void>((resolve) => player.on('EndOfStream', () => resolve()));
    await call(recorder, 'record');
    // control: recording goes to a temporary file while it runs
    assert.equal(fs.readdirSync(tmpDir).filter((d) => d.startsWith('ferry-recording-')).length, 1);
    await call(player, 'play');
    await ended;
    await call(recorder, 'stopAndWait');
    assert.equal(uploads.length, 1, 'one upload, finished when stopAndWait answers');
    const up = uploads[0]!;
    assert.equal(up.method, 'POST');
    assert.equal(up.url, '/store/call.wav');
    assert.equal(up.authorization, `Basic ${Buffer.from('rec user:s3cret').toString('base64')}`);
    assert.equal(up.contentType, 'audio/wav');
    const wav = parseWav(up.body);
    assert.equal(wav.sampleRate, 8000);
    assert.equal(wav.channels, 1);
    const samples = new Int16Array(wav.data.buffer.slice(wav.data.byteOffset, wav.data.byteOffset + wav.data.length));
    assert.ok(samples.length >= 7000, `recording holds ${samples.length} samples`);
    const { hz } = dominantFrequency(samples, 8000);
    assert.ok(Math.abs(hz - 700) <= 40, `recorded tone at ${hz} Hz`);
    await pollUntil(() => fs.readdirSync(tmpDir).filter((d) => d.startsWith('ferry-recording-')).length === 0 || undefined, {
      timeoutMs: 5000,
      what: 'the temporary recording file to be removed',
    });
    await pipeline.release();
  });

  test('an upload the server refuses is an Error event; stop still succeeds', async () => {
    const pipeline = await client.create('MediaPipeline');
    const recorder = await call<KurentoObjectLike>(pipeline, 'create', 'RecorderEndpoint', { uri: `http://127.0.0.1:${httpPort}/refuse/x.wav` });
    const error = new Promise<Record<string, unknown>>((resolve) => recorder.on('Error', (e) => resolve(e)));
    const before = uploads.length;
    await call(recorder, 'record');
    await call(recorder, 'stop');
    const e = await error;
    assert.equal(e.type, 'RESOURCE_ERROR_WRITE');
    assert.match(String(e.description), /HTTP 500/);
    assert.doesNotMatch(String(e.description), /refuse\/x\.wav/, 'the URI path is not echoed');
    assert.equal(uploads.length, before + 1);
    await pipeline.release();
    await pollUntil(async () => (await fetchStats(server.port)).pipelines === 0 || undefined, { timeoutMs: 5000, what: 'no pipeline left' });
    assert.deepEqual(fs.readdirSync(tmpDir).filter((d) => d.startsWith('ferry-recording-')), []);
  });
});
