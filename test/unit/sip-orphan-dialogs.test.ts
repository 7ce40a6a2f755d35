/**
 * The orphan-dialog bookkeeping of ferry sip on a FakeClock: one deadline per dialog, released by a
 * new owner (stopping it and handing back what was held), fired exactly once otherwise, and no
 * timer left behind either way.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { Dialog } from '../../src/sip/dialog/dialog';
import { OrphanDialogs, type HeldRequest } from '../../src/sip/engine/orphan-dialogs';

function dialog(callId: string): Dialog {
  return new Dialog(`${callId};from-tag=a`, 'uas', callId, 'b', 'a', '<sip:x@h>;tag=b', '<sip:y@h>;tag=a', 'sip:y@h', [], undefined, '', 0);
}

function held(method: string): HeldRequest {
  return { request: { kind: 'request', method, uri: 'sip:x@h', headers: undefined as never, body: Buffer.alloc(0) }, flow: undefined as never,
    key: method, txn: undefined as never };
}

describe('ferry sip orphan dialogs (fake clock)', () => {
  test('a watched dialog reaches its deadline once, with what was held, after exactly the orphan time', { timeout: 30_000 }, () => {
    const clock = new FakeClock();
    const fired: Array<{ id: string; methods: string[]; ms: number }> = [];
    const orphans = new OrphanDialogs(clock, 30_000, (d, h, ms) => fired.push({ id: d.callId, methods: h.map((x) => x.request.method), ms }));
    const d = dialog('c1');
    orphans.watch(d);
    clock.advance(10_000);
    orphans.watch(d); // watching again does not restart the deadline
    orphans.hold(d, held('BYE'));
    assert.deepEqual([orphans.size, orphans.heldCount], [1, 1]);
    assert.deepEqual(orphans.holdingMethod('BYE'), [d]);
    assert.deepEqual(orphans.holdingMethod('INFO'), []);
    clock.advance(19_999);
    assert.deepEqual(fired, [], 'not before the orphan time');
    clock.advance(1);
    assert.deepEqual(fired, [{ id: 'c1', methods: ['BYE'], ms: 30_000 }]);
    clock.advance(60_000);
    assert.equal(fired.length, 1, 'exactly once');
    assert.deepEqual([orphans.size, orphans.heldCount, clock.pending()], [0, 0, 0], 'nothing left');
  });

  test('a dialog released before its deadline (claimed, taken over) never fires and hands back its held requests', { timeout: 30_000 }, () => {
    const clock = new FakeClock();
    let fired = 0;
    const orphans = new OrphanDialogs(clock, 1_500, () => fired++);
    const kept = dialog('kept');
    const lost = dialog('lost');
    orphans.watch(kept);
    orphans.hold(kept, held('BYE'));
    orphans.hold(kept, held('INFO'));
    orphans.watch(lost);
    clock.advance(1_000);
    assert.deepEqual(orphans.release(kept).map((h) => h.request.method), ['BYE', 'INFO']);
    assert.equal(orphans.isOrphaned(kept), false);
    assert.deepEqual(orphans.release(kept), [], 'a second release finds nothing');
    clock.advance(10_000);
    assert.equal(fired, 1, 'only the unreleased dialog reached its deadline (positive control)');
    assert.deepEqual([orphans.size, clock.pending()], [0, 0]);
  });

  test('holding a request for an unwatched dialog starts its deadline', { timeout: 30_000 }, () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const orphans = new OrphanDialogs(clock, 500, (d) => fired.push(d.callId));
    orphans.hold(dialog('h'), held('BYE'));
    clock.advance(500);
    assert.deepEqual(fired, ['h']);
  });
});
