/**
 * A party in a call sending hold/resume re-INVITEs in a loop (in-dialog requests are not held to the per-source
 * rate of new requests): each one used to be carried to the other party as a re-INVITE of ferry's and published
 * as call.held / call.resumed (webhooks), at the sender's rate — one party could make ferry send a storm to the
 * other party and to webhook receivers. Now a call handles one re-offer at a time (the other party's, crossing
 * ours, gets 491: RFC 3261 §14.1; the sender's next one waits its turn, and any more meanwhile get 491) and a
 * party has REOFFER_BURST re-offers, then one per REOFFER_REFILL_MS; past that 503 with Retry-After, nothing
 * carried or published. Positive controls: the burst
 * is served and carried, a refill lets one more through, an offerless session refresh is always answered, and
 * the other party's own re-offer is served.
 *
 * The real Call with stand-in dialogs of srf's Dialog shape (test/helpers/stand-in-call-dialogs.ts), a
 * FakeClock, the in-memory state store and the real call event bus.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { Call, REOFFER_BURST, REOFFER_REFILL_MS } from '../../src/gateway/calls/call';
import type { InDialogRequest } from '../../src/gateway/calls/dialog-like';
import { LocalCallEventBus, type CallEvent } from '../../src/gateway/events/call-events';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { answeredCallRecord, partySdp as sdp, StandInDialog } from '../helpers/stand-in-call-dialogs';
import { pollUntil } from '../helpers/wait-for';

interface Answer { status: number; headers?: Record<string, string> }

function world() {
  const clock = new FakeClock(Date.now());
  const events = new LocalCallEventBus('gw', () => clock.now());
  const published: CallEvent[] = [];
  events.subscribe((e) => published.push(e));
  const record = answeredCallRecord('call-storm', clock.now(), sdp('sendrecv', '198.51.100.20'));
  const call = new Call(record, { store: new MemoryStateStore(), clock, log: createLogger('test.call'), endedRecordTtlMs: 60_000, loopbackMedia: 'from-loopback', events });
  const caller = new StandInDialog({ sdp: sdp() }, { sdp: sdp() });
  const callee = new StandInDialog({ sdp: sdp('sendrecv', '198.51.100.20') }, { sdp: sdp('sendrecv', '198.51.100.20') });
  call.connect(caller, callee, { adopted: true });
  /** a re-INVITE from `d` (offerless when body is empty); resolves with its answer */
  const reinvite = (d: StandInDialog, body: string): Promise<Answer> => new Promise((resolve) => {
    const req: InDialogRequest = { method: 'INVITE', body, source_address: d === caller ? '198.51.100.10' : '198.51.100.20', get: () => undefined, has: () => false };
    d.emit('modify', req, { send: (status: number, opts?: { headers?: Record<string, string> }) => resolve({ status, ...(opts?.headers ? { headers: opts.headers } : {}) }) });
  });
  const holdEvents = (): number => published.filter((e) => e.type === 'call.held' || e.type === 'call.resumed').length;
  return { clock, call, record, caller, callee, reinvite, holdEvents };
}

/** the carry of the last served re-offer is done (the call takes another one) */
async function settled(w: ReturnType<typeof world>, carried: number): Promise<void> {
  await pollUntil(() => w.callee.modified === carried, { timeoutMs: 5_000, what: `${carried} re-INVITEs carried to the other party` });
  // the handler finishes after the carried re-INVITE's answer: give its last awaits a turn
  await new Promise((r) => setImmediate(r));
}

describe('a party sending hold/resume re-INVITEs in a loop: one at a time, and at a bounded rate', () => {
  test('while a re-offer is carried to the other party: that party\'s own re-offer gets 491 (glare), the sender\'s next one waits its turn, a third gets 491; session refreshes are answered', { timeout: 20_000 }, async () => {
    const w = world();
    let release!: () => void;
    w.callee.hold = new Promise<void>((r) => { release = r; });
    assert.equal((await w.reinvite(w.caller, sdp('sendonly'))).status, 200, 'the hold is answered');
    await pollUntil(() => w.callee.modified === 1, { timeoutMs: 5_000, what: 'the hold carried to the callee' });
    // its carry is in progress: the callee's own re-offer crosses ours (491); the caller's resume waits
    assert.equal((await w.reinvite(w.callee, sdp('sendonly', '198.51.100.20'))).status, 491);
    let resumed: Answer | undefined;
    void w.reinvite(w.caller, sdp('sendrecv')).then((a) => { resumed = a; });
    await new Promise((r) => setImmediate(r));
    assert.equal(resumed, undefined, 'the resume waits for the hold to be carried');
    assert.equal((await w.reinvite(w.caller, sdp('sendonly'))).status, 491, 'a third re-offer meanwhile: 491');
    // an offerless session refresh is answered meanwhile
    assert.equal((await w.reinvite(w.caller, '')).status, 200);
    assert.equal(w.callee.modified, 1, 'nothing more carried yet');
    w.callee.hold = undefined;
    release();
    await pollUntil(() => resumed, { timeoutMs: 5_000, what: 'the resume answered' });
    assert.equal(resumed!.status, 200, 'the resume, once the hold is carried');
    await settled(w, 2);
    assert.equal(w.holdEvents(), 2, 'one call.held and one call.resumed');
  });

  test(`${REOFFER_BURST} re-offers served and carried, the rest of 200 answered 503 with Retry-After, not carried, not published; a refill lets one more through; the other party and session refreshes are served`, { timeout: 30_000 }, async () => {
    const w = world();
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 200; i++) {
      const a = await w.reinvite(w.caller, sdp(i % 2 ? 'sendrecv' : 'sendonly'));
      statuses.push(a.status);
      if (a.status === 200) await settled(w, statuses.filter((s) => s === 200).length);
      if (a.status === 503) retryAfter = a.headers?.['Retry-After'];
    }
    assert.equal(statuses.filter((s) => s === 200).length, REOFFER_BURST, 'the burst served');
    assert.equal(statuses.filter((s) => s === 503).length, 200 - REOFFER_BURST, 'the rest 503');
    assert.ok(retryAfter !== undefined && Number(retryAfter) >= 1 && Number(retryAfter) <= Math.ceil(REOFFER_REFILL_MS / 1000), `Retry-After: ${retryAfter}`);
    assert.equal(w.callee.modified, REOFFER_BURST, 'only the burst was carried to the other party');
    assert.equal(w.holdEvents(), REOFFER_BURST, 'and published');
    assert.ok(w.record.timeline.filter((e) => e.event === 'reinvite-refused').length <= 50, 'the refusals bounded in the timeline');

    // an offerless session refresh is not counted; the other party's own re-offer is served
    assert.equal((await w.reinvite(w.caller, '')).status, 200);
    assert.equal((await w.reinvite(w.callee, sdp('sendonly', '198.51.100.20'))).status, 200);
    await pollUntil(() => w.caller.modified === 1, { timeoutMs: 5_000, what: 'the callee\'s hold carried to the caller' });
    await new Promise((r) => setImmediate(r));

    // one refill later, one more re-offer from the caller is served and carried
    w.clock.advance(REOFFER_REFILL_MS);
    assert.equal((await w.reinvite(w.caller, sdp('sendonly'))).status, 200);
    assert.equal((await w.reinvite(w.caller, sdp('sendrecv'))).status === 200, false, 'and only one');
  });
});
