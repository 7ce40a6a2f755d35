import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlacement, LAG_STEP_MS, type PlacementCandidate } from '../../src/gateway/media-servers/placement';

const server = (url: string, load: number, lagP99Ms?: number): PlacementCandidate => ({ url, up: true, draining: false, statsDown: false, load, lagP99Ms });

describe('placement of a new call over several media servers', () => {
  test('equal loads: a lag a few ms lower is no reason (listed first wins); a lagging server loses the tie', { timeout: 5_000 }, () => {
    const near = choosePlacement([server('A', 1, 3.9), server('B', 1, 0.4)]);
    assert.equal(near.ok && near.chosen.url, 'A');
    const lagging = choosePlacement([server('A', 1, 3 * LAG_STEP_MS), server('B', 1, 0.4)]);
    assert.equal(lagging.ok && lagging.chosen.url, 'B');
    const fewer = choosePlacement([server('A', 2, 0), server('B', 1, 3 * LAG_STEP_MS)]);
    assert.equal(fewer.ok && fewer.chosen.url, 'B', 'load first, lag only between equal loads');
    const noFigure = choosePlacement([server('A', 0, 5), server('B', 0)]);
    assert.equal(noFigure.ok && noFigure.chosen.url, 'A', 'no lag figure counts as 0: same step as 5 ms');
  });

  test('servers down, draining or silent are skipped; none left says why', { timeout: 5_000 }, () => {
    const r = choosePlacement([{ ...server('A', 0), up: false }, { ...server('B', 0), draining: true }, server('C', 9, 50)]);
    assert.equal(r.ok && r.chosen.url, 'C');
    const none = choosePlacement([{ ...server('A', 0), up: false }, { ...server('B', 0), draining: true }]);
    assert.deepEqual(none, { ok: false, detail: 'no media server available (1 unreachable, 1 draining)' });
  });
});
