import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, type Clock, type TimerHandle } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { MediaConnection } from '../../src/gateway/kurento/media-connection';
import { CallMedia } from '../../src/gateway/kurento/call-media';
import { MediaServerProcess } from '../helpers/media-server-process';
import { TcpCutter } from '../helpers/media-tcp-cutter';

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
    const media = await MediaServerProcess.start();
    cleanups.push(() => media.stop());
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
