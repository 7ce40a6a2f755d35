import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock, type Clock, type TimerHandle } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { MediaConnection } from '../../src/gateway/kurento/media-connection';
import { CallMedia } from '../../src/gateway/kurento/call-media';
import { SdpError } from '../../src/gateway/calls/sdp-rewriter';
import { MediaServerProcess } from '../helpers/media-server-process';
import { captureLog } from '../helpers/captured-log';

/** The gateway's CallMedia against a real ferry media process, driven by the real kurento-client. */

/**
 * The ferry media process (default settings) the tests that need nothing special share: a start, with its
 * relay workers, costs seconds of CPU. The test that stops its server and the one with an element limit
 * start their own.
 */
let defaultMedia: Promise<MediaServerProcess> | undefined;
function sharedMediaServer(): Promise<MediaServerProcess> {
  defaultMedia ??= MediaServerProcess.start();
  return defaultMedia;
}
after(async () => {
  const media = await defaultMedia?.catch(() => undefined);
  await media?.stop();
});

/** CallMedia's two waits (ICE gathering, an unanswered release) run on the gateway's injected clock and are cleared. */

/** A FakeClock that records every timer: its delay and whether it was cancelled. */
class RecordingClock implements Clock {
  readonly fake = new FakeClock();
  readonly timers: { ms: number; cancelled: boolean }[] = [];
  now(): number {
    return this.fake.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const entry = { ms, cancelled: false };
    this.timers.push(entry);
    const h = this.fake.setTimeout(fn, ms);
    return { cancel: () => { entry.cancelled = true; h.cancel(); } };
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.fake.setInterval(fn, ms);
  }
}

describe('gateway call media on the injected clock', { timeout: 30_000 }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('a WebRTC offer waits for gathering on the clock (3 s) and cancels that timer when gathering is done', { timeout: 20_000 }, async () => {
    const media = await sharedMediaServer();
    const conn = new MediaConnection(media.url, createLogger('test-call-media'));
    cleanups.push(() => conn.close());
    await conn.connect();
    const clock = new RecordingClock();
    const callMedia = await CallMedia.build(conn, { caller: 'webrtc', callee: 'rtp' }, createLogger('test-call-media'), clock);
    const offer = await callMedia.offer('caller', ['PCMU']);
    assert.match(offer, /a=candidate:/, 'the candidates gathered are in the offer');
    assert.deepEqual(clock.timers, [{ ms: 3000, cancelled: true }], 'one gathering timer, on the injected clock, cancelled');
    assert.equal(clock.fake.pending(), 0);
    const rtpOffer = await callMedia.offer('callee', ['PCMU']);
    assert.match(rtpOffer, /m=audio/);
    assert.equal(clock.timers.length, 1, 'an RTP endpoint does not wait for gathering');
    await callMedia.release();
    assert.deepEqual(clock.timers[1], { ms: 2000, cancelled: true }, 'an answered release cancels its wait');
    assert.equal(clock.fake.pending(), 0);
    await media.waitForStats((st) => st.pipelines === 0, 3000);
  });

  test('a release the media server does not answer (process stopped) returns when the injected clock says 2 s passed, not before', { timeout: 20_000 }, async () => {
    const media = await MediaServerProcess.start();
    cleanups.push(() => media.stop());
    const conn = new MediaConnection(media.url, createLogger('test-call-media'));
    cleanups.push(() => conn.close());
    await conn.connect();
    const clock = new RecordingClock();
    const callMedia = await CallMedia.build(conn, { caller: 'rtp', callee: 'rtp' }, createLogger('test-call-media'), clock);
    process.kill(media.pid!, 'SIGSTOP'); // connected, but nothing answers
    let returned = false;
    try {
      const releasing = callMedia.release().then(() => { returned = true; });
      const startedAt = Date.now();
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      clock.fake.advance(1999);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(returned, false, 'still waiting at 1999 ms of the injected clock');
      clock.fake.advance(1);
      await releasing;
      assert.equal(returned, true, 'returned at 2000 ms of the injected clock');
      assert.ok(Date.now() - startedAt < 1500, 'long before 2 s of real time');
      assert.deepEqual(clock.timers, [{ ms: 2000, cancelled: true }]);
      assert.equal(clock.fake.pending(), 0);
    } finally {
      process.kill(media.pid!, 'SIGCONT');
    }
    await media.waitForStats((st) => st.pipelines === 0, 5000);
  });
});

