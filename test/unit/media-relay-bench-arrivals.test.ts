import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseOptions, USAGE } from '../../bench/media/cli-options';
import { arrivalOffsetsMs, pacingLabel, runSetups, type CallSetup } from '../../bench/media/phases/bench-target';

/**
 * bench:media's open-loop set-up (--setup-rate): calls arrive on a schedule, each set-up started at its arrival
 * whether or not the earlier ones are up; the closed-loop bursts (--setup-concurrency) stay as they were.
 */

describe('bench:media open-loop arrivals (--setup-rate)', { timeout: 30_000 }, () => {
  test('even arrivals are spaced exactly 1/R s apart, the first at 0', () => {
    assert.deepEqual(arrivalOffsetsMs(5, 4, 'even'), [0, 250, 500, 750, 1000]);
    assert.deepEqual(arrivalOffsetsMs(3, 0.5, 'even'), [0, 2000, 4000]);
    assert.deepEqual(arrivalOffsetsMs(0, 10, 'even'), []);
    assert.throws(() => arrivalOffsetsMs(3, 0, 'even'), /rate must be > 0/);
  });

  test('poisson arrivals: the same seed gives the same schedule, mean gap 1/R s, never going back', () => {
    const a = arrivalOffsetsMs(20_000, 10, 'poisson', 1);
    assert.deepEqual(arrivalOffsetsMs(20_000, 10, 'poisson', 1), a, 'a fixed seed is a fixed schedule');
    assert.notDeepEqual(arrivalOffsetsMs(50, 10, 'poisson', 2), a.slice(0, 50), 'another seed, another schedule');
    assert.equal(a[0], 0);
    const gaps = a.slice(1).map((t, i) => t - a[i]!);
    assert.ok(gaps.every((g) => g >= 0));
    const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
    assert.ok(Math.abs(mean - 100) < 3, `mean gap ${mean} ms, expected 100 ms at 10/s`);
    // exponential gaps: about e^-1 of them longer than the mean, and some much shorter (the bursts of a real rate)
    const longer = gaps.filter((g) => g > 100).length / gaps.length;
    assert.ok(Math.abs(longer - Math.exp(-1)) < 0.02, `share of gaps above the mean ${longer}`);
    assert.ok(gaps.filter((g) => g < 10).length / gaps.length > 0.08);
  });

  test('open loop: a set-up starts at its arrival while an earlier one is still in flight, no earlier than scheduled', async () => {
    const t0 = performance.now();
    const startedAt: number[] = [];
    let thirdStarted!: () => void;
    const third = new Promise<void>((r) => (thirdStarted = r));
    const setups = await runSetups([0, 1, 2], { kind: 'rate', perSecond: 50, arrivals: 'even', seed: 1 }, async (i): Promise<CallSetup> => {
      startedAt[i] = performance.now() - t0;
      if (i === 2) thirdStarted();
      // the first call is up only once the third has arrived: a closed loop of any width below 3 never gets there
      if (i === 0) await third;
      return { ok: true, ms: performance.now() - t0 - startedAt[i]! };
    });
    assert.equal(setups.length, 3);
    assert.ok(setups.every((s) => s.ok && s.arrivalLateMs !== undefined && s.arrivalLateMs >= 0));
    assert.ok(setups[0]!.ms >= startedAt[2]! - startedAt[0]!, 'the first set-up lasted until the third arrived');
    // arrivals at 0, 20 and 40 ms (a timer may round by under a millisecond)
    assert.ok(startedAt[1]! >= 19 && startedAt[2]! >= 39, `started at ${startedAt.map((t) => t.toFixed(1)).join(', ')} ms`);
    assert.ok(startedAt[0]! <= startedAt[1]! && startedAt[1]! <= startedAt[2]!);
  });

  test('closed loop (the control): with 2 at a time the third set-up waits for one of the first two to finish', async () => {
    const events: string[] = [];
    let releaseFirst!: () => void;
    const first = new Promise<void>((r) => (releaseFirst = r));
    const run = runSetups([0, 1, 2], { kind: 'concurrency', limit: 2 }, async (i): Promise<CallSetup> => {
      events.push(`start ${i}`);
      if (i === 2) releaseFirst();
      if (i === 0) await first;
      events.push(`end ${i}`);
      return { ok: true, ms: 1 };
    });
    const setups = await run;
    // the first is held until the third starts: the third gets its lane only when the second finished
    assert.deepEqual(events.slice(0, 4), ['start 0', 'start 1', 'end 1', 'start 2']);
    assert.deepEqual([...events].sort(), ['end 0', 'end 1', 'end 2', 'start 0', 'start 1', 'start 2']);
    assert.ok(setups.every((s) => s.arrivalLateMs === undefined), 'closed-loop set-ups have no arrival schedule');
  });

  test('a set-up that throws becomes a failed set-up, not a rejected step', async () => {
    const setups = await runSetups([0, 1], { kind: 'rate', perSecond: 1000, arrivals: 'even', seed: 1 }, async (i): Promise<CallSetup> => {
      if (i === 1) throw new Error('no browser');
      return { ok: true, ms: 1 };
    });
    assert.equal(setups[0]!.ok, true);
    assert.deepEqual({ ok: setups[1]!.ok, error: setups[1]!.error }, { ok: false, error: 'no browser' });
  });

  test('options: --setup-rate, --arrivals, --arrival-seed; exclusive with --setup-concurrency; in --help', () => {
    assert.deepEqual(parseOptions([]).setupPacing, { kind: 'concurrency', limit: 10 });
    assert.deepEqual(parseOptions(['--setup-concurrency', '1']).setupPacing, { kind: 'concurrency', limit: 1 });
    assert.deepEqual(parseOptions(['--setup-rate', '5']).setupPacing, { kind: 'rate', perSecond: 5, arrivals: 'even', seed: 1 });
    assert.deepEqual(parseOptions(['--setup-rate', '0.5', '--arrivals', 'poisson', '--arrival-seed', '7']).setupPacing, {
      kind: 'rate',
      perSecond: 0.5,
      arrivals: 'poisson',
      seed: 7,
    });
    assert.throws(() => parseOptions(['--setup-rate', '5', '--setup-concurrency', '2']), /exclude each other/);
    assert.throws(() => parseOptions(['--setup-rate', '0']), /--setup-rate needs/);
    assert.throws(() => parseOptions(['--arrivals', 'poisson']), /go with --setup-rate/);
    assert.throws(() => parseOptions(['--setup-rate', '5', '--arrivals', 'bursty']), /even or poisson/);
    assert.match(USAGE, /--setup-rate <R>/);
    assert.equal(pacingLabel({ kind: 'concurrency', limit: 10 }), '10 at a time');
    assert.equal(pacingLabel({ kind: 'rate', perSecond: 5, arrivals: 'even', seed: 1 }), '5/s even');
    assert.equal(pacingLabel({ kind: 'rate', perSecond: 5, arrivals: 'poisson', seed: 3 }), '5/s poisson (seed 3)');
  });
});
