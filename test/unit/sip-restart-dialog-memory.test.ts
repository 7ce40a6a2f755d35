import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { EndedDialogIds } from '../../src/sip/engine/ended-dialog-ids';
import { RestartHeldRequests } from '../../src/sip/engine/restart-held-requests';
import type { HeldRequest } from '../../src/sip/engine/orphan-dialogs';

/** a held request as the engine keeps it; only its identity matters to these structures */
function held(name: string): HeldRequest {
  return { key: name } as unknown as HeldRequest;
}

describe('F11: what ferry sip remembers around a restart', { timeout: 10_000 }, () => {
  test('F11: ended dialog ids are remembered for their time and count bound, oldest forgotten first', () => {
    const clock = new FakeClock();
    const ended = new EndedDialogIds(clock, 1000, 3);
    ended.remember('a');
    clock.advance(400);
    ended.remember('b');
    ended.remember('c');
    assert.ok(ended.has('a') && ended.has('b') && ended.has('c'));
    ended.remember('d');
    assert.equal(ended.has('a'), false, 'the oldest goes past the count bound');
    assert.equal(ended.size, 3);
    clock.advance(999);
    assert.ok(ended.has('b'), 'still remembered just before its time');
    clock.advance(1);
    assert.equal(ended.has('b'), false, 'forgotten after its time');
    assert.equal(ended.has('d'), false);
    assert.equal(ended.size, 0);
  });

  test('F11: requests for unknown dialogs are held only inside the window after start, handed over by dialog, the rest answered at its end', () => {
    const clock = new FakeClock();
    const expired: HeldRequest[] = [];
    const hold = new RestartHeldRequests(clock, 5000, (h) => expired.push(h));
    assert.ok(hold.hold(held('bye-1'), 'call-1', 'ours', 'theirs'));
    assert.ok(hold.hold(held('info-1'), 'call-1', 'ours', 'theirs'));
    assert.ok(hold.hold(held('bye-2'), 'call-2', 'ours2', 'theirs2'));
    assert.deepEqual(hold.take('call-1', 'theirs', 'ours').map((h) => h.key), [], 'tags must match the dialog as ferry sip keeps it');
    assert.deepEqual(hold.take('call-1', 'ours', 'theirs').map((h) => h.key), ['bye-1', 'info-1'], 'in arrival order');
    assert.equal(hold.size, 1);
    clock.advance(4999);
    assert.equal(expired.length, 0);
    clock.advance(1);
    assert.deepEqual(expired.map((h) => h.key), ['bye-2'], 'answered at the end of the window');
    assert.equal(hold.hold(held('late'), 'call-3', 'a', 'b'), false, 'after the window: not held (481 at once)');
    assert.equal(hold.size, 0);
    const off = new RestartHeldRequests(clock, 0, () => assert.fail('nothing to expire'));
    assert.equal(off.hold(held('x'), 'c', 'a', 'b'), false, 'a 0 ms window holds nothing');
  });
});