/**
 * A hold from a webphone (re-INVITE on the WebRTC leg) does not ask the WebRtcEndpoint for a second
 * negotiation, so no "Endpoint already negotiated" error and no console stack trace; errors of the SDP
 * requests reach the gateway as rejections (kurento-client's promise form would trace and swallow them).
 */

function phoneSdp(port: number, direction: string): string {
  return ['v=0', 'o=phone 1 2 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', `a=${direction}`, ''].join('\r\n');
}

describe('gateway call media: renegotiation and SDP errors without console traces', { timeout: 30_000 }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  const traces: string[] = [];
  const originalTrace = console.trace;
  console.trace = (...args: unknown[]) => { traces.push(args.map(String).join(' ')); };
  after(async () => {
    console.trace = originalTrace;
    for (const c of cleanups.reverse()) await c();
  });

  async function setUp() {
    const media = await sharedMediaServer();
    const { logger, lines } = captureLog();
    const conn = new MediaConnection(media.url, logger);
    cleanups.push(() => conn.close());
    await conn.connect();
    const callMedia = await CallMedia.build(conn, { caller: 'webrtc', callee: 'rtp' }, logger, systemClock);
    cleanups.push(() => callMedia.release());
    return { media, callMedia, lines };
  }

  test('a call set-up that fails half-way releases its pipeline (callback form: a failed release would be logged, not traced)', { timeout: 20_000 }, async () => {
    // one element per pipeline: the second endpoint is refused after the pipeline and the first endpoint exist
    const small = await MediaServerProcess.start({ FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: '1' });
    cleanups.push(() => small.stop());
    const { logger } = captureLog();
    const conn = new MediaConnection(small.url, logger);
    cleanups.push(() => conn.close());
    await conn.connect();
    await assert.rejects(CallMedia.build(conn, { caller: 'rtp', callee: 'rtp' }, logger, systemClock));
    await small.waitForStats((st) => st.pipelines === 0 && st.elements === 0, 3000);
  });

  test('webphone hold: the negotiated WebRtcEndpoint is not asked again, nothing is traced; the kurento promise form would have traced (positive control)', { timeout: 20_000 }, async () => {
    const { callMedia, lines } = await setUp();
    const offer = await callMedia.offer('caller', ['PCMU']);
    traces.length = 0;
    const hold = offer.replace(/a=sendrecv/g, 'a=sendonly');
    assert.equal(await callMedia.renegotiate('caller', hold), undefined, 'the caller answers from its own SDP');
    assert.deepEqual(traces, []);
    assert.ok(lines.some((l) => String(l.message).startsWith('WebRTC leg renegotiated in SIP only')));
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('already negotiated')));
    // positive control: kurento-client's promise form on the same endpoint traces a stack and resolves undefined
    const promiseForm = (callMedia.caller as unknown as { processOffer(o: string): Promise<unknown> }).processOffer(hold);
    assert.equal(await promiseForm, undefined, 'kurento-client resolves instead of rejecting');
    assert.equal(traces.length, 1);
    assert.match(traces[0]!, /already negotiated/);
  });

  test('an RTP leg renegotiates (ferry media takes a second SDP) and a refused SDP rejects as SdpError, untraced', { timeout: 20_000 }, async () => {
    const { callMedia } = await setUp();
    traces.length = 0;
    const answer = await callMedia.answer('callee', phoneSdp(40000, 'sendrecv'));
    assert.match(answer, /m=audio \d+ RTP\/AVP/);
    const reanswer = await callMedia.renegotiate('callee', phoneSdp(40000, 'sendonly'));
    assert.match(reanswer ?? '', /a=recvonly/, 'the RTP endpoint answered the hold');
    await assert.rejects(callMedia.acceptAnswer('caller', 'v=0\r\n'), (err: Error & { code?: number }) => typeof err.code === 'number' && err.code >= 40000);
    const fresh = await setUp();
    await assert.rejects(fresh.callMedia.answer('callee', 'this is not SDP'), SdpError);
    assert.deepEqual(traces, []);
  });
});
