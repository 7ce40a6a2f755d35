import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { settledRss } from '../../bench/media/phases/settled-baseline';

/** bench:media's memory baseline waits until the server's RSS stops growing (a fake clock: no real waiting). */
describe('bench:media memory baseline after start-up', { timeout: 10_000 }, () => {
  const MiB = 1048576;
  const run = (series: number[], maxWaitMs = 20_000) => {
    let i = 0;
    let slept = 0;
    return settledRss(
      () => series[Math.min(i++, series.length - 1)]!,
      { intervalMs: 500, stableBytes: MiB / 2, stableForMs: 1000, maxWaitMs },
      async (ms) => {
        slept += ms;
      },
    ).then((r) => ({ ...r, slept }));
  };

  test('a server still growing after "ready" is read once it stops: the growth is not counted', async () => {
    const r = await run([70 * MiB, 74 * MiB, 77 * MiB, 78 * MiB, 78 * MiB, 78.1 * MiB, 90 * MiB]);
    assert.equal(r.settled, true);
    assert.equal(r.rssBytes, 78.1 * MiB, 'the reading after three within half a MiB');
    assert.equal(r.waitedMs, 2500);
  });

  test('control: a server that is already still is read after one stable span', async () => {
    const r = await run([78 * MiB, 78 * MiB, 78 * MiB, 78 * MiB]);
    assert.equal(r.settled, true);
    assert.equal(r.waitedMs, 1000);
  });

  test('a server that never settles is read after the maximum wait, and says so', async () => {
    const r = await run(Array.from({ length: 100 }, (_, k) => (70 + k) * MiB), 5000);
    assert.equal(r.settled, false);
    assert.equal(r.waitedMs, 5000);
    assert.equal(r.rssBytes, 80 * MiB);
  });
});
