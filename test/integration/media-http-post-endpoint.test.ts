import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ALAW_TO_LINEAR, encodeG711, MULAW_TO_LINEAR, type G711Law } from '../../src/media/media-files/g711';
import { pcm16WavHeader } from '../../src/media/media-files/wav-format';
import { dominantFrequency, sineSamples } from '../helpers/audio-tone';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RawRpc } from '../helpers/media-raw-rpc';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { MediaServerProcess } from '../helpers/media-server-process';
import { rng } from '../helpers/seeded-random';
import { pollUntil } from '../helpers/wait-for';

/**
 * HttpPostEndpoint on a real `bin/ferry media` (relay workers on), driven by the real kurento-client:
 * a WAV tone POSTed to its URL reaches a test phone behind a connected RtpEndpoint as paced G.711 (the
 * tone's own bytes), with MediaSessionStarted, EndOfStream and MediaSessionTerminated in order; raw
 * A-law and a multipart form; 415 with the Error event, 409, 404 that reveals nothing, 413, a stalled
 * POST given up after the disconnection timeout, release -> 404 and nothing left; hostile requests.
 */

const MAX_BYTES = 100_000;

interface Seen {
  type: string;
  at: number;
  data: Record<string, unknown>;
}

function collect(obj: KurentoObjectLike, types: string[]): Seen[] {
  const seen: Seen[] = [];
  for (const type of types) obj.on(type, (data) => seen.push({ type, at: Date.now(), data }));
  return seen;
}

function wavPcm16(samples: Int16Array): Buffer {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  return Buffer.concat([pcm16WavHeader(8000, 1, data.length), data]);
}

function g711(law: G711Law, samples: Int16Array): Buffer {
  const b = Buffer.alloc(samples.length);
  encodeG711(law, samples, 0, samples.length, b, 0);
  return b;
}

function decode(law: G711Law, payload: Buffer): Int16Array {
  const table = law === 'mulaw' ? MULAW_TO_LINEAR : ALAW_TO_LINEAR;
  const out = new Int16Array(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = table[payload[i]!]!;
  return out;
}

interface Answer {
  status: number;
  body: string;
}

/** POSTs `body` (in `chunks` pieces) to `url`; resolves with the answer, or status 0 when the connection closed without one. */
function post(url: string, body: Buffer, headers: Record<string, string> = {}, o: { method?: string; chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: o.method ?? 'POST', agent: false, headers: o.chunked ? headers : { 'content-length': String(body.length), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    if (o.chunked) {
      for (let at = 0; at < body.length; at += 8192) req.write(body.subarray(at, at + 8192));
      req.end();
    } else req.end(body);
  });
}

/** A POST whose body is sent in pieces by the test: the head now, the rest when it says. */
function openPost(url: string, contentType: string, length: number): { req: http.ClientRequest; answer: Promise<Answer & { closed: boolean }> } {
  let req!: http.ClientRequest;
  const answer = new Promise<Answer & { closed: boolean }>((resolve) => {
    req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': contentType, 'content-length': String(length) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), closed: false }));
    });
    req.on('error', () => resolve({ status: 0, body: '', closed: true }));
  });
  return { req, answer };
}

