import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedialSchedule } from '../../src/gateway/kurento/redial-schedule';

describe('gateway: redial schedule for a lost media server', { timeout: 5000 }, () => {
  test('doubles from 100 ms to a 500 ms cap, and starts over after a reset', () => {
    const s = new RedialSchedule();
    assert.deepEqual(Array.from({ length: 7 }, () => s.next()), [100, 200, 400, 500, 500, 500, 500]);
    s.reset();
    assert.equal(s.next(), 100);
  });

  test('stays at the cap however long the outage (no overflow)', () => {
    const s = new RedialSchedule(50, 2000);
    let last = 0;
    for (let i = 0; i < 10_000; i++) last = s.next();
    assert.equal(last, 2000);
  });
});
