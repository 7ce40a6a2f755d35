import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventLoopLag } from '../../src/media/server/event-loop-lag';
import { startMediaServer } from '../../src/media/server/media-server';
import { pollUntil } from '../helpers/wait-for';

/**
 * The figures are real-time measurements of this process's event loop, so the thresholds are relative to
 * the stall the test causes (a lag of at least two thirds of it), never absolute machine-speed numbers;
 * and the test waits for the window that shows the stall (and for a later one that no longer does)
 * instead of sleeping a window length.
 */
const SHOWS = 2 / 3;

/** The monitor has taken samples (a stall shows from the start anyway: each sample is how late it ran). */
async function monitorArmed(lag: EventLoopLag): Promise<void> {
  await pollUntil(() => lag.samples > 0, { timeoutMs: 2_000, stepMs: 5, what: 'the lag monitor to take its first sample' });
}

function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: the relay would be this late for every call
  }
}

test('event-loop lag: a 150 ms stall shows in the window that saw it, and not in the next quiet one', { timeout: 30_000 }, async () => {
  const windowMs = 400;
  const stallMs = 150;
  const lag = new EventLoopLag(windowMs);
  try {
    assert.deepEqual(lag.snapshot(), { eventLoopLagP99Ms: 0, eventLoopLagMaxMs: 0 });
    await monitorArmed(lag);
    blockLoop(stallMs);
    const stalled = await pollUntil(() => (lag.snapshot().eventLoopLagMaxMs >= stallMs * SHOWS ? lag.snapshot() : undefined),
      { timeoutMs: 3 * windowMs, what: `a window showing the ${stallMs} ms stall` });
    // a later window no longer carries it (the window slides: the stall's slice drops out after one window)
    const quiet = await pollUntil(() => (lag.snapshot().eventLoopLagMaxMs < stalled.eventLoopLagMaxMs * SHOWS ? lag.snapshot() : undefined),
      { timeoutMs: 3 * windowMs, what: `a quiet window after the stall (stalled max ${stalled.eventLoopLagMaxMs} ms)` });
    assert.ok(quiet.eventLoopLagP99Ms <= quiet.eventLoopLagMaxMs);
  } finally {
    lag.close();
  }
});

test('ferry media /stats carries eventLoopLagP99Ms and eventLoopLagMaxMs', { timeout: 30_000 }, async () => {
  const server = await startMediaServer({ config: { host: '127.0.0.1', port: 0, lagWindowMs: 2_000 } });
  try {
    const stallMs = 120;
    const read = async () => (await (await fetch(`http://127.0.0.1:${server.port}/stats`)).json()) as Record<string, number>;
    // the server's monitor answers before any slice of its window completed (nothing measured yet: 0)
    const first = await read();
    assert.ok(first.eventLoopLagMaxMs >= 0);
    blockLoop(stallMs);
    // the stall shows once its slice (a tenth of the window) completes, for one whole window (2 s: long
    // enough that a read on a loaded machine does not miss it)
    const stats = await pollUntil(async () => { const s = await read(); return s.eventLoopLagMaxMs >= stallMs * SHOWS ? s : undefined; },
      { timeoutMs: 6_000, what: `/stats showing the ${stallMs} ms stall` });
    assert.equal(stats.pipelines, 0);
    assert.ok(stats.eventLoopLagP99Ms >= 0 && stats.eventLoopLagP99Ms <= stats.eventLoopLagMaxMs);
  } finally {
    await server.close();
  }
});
