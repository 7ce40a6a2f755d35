import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ForkBudget } from '../../src/gateway/calls/fork-budget';

/**
 * The budget of registrations rung at once beyond each call's first (FERRY_RING_MAX_FORKS_PER_SOURCE,
 * FERRY_RING_MAX_FORKS): a call gets what is left of its source's and the gateway's, never more than it
 * asked; a release gives back exactly what was granted, once; an IPv6 source is counted by its /64.
 */
describe('ring-all fork budget', { timeout: 10_000 }, () => {
  test('per source: a second call from the source gets what is left, another source its own; a release gives it back once', () => {
    const b = new ForkBudget({ perSource: 3, total: 100 }, 64);
    const g1 = b.take('192.0.2.7', 2);
    assert.deepEqual([g1.extra, g1.cutBy], [2, undefined]);
    const g2 = b.take('192.0.2.7', 7);
    assert.deepEqual([g2.extra, g2.cutBy], [1, 'per-source']);
    const g3 = b.take('192.0.2.7', 1);
    assert.deepEqual([g3.extra, g3.cutBy], [0, 'per-source']);
    assert.equal(b.take('198.51.100.4', 3).extra, 3, 'another source has its own budget');
    assert.equal(b.held('192.0.2.7'), 3);
    g1.release();
    g1.release();
    assert.equal(b.held('192.0.2.7'), 1, 'a second release gives nothing back twice');
    g3.release();
    assert.equal(b.take('192.0.2.7', 5).extra, 2);
  });

  test('in all: the gateway\'s limit cuts a call from a source with budget left; an IPv6 /64 is one source', () => {
    const b = new ForkBudget({ perSource: 10, total: 4 }, 64);
    assert.equal(b.take('2001:db8:0:1::5', 3).extra, 3);
    const same64 = b.take('2001:db8:0:1::99', 10);
    assert.deepEqual([same64.extra, same64.cutBy], [1, 'total']);
    assert.equal(b.held('2001:db8:0:1::1'), 4, 'both addresses of the /64 count as one source');
    assert.equal(b.held(), 4);
    same64.release();
    assert.equal(b.held(), 3);
    const off = new ForkBudget({ perSource: 0, total: 100 }, 64);
    assert.equal(off.take('192.0.2.7', 7).extra, 0, 'a limit of 0: every call rings one registration at a time');
  });
});
