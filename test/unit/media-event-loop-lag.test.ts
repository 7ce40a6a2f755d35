import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopLag } from '../../src/media/server/event-loop-lag';
import { startMediaServer } from '../../src/media/server/media-server';

function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: the relay would be this late for every call
  }
}

test('event-loop lag: a 150 ms stall shows in the window that saw it, and not in the next quiet one', async () => {
  const lag = new EventLoopLag(400);
  try {
    assert.deepEqual(lag.snapshot(), { eventLoopLagP99Ms: 0, eventLoopLagMaxMs: 0 });
    await sleep(50);
    blockLoop(150);
    await sleep(450);
    const stalled = lag.snapshot();
    assert.ok(stalled.eventLoopLagMaxMs >= 100, `max lag ${stalled.eventLoopLagMaxMs} ms after a 150 ms stall`);
    await sleep(450);
    const quiet = lag.snapshot();
    assert.ok(quiet.eventLoopLagMaxMs < 100, `max lag ${quiet.eventLoopLagMaxMs} ms in a quiet window`);
  } finally {
    lag.close();
  }
});

test('ferry media /stats carries eventLoopLagP99Ms and eventLoopLagMaxMs', async () => {
  process.env.FERRY_MEDIA_LAG_WINDOW_MS = '500';
  const server = await startMediaServer({ config: { host: '127.0.0.1', port: 0 } });
  try {
    await sleep(50);
    blockLoop(120);
    await sleep(550); // the stall falls in the first 500 ms window, read during the second
    const stats = (await (await fetch(`http://127.0.0.1:${server.port}/stats`)).json()) as Record<string, number>;
    assert.equal(stats.pipelines, 0);
    assert.ok(stats.eventLoopLagMaxMs >= 80, `eventLoopLagMaxMs ${stats.eventLoopLagMaxMs}`);
    assert.ok(stats.eventLoopLagP99Ms >= 0 && stats.eventLoopLagP99Ms <= stats.eventLoopLagMaxMs);
  } finally {
    delete process.env.FERRY_MEDIA_LAG_WINDOW_MS;
    await server.close();
  }
});
