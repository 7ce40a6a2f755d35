import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { DirectListeners } from '../../src/media/relay/direct-listeners';

describe('DirectListeners: an event\'s listeners called as emit() would, without emit()', () => {
  test('in order, with the emitter as this; once() listeners once; removed ones no more; other events untouched', { timeout: 5_000 }, () => {
    const emitter = new EventEmitter();
    const direct = new DirectListeners<number>(emitter, 'rtp');
    const seen: string[] = [];
    direct.call(0); // no listener yet: nothing happens, nothing throws
    const a = function (this: unknown, v: number): void {
      assert.equal(this, emitter);
      seen.push(`a${v}`);
    };
    emitter.on('rtp', a);
    emitter.once('rtp', (v: number) => seen.push(`once${v}`));
    emitter.on('rtcp', () => seen.push('rtcp'));
    direct.call(1);
    direct.call(2);
    emitter.off('rtp', a);
    emitter.on('rtp', (v: number) => seen.push(`b${v}`));
    direct.call(3);
    assert.deepEqual(seen, ['a1', 'once1', 'a2', 'b3']);
    // size follows the event's listeners (once() gone after its call, a removed one gone), as listenerCount does
    assert.equal(direct.size, 1);
    assert.equal(direct.size, emitter.listenerCount('rtp'));
    emitter.removeAllListeners('rtp');
    assert.equal(direct.size, 0);
    // positive control: emit() gives the same calls for the same listeners
    const viaEmit: string[] = [];
    const e2 = new EventEmitter();
    e2.on('rtp', (v: number) => viaEmit.push(`b${v}`));
    e2.emit('rtp', 3);
    assert.deepEqual(viaEmit, seen.slice(-1));
  });

  test('a listener that throws stops the rest and the throw reaches the caller, as with emit()', { timeout: 5_000 }, () => {
    const emitter = new EventEmitter();
    const direct = new DirectListeners<number>(emitter, 'rtp');
    const seen: number[] = [];
    emitter.on('rtp', () => {
      throw new Error('bad listener');
    });
    emitter.on('rtp', (v: number) => seen.push(v));
    assert.throws(() => direct.call(1), /bad listener/);
    assert.deepEqual(seen, []);
  });
});
