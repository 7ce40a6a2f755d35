/**
 * docs/webhooks.md, "Once per change": a hold or resume asked through the REST API publishes
 * call.held / call.resumed when it changes what the gateway offers the chosen parties; asking again
 * for what they already have (a second hold of held parties, a resume of parties not held) re-INVITEs
 * them again but is no second event. Positive controls: the first hold, the resume after it, and a
 * hold of `both` after the callee alone was held (the caller's side changes) each give their event.
 *
 * The real Call and CallControl with stand-in dialogs of srf's Dialog shape
 * (test/helpers/stand-in-call-dialogs.ts), a FakeClock, the in-memory state store and the real bus.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { CallControl } from '../../src/gateway/api/call-control';
import { Call } from '../../src/gateway/calls/call';
import { CallRegistry } from '../../src/gateway/calls/call-registry';
import { LocalCallEventBus, type CallEvent } from '../../src/gateway/events/call-events';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { answeredCallRecord, partySdp as sdp, StandInDialog } from '../helpers/stand-in-call-dialogs';

function world() {
  const clock = new FakeClock(Date.now());
  const events = new LocalCallEventBus('gw', () => clock.now());
  const published: CallEvent[] = [];
  events.subscribe((e) => published.push(e));
  const store = new MemoryStateStore();
  const call = new Call(answeredCallRecord('call-api-hold', clock.now(), sdp('sendrecv', '198.51.100.20')), { store, clock, log: createLogger('test.call'), endedRecordTtlMs: 60_000, loopbackMedia: 'from-loopback', events });
  const caller = new StandInDialog({ sdp: sdp() }, { sdp: sdp() });
  const callee = new StandInDialog({ sdp: sdp('sendrecv', '198.51.100.20') }, { sdp: sdp('sendrecv', '198.51.100.20') });
  call.connect(caller, callee, { adopted: true });
  const registry = new CallRegistry();
  registry.add(call);
  const control = new CallControl({ registry, store, clock, instanceId: 'gw', transfers: () => undefined });
  const holdEvents = (): string[] => published.filter((e) => e.type === 'call.held' || e.type === 'call.resumed').map((e) => `${e.type} ${(e.data.sides as string[]).join('+')}`);
  return { call, caller, callee, control, holdEvents };
}

describe('REST API hold and resume: one event per change', { timeout: 10_000 }, () => {
  test('a second hold of held parties and a resume of parties not held re-INVITE them but publish nothing', async () => {
    const w = world();
    await w.control.setHold(w.call, ['caller', 'callee'], false);
    assert.deepEqual(w.holdEvents(), [], 'a resume of a call not held is no event');
    assert.equal(w.caller.modified, 1, 'the resume was still sent');
    await w.control.setHold(w.call, ['caller', 'callee'], true);
    assert.deepEqual(w.holdEvents(), ['call.held caller+callee'], 'the hold: one event');
    await w.control.setHold(w.call, ['caller', 'callee'], true);
    assert.equal(w.caller.modified, 3, 'the second hold was still sent');
    assert.deepEqual(w.holdEvents(), ['call.held caller+callee'], 'the second hold: no second event');
    await w.control.setHold(w.call, ['caller', 'callee'], false);
    await w.control.setHold(w.call, ['caller', 'callee'], false);
    assert.deepEqual(w.holdEvents(), ['call.held caller+callee', 'call.resumed caller+callee'], 'one resume event for two resumes');
  });

  test('a hold of both after the callee alone was held is a change (the caller\'s side): its event comes', async () => {
    const w = world();
    await w.control.setHold(w.call, ['callee'], true);
    await w.control.setHold(w.call, ['caller', 'callee'], true);
    assert.deepEqual(w.holdEvents(), ['call.held callee', 'call.held caller+callee']);
  });
});
