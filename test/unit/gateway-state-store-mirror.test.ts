import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { bindingKey, StateStoreMirror } from '../../src/gateway/state/state-store-mirror';
import { CallRecord } from '../../src/gateway/state/call-record';
import { Registration } from '../../src/gateway/state/registration';

/** What the gateway writes back after a store outage (StateStoreMirror), on a fake clock. */
function call(id: string, state: CallRecord['state'] = 'answered'): CallRecord {
  return {
    id,
    state,
    createdAt: 0,
    caller: { uri: 'sip:alice@d', kind: 'webrtc', party: 'alice' },
    callee: { uri: 'sip:1@d', kind: 'rtp', party: 'pbx' },
    media: { mediaUrl: 'ws://x' },
    owner: 'gw',
    timeline: [],
  };
}

function reg(user: string, contact: string, expiresAt: number): Registration {
  return { aor: `sip:${user}@d`, user, contact, transport: 'udp', source: '127.0.0.1:1', webrtc: false, registeredAt: 0, expiresAt };
}

describe('state store mirror (write-back after an outage)', { timeout: 10_000 }, () => {
  test('a live call is written back as live, with its newest version; a caller mutating its record later does not change the copy', () => {
    const clock = new FakeClock(1000);
    const m = new StateStoreMirror(() => clock.now());
    const rec = call('a');
    m.callWritten(rec, undefined);
    rec.state = 'ending';
    assert.deepEqual(m.desiredCall('a'), { kind: 'live', record: call('a') });
    m.callWritten({ ...call('a'), timeline: [{ t: 1, event: 'hold' }] }, undefined);
    const want = m.desiredCall('a');
    assert.equal(want?.kind, 'live');
    assert.deepEqual(want?.kind === 'live' ? want.record.timeline : [], [{ t: 1, event: 'hold' }]);
    m.callConfirmed('a', want!);
    assert.equal(m.desiredCall('a')?.kind, 'live', 'a live call stays mirrored after it was confirmed (Redis may come back empty)');
    assert.equal(m.liveCallCount, 1);
  });

  test('an ended call is never written back as live: ended with its remaining TTL until confirmed, deleted once its TTL has passed', () => {
    const clock = new FakeClock(1000);
    const m = new StateStoreMirror(() => clock.now());
    m.callWritten(call('a'), undefined);
    m.callWritten(call('a', 'ended'), 10_000);
    clock.advance(4000);
    assert.deepEqual(m.desiredCall('a'), { kind: 'ended', record: call('a', 'ended'), ttlMs: 6000 });
    assert.equal(m.liveCallCount, 0);
    clock.advance(6000);
    assert.deepEqual(m.desiredCall('a'), { kind: 'deleted' }, 'past its backstop the record should not exist');
    m.callConfirmed('a', { kind: 'deleted' });
    assert.equal(m.desiredCall('a'), undefined);
    assert.deepEqual(m.callIds(), []);
  });

  test('a confirmed end is forgotten, unless a newer write came meanwhile', () => {
    const clock = new FakeClock(1000);
    const m = new StateStoreMirror(() => clock.now());
    m.callWritten(call('a', 'ended'), 10_000);
    const first = m.desiredCall('a')!;
    m.callWritten({ ...call('a', 'ended'), reason: 'sip-bye' }, 10_000);
    m.callConfirmed('a', first);
    assert.equal(m.desiredCall('a')?.kind, 'ended', 'the newer end is still to be confirmed');
    m.callConfirmed('a', m.desiredCall('a')!);
    assert.equal(m.desiredCall('a'), undefined);
  });

  test('a deletion is kept until confirmed; a write after it wins', () => {
    const clock = new FakeClock(1000);
    const m = new StateStoreMirror(() => clock.now());
    m.callWritten(call('a'), undefined);
    m.callDeleted('a');
    assert.deepEqual(m.desiredCall('a'), { kind: 'deleted' });
    m.callWritten(call('a'), undefined);
    m.callConfirmed('a', { kind: 'deleted' });
    assert.equal(m.desiredCall('a')?.kind, 'live');
    m.callDeleted('a');
    m.callConfirmed('a', { kind: 'deleted' });
    assert.equal(m.desiredCall('a'), undefined);
  });

  test('bindings: written back until they expire; removals kept until confirmed; a new REGISTER cancels a pending removal', () => {
    const clock = new FakeClock(1000);
    const m = new StateStoreMirror(() => clock.now());
    m.registrationWritten(reg('alice', 'sip:a@x', 61_000));
    m.registrationWritten(reg('bob', 'sip:b@x', 3000));
    m.registrationWritten(reg('alice', 'sip:a2@x', 61_000));
    assert.deepEqual(m.registrationsOf('alice').map((r) => r.contact), ['sip:a@x', 'sip:a2@x']);
    assert.equal(m.liveRegistrationCount, 3);
    clock.advance(2500);
    assert.equal(m.desiredRegistration(bindingKey('bob', 'sip:b@x')), undefined, 'expired: not written back');
    assert.deepEqual(m.registrationsOf('bob'), []);
    assert.deepEqual(m.registrationKeys().sort(), [bindingKey('alice', 'sip:a2@x'), bindingKey('alice', 'sip:a@x')].sort());
    m.registrationRemoved('alice', 'sip:a2@x');
    assert.deepEqual(m.desiredRegistration(bindingKey('alice', 'sip:a2@x')), { kind: 'removed', user: 'alice', contact: 'sip:a2@x' });
    assert.deepEqual(m.registrationsOf('alice').map((r) => r.contact), ['sip:a@x']);
    m.registrationConfirmed(bindingKey('alice', 'sip:a2@x'), { kind: 'removed', user: 'alice', contact: 'sip:a2@x' });
    assert.equal(m.desiredRegistration(bindingKey('alice', 'sip:a2@x')), undefined);
    m.registrationRemoved('alice', 'sip:a@x');
    m.registrationWritten(reg('alice', 'sip:a@x', 91_000));
    assert.equal(m.desiredRegistration(bindingKey('alice', 'sip:a@x'))?.kind, 'bound');
  });
});
