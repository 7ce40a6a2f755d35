/**
 * DialogLifetime, the one owner of the engine's dialogs: created / confirmed / ended events, each
 * exactly once; a dialog that ended is remembered (a claim must not bring it back) unless it was
 * replaced or the engine stopped; ending a dialog twice, or a replaced object, does nothing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { Dialog, makeDialogId } from '../../src/sip/dialog/dialog';
import { DialogLifetime } from '../../src/sip/engine/dialog-lifetime';

function dialog(callId: string, localTag = 'l1', remoteTag = 'r1'): Dialog {
  return new Dialog(makeDialogId(callId, localTag), 'uac', callId, localTag, remoteTag, `<sip:a@x>;tag=${localTag}`,
    `<sip:b@y>;tag=${remoteTag}`, 'sip:b@127.0.0.1:5099', [], undefined, '<sip:a@127.0.0.1>', 1);
}

describe('DialogLifetime', () => {
  test('created, confirmed and ended are each announced once; an ended id is remembered', { timeout: 5_000 }, () => {
    const life = new DialogLifetime(new FakeClock(), createLogger('test.dialog-lifetime'));
    const events: string[] = [];
    life.on('created', (d, origin) => events.push(`created:${d.callId}:${origin}`));
    life.on('confirmed', (d) => events.push(`confirmed:${d.callId}`));
    life.on('ended', (d, cause) => events.push(`ended:${d.callId}:${cause}`));
    const early = life.create(dialog('c1'), 'uac-reliable-1xx', false);
    assert.equal(early.confirmed, false);
    life.confirm(early);
    life.confirm(early);
    assert.equal(life.size, 1);
    assert.equal(life.find('c1', 'l1', 'r1'), early);
    assert.equal(life.end(early, 'bye'), true);
    assert.equal(life.end(early, 'bye'), false, 'ending twice does nothing');
    life.confirm(early);
    assert.deepEqual(events, ['created:c1:uac-reliable-1xx', 'confirmed:c1', 'ended:c1:bye']);
    assert.equal(life.size, 0);
    assert.equal(life.wasEnded(early.id), true);
    assert.equal(life.wasEnded(makeDialogId('never', 'l1')), false, 'control: an id never seen is not remembered');
  });

  test('a dialog created under a live id replaces it: the old one ends as replaced (not remembered), ending it again is a no-op', { timeout: 5_000 }, () => {
    const life = new DialogLifetime(new FakeClock(), createLogger('test.dialog-lifetime'));
    const ended: string[] = [];
    life.on('ended', (_d, cause) => ended.push(cause));
    const first = life.create(dialog('c2'), 'snapshot', true);
    const second = life.create(dialog('c2'), 'claim', true);
    assert.deepEqual(ended, ['replaced']);
    assert.equal(life.get(first.id), second);
    assert.equal(life.isLive(first), false);
    assert.equal(life.end(first, 'bye'), false, 'the replaced object no longer ends anything');
    assert.equal(life.get(first.id), second);
    assert.equal(life.wasEnded(first.id), false, 'replaced is not an end a claim must respect');
    life.end(second, 'shutdown');
    assert.equal(life.wasEnded(second.id), false, 'nor is the engine stopping');
    assert.equal(life.size, 0);
  });
});
