import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';

test('FakeClock runs timers in time order, repeats intervals, and counts pending timers back to zero', { timeout: 30_000 }, () => {
  const clock = new FakeClock(0);
  const seen: string[] = [];
  clock.setTimeout(() => seen.push(`b@${clock.now()}`), 200);
  clock.setTimeout(() => seen.push(`a@${clock.now()}`), 100);
  const tick = clock.setInterval(() => seen.push(`i@${clock.now()}`), 150);
  clock.advance(320);
  assert.deepEqual(seen, ['a@100', 'i@150', 'b@200', 'i@300']);
  assert.equal(clock.pending(), 1);
  tick.cancel();
  assert.equal(clock.pending(), 0);
  assert.equal(clock.now(), 320);
});
