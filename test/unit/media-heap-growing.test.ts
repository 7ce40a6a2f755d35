import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { DEFAULT_HEAP_GROWING_PERCENT, heapGrowingPercent } from '../../src/media/server/heap-growing';

const ROOT = path.join(__dirname, '..', '..');

/**
 * A child Node process applies the setting the way `ferry media` does (at run time, through
 * v8.setFlagsFromString), then keeps a fixed live set and churns garbage that outlives the young generation;
 * it prints the highest heapUsed it saw. Count-driven, not time-driven: the same work in every run.
 */
function peakHeapMb(percent: string): number {
  const script = `
    const { applyHeapGrowingPercent } = require(${JSON.stringify(path.join(ROOT, 'src/media/server/heap-growing.ts'))});
    applyHeapGrowingPercent({ FERRY_MEDIA_HEAP_GROWING_PERCENT: ${JSON.stringify(percent)} });
    const live = [];
    for (let i = 0; i < 200000; i++) live.push({ a: i, b: 'x' + i, c: [i, i + 1] });
    let keep = [];
    let peak = 0;
    for (let round = 0; round < 400; round++) {
      for (let i = 0; i < 20000; i++) keep.push({ v: i, s: 'y' + i });
      if (keep.length > 200000) keep = [];
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    process.stdout.write(String(peak / 1048576));
  `;
  const r = spawnSync(process.execPath, ['--max-semi-space-size=2', '--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

describe('ferry media heap growing step (FERRY_MEDIA_HEAP_GROWING_PERCENT)', { timeout: 120_000 }, () => {
  test('the setting: default, 0 = V8 own rule, refused outside 0..400', () => {
    assert.equal(heapGrowingPercent({}), DEFAULT_HEAP_GROWING_PERCENT);
    assert.equal(heapGrowingPercent({ FERRY_MEDIA_HEAP_GROWING_PERCENT: '0' }), 0);
    assert.equal(heapGrowingPercent({ FERRY_MEDIA_HEAP_GROWING_PERCENT: '50' }), 50);
    assert.throws(() => heapGrowingPercent({ FERRY_MEDIA_HEAP_GROWING_PERCENT: '500' }), /FERRY_MEDIA_HEAP_GROWING_PERCENT=500/);
    assert.throws(() => heapGrowingPercent({ FERRY_MEDIA_HEAP_GROWING_PERCENT: 'abc' }), /FERRY_MEDIA_HEAP_GROWING_PERCENT/);
  });

  test('V8 honours the flag set at run time: the same churn peaks far lower than with V8 own rule (control: 0)', () => {
    const own = peakHeapMb('0');
    const stepped = peakHeapMb(String(DEFAULT_HEAP_GROWING_PERCENT));
    assert.ok(stepped < own * 0.75, `peak heapUsed ${stepped.toFixed(1)} MiB with ${DEFAULT_HEAP_GROWING_PERCENT} %, ${own.toFixed(1)} MiB with V8's own rule`);
  });
});
