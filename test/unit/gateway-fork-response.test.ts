import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestFailure, callerStatusOf, endsSearch } from '../../src/gateway/calls/fork-response';

/** RFC 3261 16.7 step 6 for FERRY_RING=all: which of every registration's failures the caller gets */
const best = (...statuses: (number | undefined)[]): number | undefined => {
  const chosen = bestFailure(statuses.map((status, i) => ({ ...(status !== undefined ? { status } : {}), i })));
  return chosen ? statuses[chosen.i] : -1;
};

test('486 is preferred over 480, 408 and other 4xx, whatever the order', { timeout: 5000 }, () => {
  assert.equal(best(480, 486), 486);
  assert.equal(best(486, 480), 486);
  assert.equal(best(404, 408, 486, 480), 486);
  assert.equal(best(404, 408, 480), 480);
  assert.equal(best(404, 408), 408);
  assert.equal(best(404, 488), 404, 'among other 4xx: the first that came');
});

test('the lowest class wins: a 4xx over a 5xx; a 3xx over both', { timeout: 5000 }, () => {
  assert.equal(best(500, 404), 404);
  assert.equal(best(500, 502), 500);
  assert.equal(best(500, 302, 486), 302);
});

test('an unreachable registration (no status, 410, 503) counts as 480: below 486, and the first of equals is kept', { timeout: 5000 }, () => {
  assert.equal(callerStatusOf({}), 480);
  assert.equal(callerStatusOf({ status: 410 }), 480);
  assert.equal(callerStatusOf({ status: 503 }), 480);
  assert.equal(callerStatusOf({ status: 500 }), 500);
  assert.equal(best(410, 486), 486);
  assert.equal(best(503, 500), 503, 'a 503 from a registration is a 480 to the caller: it beats a 500');
  assert.equal(best(410, 480), 410, 'first of two 480s: the original failure is returned (the caller\'s handler reads unavailable from it)');
  assert.equal(best(undefined, 410), undefined);
});

test('a 6xx ends the search; nothing else does; no failure at all: undefined', { timeout: 5000 }, () => {
  assert.deepEqual([600, 603, 604, 606].map(endsSearch), [true, true, true, true]);
  assert.deepEqual([undefined, 486, 500, 599, 700].map(endsSearch), [false, false, false, false, false]);
  assert.equal(bestFailure([]), undefined);
});
