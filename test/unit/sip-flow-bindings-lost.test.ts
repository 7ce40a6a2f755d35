import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowBindings } from '../../src/sip/registrar/flow-bindings';
import type { Flow } from '../../src/sip/transport/flow';

function flow(id: string): Flow & { closed: boolean } {
  return { id, protocol: 'ws', reliable: true, remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.1', localPort: 2, closed: false, send: () => undefined };
}

/**
 * A registered connection that closes before its registration lapses leaves its Contacts "lost" until
 * then (the engine answers a request to one 410 Gone, as drachtio-server does for a registered
 * WebSocket's closed transport); a Contact never bound, unregistered or whose registration lapsed is not.
 */
describe('FlowBindings: lost bindings', { timeout: 10_000 }, () => {
  const A = 'sip:k7m2@df7jal23ls0d.invalid;transport=ws';
  const B = 'sip:q1w2@zz9plural.invalid;transport=ws';

  test('a connection closed before the registration lapsed: its Contact is lost until the registration would have lapsed; the other, never bound, is not', () => {
    const b = new FlowBindings();
    const f = flow('ws#1');
    b.bind(A, f, 10_000);
    assert.equal(b.lookup(A), f);
    assert.equal(b.wasLost(A, 1000), false, 'positive control: live, not lost');
    f.closed = true;
    b.forgetFlow(f, 1000);
    assert.equal(b.lookup(A), undefined);
    assert.equal(b.wasLost(A, 1000), true);
    assert.equal(b.wasLost(B, 1000), false);
    assert.equal(b.wasLost(A, 10_000), false, 'lapsed at its expiry');
    assert.equal(b.lostCount, 0);
  });

  test('bound again or unregistered: no longer lost; a registration already lapsed when the connection closed is not lost', () => {
    const b = new FlowBindings();
    const f1 = flow('ws#1');
    b.bind(A, f1, 10_000);
    b.bind(B, f1, 500);
    b.forgetFlow(f1, 1000);
    assert.equal(b.wasLost(A, 1000), true);
    assert.equal(b.wasLost(B, 1000), false, 'B had lapsed at 500');
    const f2 = flow('ws#2');
    b.bind(A, f2, 20_000);
    assert.equal(b.wasLost(A, 1000), false, 'registered again');
    b.forgetFlow(f2, 2000);
    assert.equal(b.wasLost(A, 2000), true);
    b.unbind(A);
    assert.equal(b.wasLost(A, 2000), false, 'unregistered');
  });

  test('at most MAX_LOST lost Contacts, the oldest forgotten first; expired ones pruned when a connection closes', () => {
    const b = new FlowBindings();
    const n = FlowBindings.MAX_LOST + 5;
    for (let i = 0; i < n; i++) {
      const f = flow(`ws#${i}`);
      b.bind(`sip:u${i}@h${i}.invalid;transport=ws`, f, i < 3 ? 1500 : undefined);
      b.forgetFlow(f, 1000);
    }
    assert.equal(b.lostCount, FlowBindings.MAX_LOST);
    assert.equal(b.wasLost('sip:u0@h0.invalid;transport=ws', 1000), false, 'the oldest went first');
    assert.equal(b.wasLost(`sip:u${n - 1}@h${n - 1}.invalid;transport=ws`, 1000), true);
    const f = flow('ws#last');
    b.bind('sip:last@last.invalid;transport=ws', f, 5000);
    b.forgetFlow(f, 2000);
    assert.equal(b.lostCount, FlowBindings.MAX_LOST, 'still bounded');
  });
});
