import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { DialogRequest, HeldInDialogRequests } from '../../src/gateway/adoption/held-in-dialog-requests';

/**
 * The gateway's holding of in-dialog requests for calls it is about to adopt
 * (src/gateway/adoption/held-in-dialog-requests.ts), on a fake clock: what is held, for how long,
 * what is delivered after an adoption and what gets 481. The end-to-end cases are F10's tests.
 */
function request(callId: string, method = 'BYE'): { req: DialogRequest; answers: number[] } {
  const answers: number[] = [];
  const req = { method, body: '', get: (h: string) => (h === 'Call-ID' ? callId : undefined), has: () => false } as DialogRequest;
  return { req, answers };
}

function world(opts: { awaits: (callId: string) => boolean; holdMs?: number }) {
  const clock = new FakeClock();
  const adopted = new Set<string>();
  const delivered: string[] = [];
  const held = new HeldInDialogRequests(
    (req) => {
      const id = req.get('Call-ID')!;
      if (!adopted.has(id)) return false;
      delivered.push(`${req.method} ${id}`);
      return true;
    },
    async (req) => opts.awaits(req.get('Call-ID')!),
    opts.holdMs ?? 5000,
    clock,
    createLogger('test.held'),
  );
  const offer = (callId: string, method = 'BYE'): number[] => {
    const r = request(callId, method);
    held.offer(r.req, { send: (status: number) => r.answers.push(status) });
    return r.answers;
  };
  return { clock, adopted, delivered, held, offer };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('held in-dialog requests', { timeout: 10_000 }, () => {
  test('before the first scan ends everything is held; an adoption delivers its own; open() answers the rest 481', async () => {
    const w = world({ awaits: () => false });
    const a = w.offer('call-a');
    const b = w.offer('call-b', 'UPDATE');
    assert.equal(w.held.size, 2);
    assert.deepEqual([a, b], [[], []], 'nothing answered while the first scan runs');
    w.adopted.add('call-a');
    w.held.deliver();
    assert.deepEqual(w.delivered, ['BYE call-a']);
    w.held.open();
    assert.deepEqual(b, [481]);
    assert.equal(w.held.size, 0);
    assert.equal(w.clock.pending(), 0, 'no timer left');
  });

  test('after the first scan: a request of a call awaiting its owner\'s lease is held until adopted, one matching no call gets 481 at once', async () => {
    const w = world({ awaits: (id) => id === 'call-lease' });
    w.held.open();
    const unknown = w.offer('call-unknown');
    const waiting = w.offer('call-lease');
    await settle();
    assert.deepEqual(unknown, [481]);
    assert.deepEqual(waiting, [], 'held');
    w.clock.advance(4000);
    w.adopted.add('call-lease');
    w.held.deliver();
    assert.deepEqual(w.delivered, ['BYE call-lease']);
    w.clock.advance(5000);
    assert.deepEqual(waiting, [], 'a delivered request is not answered 481 later');
    assert.equal(w.clock.pending(), 0);
  });

  test('a held request still unclaimed at the deadline gets 481 then, not before', async () => {
    const w = world({ awaits: () => true, holdMs: 5000 });
    w.held.open();
    const waiting = w.offer('call-lease');
    await settle();
    w.clock.advance(4999);
    assert.deepEqual(waiting, []);
    w.clock.advance(1);
    assert.deepEqual(waiting, [481]);
    assert.equal(w.held.size, 0);
  });

  test('a request whose call is adopted while its lookup runs is delivered, not held', async () => {
    const w = world({ awaits: () => true });
    w.held.open();
    const r = w.offer('call-x');
    w.adopted.add('call-x');
    await settle();
    assert.deepEqual(w.delivered, ['BYE call-x']);
    assert.deepEqual(r, []);
    assert.equal(w.held.size, 0);
    assert.equal(w.clock.pending(), 0);
  });

  test('close() answers everything still held 481', async () => {
    const w = world({ awaits: () => true });
    const early = w.offer('call-1');
    w.held.open();
    w.adopted.clear();
    const late = w.offer('call-2');
    await settle();
    w.held.close();
    assert.deepEqual(early, [481], 'matched no call after the first scan');
    assert.deepEqual(late, [481]);
    assert.equal(w.clock.pending(), 0);
  });
});