describe('media: HttpPostEndpoint through kurento-client and HTTP', { timeout: 120_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];
  const tone = sineSamples(440, 8000, 8000, 0.5);

  before(async () => {
    server = await MediaServerProcess.start({ FERRY_MEDIA_HTTP_POST_MAX_BYTES: String(MAX_BYTES), FERRY_MEDIA_WORKERS: '2' });
    client = await connectKurento(server.url);
  });

  after(async () => {
    for (const p of peers) p.close();
    client?.close();
    await server?.stop();
  });

  async function phoneLeg(codecs?: [number, string][]): Promise<{ pipeline: KurentoObjectLike; rtp: KurentoObjectLike; peer: RtpTestPeer }> {
    const pipeline = await client.create('MediaPipeline');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    peer.useRemoteSdp(await call<string>(rtp, 'processOffer', peer.sdp(codecs ? { codecs } : {})));
    return { pipeline, rtp, peer };
  }

  test('a WAV tone POSTed to getUrl reaches the phone as paced PCMU carrying the tone; Started, EndOfStream, Terminated in order; then 404', { timeout: 30_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg();
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    const other = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint', { disconnectionTimeout: 5, useEncodedMedia: false });
    const seen = collect(httpPost, ['MediaSessionStarted', 'MediaFlowOutStateChanged', 'EndOfStream', 'MediaSessionTerminated', 'Error']);
    await call(httpPost, 'connect', rtp);
    const url = await call<string>(httpPost, 'getUrl');
    assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${server.port}/ferry-http-post/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$`));
    assert.notEqual(await call<string>(other, 'getUrl'), url, 'each endpoint its own URL');
    assert.equal(peer.received.length, 0, 'nothing before the POST');

    const postedAt = Date.now();
    const answer = await post(url, wavPcm16(tone), { 'content-type': 'audio/wav' });
    assert.equal(answer.status, 200, answer.body);
    assert.match(answer.body, /received 1000 ms of audio/);
    await pollUntil(() => seen.some((e) => e.type === 'MediaSessionTerminated'), { timeoutMs: 8000, what: 'MediaSessionTerminated' });
    await pollUntil(() => peer.received.length >= 50, { timeoutMs: 2000, what: '50 packets' });

    assert.equal(peer.received.length, 50, '1 s = 50 packets of 20 ms');
    assert.ok(peer.received.every((p) => p.pt === 0 && p.payload.length === 160), 'PCMU, 160 bytes each');
    for (let i = 1; i < 50; i++) {
      assert.equal(peer.received[i]!.seq, (peer.received[i - 1]!.seq + 1) & 0xffff, 'consecutive sequence numbers');
      assert.equal(peer.received[i]!.ts, (peer.received[i - 1]!.ts + 160) >>> 0, 'timestamps 160 apart');
    }
    assert.ok(Buffer.concat(peer.received.map((p) => p.payload)).equals(g711('mulaw', tone)), "the payload is the tone's µ-law, byte for byte");
    assert.equal(dominantFrequency(decode('mulaw', Buffer.concat(peer.received.map((p) => p.payload))), 8000, 10).hz, 440);

    const order = seen.map((e) => (e.type === 'MediaFlowOutStateChanged' ? `${e.type}:${String(e.data.state)}` : e.type));
    assert.deepEqual(order, ['MediaSessionStarted', 'MediaFlowOutStateChanged:FLOWING', 'MediaFlowOutStateChanged:NOT_FLOWING', 'EndOfStream', 'MediaSessionTerminated']);
    const eos = seen.find((e) => e.type === 'EndOfStream')!.at - postedAt;
    assert.ok(eos >= 900 && eos < 3000, `played in real time: EndOfStream ${eos} ms after the POST`);
    const terminated = seen.find((e) => e.type === 'MediaSessionTerminated')!.at - postedAt;
    assert.ok(terminated >= 1900 && terminated < 5000, `MediaSessionTerminated ${terminated} ms after the POST (disconnectionTimeout 2 s)`);

    const again = await post(url, wavPcm16(tone), { 'content-type': 'audio/wav' });
    assert.equal(again.status, 404, 'the URL is gone once the session ended');
    assert.equal(await call<string>(httpPost, 'getUrl'), '', 'as KMS: no URL after the session ended');
    assert.equal((await post(await call<string>(other, 'getUrl'), wavPcm16(tone.subarray(0, 800)))).status, 200, 'the other endpoint still takes uploads (control)');
    await pipeline.release();
    await server.waitForPipelineGone(pipeline.id, 5000);
  });

  test('raw A-law (Content-Type audio/PCMA) to a phone that negotiated PCMA, and a multipart form with a µ-law WAV, within one session', { timeout: 30_000 }, async () => {
    const { pipeline, rtp, peer } = await phoneLeg([[8, 'PCMA/8000']]);
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint', { disconnectionTimeout: 4 });
    const seen = collect(httpPost, ['MediaSessionStarted', 'EndOfStream', 'MediaSessionTerminated', 'Error']);
    await call(httpPost, 'connect', rtp);
    const url = await call<string>(httpPost, 'getUrl');
    const half = tone.subarray(0, 4000);
    assert.equal((await post(url, g711('alaw', half), { 'content-type': 'audio/PCMA' })).status, 200);
    await pollUntil(() => seen.filter((e) => e.type === 'EndOfStream').length === 1, { timeoutMs: 5000, what: 'the first EndOfStream' });
    assert.equal(peer.received.length, 25);
    assert.ok(peer.received.every((p) => p.pt === 8), 'A-law, the codec the phone negotiated');
    assert.ok(Buffer.concat(peer.received.map((p) => p.payload)).equals(g711('alaw', half)), 'the A-law bytes as posted');

    const ulawWav = (() => {
      const data = g711('mulaw', half);
      const h = pcm16WavHeader(8000, 1, data.length);
      h.writeUInt16LE(7, 20);
      h.writeUInt32LE(8000, 28);
      h.writeUInt16LE(1, 32);
      h.writeUInt16LE(8, 34);
      return Buffer.concat([h, data]);
    })();
    const form = Buffer.concat([
      Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\na tone\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="tone.wav"\r\nContent-Type: audio/wav\r\n\r\n'),
      ulawWav,
      Buffer.from('\r\n--XyZ--\r\n'),
    ]);
    assert.equal((await post(url, form, { 'content-type': 'multipart/form-data; boundary=XyZ' })).status, 200);
    await pollUntil(() => seen.filter((e) => e.type === 'EndOfStream').length === 2, { timeoutMs: 5000, what: 'the second EndOfStream' });
    assert.equal(peer.received.length, 50);
    assert.equal(dominantFrequency(decode('alaw', Buffer.concat(peer.received.slice(25).map((p) => p.payload))), 8000, 10).hz, 440);
    assert.equal(seen.filter((e) => e.type === 'MediaSessionStarted').length, 1, 'one session for both POSTs');
    assert.equal(seen.filter((e) => e.type === 'MediaSessionTerminated').length, 0, 'not ended: the second POST came within the timeout');
    assert.equal(seen.filter((e) => e.type === 'Error').length, 0);
    await pipeline.release();
    await server.waitForPipelineGone(pipeline.id, 5000);
  });

  test('audio it cannot play: 415 with a message and the Error event (INVALID_MEDIA); the endpoint still takes a WAV after', { timeout: 20_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    const seen = collect(httpPost, ['Error', 'MediaSessionStarted']);
    const url = await call<string>(httpPost, 'getUrl');
    const webm = await post(url, Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), { 'content-type': 'video/webm' });
    assert.equal(webm.status, 415);
    assert.match(webm.body, /Content-Type "video\/webm" is not audio ferry media plays/);
    const notWav = await post(url, Buffer.from('just some text, long enough to be looked at'), { 'content-type': 'audio/wav' });
    assert.equal(notWav.status, 415);
    assert.match(notWav.body, /not a WAV file/);
    await pollUntil(() => seen.filter((e) => e.type === 'Error').length === 2, { timeoutMs: 3000, what: 'two Error events' });
    for (const e of seen.filter((x) => x.type === 'Error')) {
      assert.equal(e.data.type, 'INVALID_MEDIA');
      assert.match(String(e.data.description), /^Invalid Media: /);
    }
    assert.equal((await post(url, wavPcm16(tone.subarray(0, 800)), { 'content-type': 'audio/x-wav' })).status, 200, 'a WAV after (control)');
    await pipeline.release();
  });

  test('one POST at a time: a second while one is under way gets 409, the first completes', { timeout: 20_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint', { disconnectionTimeout: 10 });
    const url = await call<string>(httpPost, 'getUrl');
    const body = wavPcm16(tone);
    const first = openPost(url, 'audio/wav', body.length);
    first.req.write(body.subarray(0, 1000));
    await pollUntil(async () => {
      const s = await server.stats();
      const el = ((s.pipelinesDetail ?? []) as { elements: { type: string; httpPost?: { session: string; bytesReceived: number } }[] }[])
        .flatMap((p) => p.elements).find((e) => e.type === 'HttpPostEndpoint');
      return el?.httpPost?.session === 'posting' && el.httpPost.bytesReceived >= 1000;
    }, { timeoutMs: 3000, what: 'the first upload under way' });
    const second = await post(url, wavPcm16(tone.subarray(0, 800)), { 'content-type': 'audio/wav' });
    assert.equal(second.status, 409);
    assert.match(second.body, /one at a time/);
    first.req.end(body.subarray(1000));
    const a = await first.answer;
    assert.equal(a.status, 200, a.body);
    await pipeline.release();
  });

  test('unknown, wrong-secret, malformed and released URLs: the same 404 with nothing in it; GET 405; a web page refused 403', { timeout: 20_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    const url = await call<string>(httpPost, 'getUrl');
    const base = `http://127.0.0.1:${server.port}/ferry-http-post/`;
    const [idPart] = url.slice(base.length).split('.');
    const wrongSecret = `${base}${idPart}.${randomBytes(32).toString('base64url')}`;
    const unknownId = `${base}${Buffer.from(`${pipeline.id}/nope_kurento.HttpPostEndpoint`).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    const answers = await Promise.all([wrongSecret, unknownId, `${base}x`, `${base}`, `${base}${idPart}`, `${url}/extra`].map((u) => post(u, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav' })));
    for (const a of answers) assert.deepEqual(a, { status: 404, body: 'not found\n' });
    assert.equal((await post(url, Buffer.alloc(0), {}, { method: 'GET' })).status, 405);
    const fromPage = await post(url, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav', origin: 'https://evil.example' });
    assert.equal(fromPage.status, 403, 'the control listener refuses web pages (FERRY_MEDIA_ALLOWED_ORIGINS)');
    const rebound = await post(url, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav', host: 'rebind.example' });
    assert.equal(rebound.status, 421);
    assert.equal((await post(url, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav' })).status, 200, 'the real URL works (control)');
    await pipeline.release();
    await server.waitForPipelineGone(pipeline.id, 5000);
    assert.deepEqual(await post(url, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav' }), { status: 404, body: 'not found\n' }, 'released: 404');
  });

  test('the size cap: 413 by Content-Length before reading, and for a chunked body that grows past it', { timeout: 20_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    const url = await call<string>(httpPost, 'getUrl');
    const big = wavPcm16(sineSamples(440, 8000, 60_000));
    assert.ok(big.length > MAX_BYTES);
    const declared = await post(url, big, { 'content-type': 'audio/wav' });
    assert.equal(declared.status, 413);
    assert.match(declared.body, /larger than 100000 bytes/);
    const chunked = await post(url, big, { 'content-type': 'audio/wav' }, { chunked: true });
    assert.equal(chunked.status, 413, 'answered 413 once the body grew past the cap');
    assert.match(chunked.body, /larger than 100000 bytes/);
    assert.equal((await post(url, wavPcm16(tone.subarray(0, 1600)), { 'content-type': 'audio/wav' })).status, 200, 'a body under the cap (control)');
    // POST after POST faster than it plays: what waits to be played is held to the cap too (a fresh
    // endpoint: the first 100 kB of the cut-off body above are still playing on this one)
    const fresh = await call<string>(await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint'), 'getUrl');
    const elevenSeconds = g711('mulaw', sineSamples(440, 8000, 90_000));
    assert.equal((await post(fresh, elevenSeconds, { 'content-type': 'audio/basic' })).status, 200, '11 s of µ-law under the cap');
    const more = await post(fresh, elevenSeconds.subarray(0, 20_000), { 'content-type': 'audio/basic' });
    assert.equal(more.status, 413, 'a second POST would leave more than the cap waiting');
    assert.match(more.body, /more than 13 s of audio would be waiting to be played/);
    await pipeline.release();
  });

  test('a POST that stops sending is given up after disconnectionTimeout, then the session ends and the URL is gone', { timeout: 20_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint', { disconnectionTimeout: 1 });
    const seen = collect(httpPost, ['MediaSessionStarted', 'MediaSessionTerminated']);
    const url = await call<string>(httpPost, 'getUrl');
    const body = wavPcm16(tone);
    const stalled = openPost(url, 'audio/wav', body.length);
    const t0 = Date.now();
    stalled.req.write(body.subarray(0, 2000));
    const a = await stalled.answer;
    const cutAfter = Date.now() - t0;
    assert.equal(a.status, 0, 'the connection is closed');
    assert.ok(cutAfter >= 900 && cutAfter < 4000, `given up ${cutAfter} ms after the last data (timeout 1 s)`);
    await pollUntil(() => seen.some((e) => e.type === 'MediaSessionTerminated'), { timeoutMs: 4000, what: 'MediaSessionTerminated' });
    assert.deepEqual(seen.map((e) => e.type), ['MediaSessionStarted', 'MediaSessionTerminated']);
    assert.equal((await post(url, wavPcm16(tone.subarray(0, 160)), { 'content-type': 'audio/wav' })).status, 404);
    await pipeline.release();
  });

  test('constructor parameters are checked as Kurento does (40001), describe gives its hierarchy, the upload operation is out of reach over JSON-RPC', { timeout: 20_000 }, async () => {
    const rpc = await RawRpc.open(server.url);
    try {
      const pipeline = await rpc.ok('create', { type: 'MediaPipeline', constructorParams: {}, properties: {} });
      const sessionId = pipeline.sessionId;
      for (const [params, message] of [
        [{ disconnectionTimeout: 'soon' }, "'disconnectionTimeout' parameter should be an integer"],
        [{ disconnectionTimeout: 1.5 }, "'disconnectionTimeout' parameter should be an integer"],
        [{ useEncodedMedia: 'yes' }, "'useEncodedMedia' parameter should be a boolean"],
      ] as const) {
        const r = await rpc.request('create', { type: 'HttpPostEndpoint', constructorParams: { mediaPipeline: pipeline.value, ...params }, properties: {}, sessionId });
        assert.equal(r.error?.code, 40001, JSON.stringify(r));
        assert.equal(r.error?.message, message);
      }
      const ok = await rpc.ok('create', { type: 'kurento.HttpPostEndpoint', constructorParams: { mediaPipeline: pipeline.value, disconnectionTimeout: 3 }, properties: {}, sessionId });
      const d = await rpc.ok('describe', { object: ok.value, sessionId });
      assert.deepEqual((d as { hierarchy?: string[] }).hierarchy, ['kurento.HttpEndpoint', 'kurento.SessionEndpoint', 'kurento.Endpoint', 'kurento.MediaElement', 'kurento.MediaObject']);
      const forged = await rpc.request('invoke', { object: ok.value, operation: 'ferry.httpPostUpload', operationParams: { token: 'x', step: 'open' }, sessionId });
      assert.ok(forged.error, 'the upload operation is not reachable over JSON-RPC');
      await rpc.ok('release', { object: pipeline.value, sessionId });
    } finally {
      await rpc.close();
    }
  });

  test('fuzz: hostile requests to the upload path get an answer or a closed connection, never a hang; the server goes on', { timeout: 60_000 }, async () => {
    const pipeline = await client.create('MediaPipeline');
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint', { disconnectionTimeout: 1 });
    const url = new URL(await call<string>(httpPost, 'getUrl'));
    const r = rng(4242);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
    const paths = [url.pathname, `${url.pathname}x`, '/ferry-http-post/', '/ferry-http-post/%00.%ff', `/ferry-http-post/${'A'.repeat(5000)}.${'B'.repeat(43)}`, `${url.pathname}?a=b`];
    const types = ['audio/wav', 'multipart/form-data; boundary=z', 'multipart/form-data', 'audio/basic', '\u0000', 'text/html'];
    for (let i = 0; i < 60; i++) {
      const body = r() < 0.5 ? junk(Math.floor(r() * 3000)) : Buffer.concat([wavPcm16(tone.subarray(0, Math.floor(r() * 400))), junk(Math.floor(r() * 50))]);
      const lying = r() < 0.2 ? body.length + 10 : body.length;
      const head = `POST ${pick(paths)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${pick(types)}\r\nContent-Length: ${lying}\r\n${r() < 0.2 ? 'Transfer-Encoding: chunked\r\n' : ''}\r\n`;
      const outcome = await new Promise<string>((resolve) => {
        const sock = net.connect(server.port, '127.0.0.1');
        let got = '';
        const timer = setTimeout(() => {
          sock.destroy();
          resolve('hang');
        }, 8000);
        sock.on('data', (d) => (got += d.toString('latin1')));
        sock.on('error', () => undefined);
        sock.on('close', () => {
          clearTimeout(timer);
          resolve(got === '' ? 'closed' : got.slice(0, 12));
        });
        sock.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
        sock.on('data', () => sock.end());
      });
      assert.notEqual(outcome, 'hang', `request ${i}`);
    }
    const stats = await server.stats();
    assert.ok(stats.pipelines >= 1, 'the server answers /stats');
    // a session may have ended meanwhile (a hostile POST that was valid enough started it): a fresh endpoint takes a WAV
    const fresh = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    assert.equal((await post(await call<string>(fresh, 'getUrl'), wavPcm16(tone.subarray(0, 800)), { 'content-type': 'audio/wav' })).status, 200);
    await pipeline.release();
  });

  test('without relay workers (FERRY_MEDIA_WORKERS=1) the endpoint in the main thread takes the same upload', { timeout: 30_000 }, async () => {
    const single = await MediaServerProcess.start({ FERRY_MEDIA_WORKERS: '1' });
    const c = await connectKurento(single.url);
    try {
      const pipeline = await c.create('MediaPipeline');
      const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      const peer = await RtpTestPeer.open();
      peers.push(peer);
      peer.useRemoteSdp(await call<string>(rtp, 'processOffer', peer.sdp()));
      const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
      const seen = collect(httpPost, ['EndOfStream']);
      await call(httpPost, 'connect', rtp);
      const url = await call<string>(httpPost, 'getUrl');
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${single.port}/ferry-http-post/`));
      assert.equal((await post(url, wavPcm16(tone.subarray(0, 4000)), { 'content-type': 'audio/wav' })).status, 200);
      await pollUntil(() => seen.length === 1, { timeoutMs: 5000, what: 'EndOfStream' });
      assert.equal(peer.received.length, 25);
      assert.ok(Buffer.concat(peer.received.map((p) => p.payload)).equals(g711('mulaw', tone.subarray(0, 4000))));
      await pipeline.release();
      const { stats } = await single.waitForStats((s) => s.pipelines === 0, 5000);
      assert.equal(stats.boundPorts, 0);
    } finally {
      c.close();
      await single.stop();
    }
  });

  test('release: every pipeline gone, no ports held', { timeout: 20_000 }, async () => {
    const { pipeline, rtp } = await phoneLeg();
    const httpPost = await call<KurentoObjectLike>(pipeline, 'create', 'HttpPostEndpoint');
    await call(httpPost, 'connect', rtp);
    const url = await call<string>(httpPost, 'getUrl');
    const body = wavPcm16(tone);
    const under = openPost(url, 'audio/wav', body.length);
    under.req.write(body.subarray(0, 4000));
    await pollUntil(async () => ((await server.stats()).pipelinesDetail as { elements: { httpPost?: { session: string } }[] }[]).some((p) => p.elements.some((e) => e.httpPost?.session === 'posting')), { timeoutMs: 3000, what: 'the upload under way' });
    await pipeline.release();
    under.req.end(body.subarray(4000));
    const a = await under.answer;
    assert.ok(a.status === 404 || a.status === 0, `an upload to a released endpoint ends (got ${a.status})`);
    assert.deepEqual(await post(url, body, { 'content-type': 'audio/wav' }), { status: 404, body: 'not found\n' });
    const { stats } = await server.waitForStats((s) => s.pipelines === 0, 5000);
    assert.equal(stats.boundPorts, 0);
    assert.equal(stats.elements, 0);
  });
});
