import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FakeClock } from '../../src/common/clock';
import { NO_CONNECTION_REASON } from '../../src/common/flow-failure';
import { flowAnswer, FlowBoundRegistrations, isFlowBound, type FailedAnswer, type FlowClosedChange } from '../../src/gateway/registrar/flow-binding';
import { movesToNextRegistration } from '../../src/gateway/registrar/stale-binding';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { RedisStateStore } from '../../src/gateway/state/redis-state-store';
import { ResilientStateStore } from '../../src/gateway/state/resilient-state-store';
import type { Registration } from '../../src/gateway/state/registration';
import type { StateStore } from '../../src/gateway/state/state-store';
import { captureLog } from '../helpers/captured-log';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';

/**
 * Bindings that live on a connection (src/gateway/registrar/flow-binding.ts) on a fake clock: which are,
 * what ferry sip's answers prove, the reconnection grace, the conditional removal (a binding registered
 * again meanwhile stays: memory, Redis — the shared store's one atomic step — and the resilient wrapper).
 */
const T0 = 1_800_000_000_000;
const tab = (name: string, registeredAt = T0, instanceId = 'gw-1'): Registration => ({
  aor: 'sip:carol@ferry.local', user: 'carol', contact: `sip:${name}@${name}.invalid;transport=ws`, transport: 'ws', source: '127.0.0.1:40000',
  webrtc: true, registeredAt, expiresAt: registeredAt + 600_000, instanceId,
});
const NO_CONNECTION: FailedAnswer = { status: 503, reason: NO_CONNECTION_REASON };

function world(settings = { reconnectGraceMs: 10_000, checkMs: 5000 }, store: StateStore = new MemoryStateStore(new FakeClock(T0))) {
  const clock = new FakeClock(T0);
  const { log, lines } = captureLog();
  const changes: FlowClosedChange[] = [];
  const probed: string[] = [];
  const answers = new Map<string, FailedAnswer | undefined>();
  const reRegisterOnProbe = new Map<string, Registration>();
  const flows = new FlowBoundRegistrations({
    store, users: () => ['carol'], domain: 'ferry.local', instanceId: 'gw-1', clock, log, settings,
    probe: async (reg) => {
      probed.push(reg.contact);
      const again = reRegisterOnProbe.get(reg.contact);
      if (again) await store.putRegistration(again);
      return answers.get(reg.contact);
    },
    onChange: (c) => changes.push(c),
  });
  return { clock, flows, store, lines, changes, probed, answers, reRegisterOnProbe };
}
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('bindings that live on a connection', { timeout: 30_000 }, () => {
  test('which bindings live on a connection', () => {
    const b = (contact: string, transport: Registration['transport'], source: string): boolean => isFlowBound({ contact, transport, source });
    assert.equal(b('sip:k3x9@q7t9.invalid;transport=ws', 'ws', '127.0.0.1:5'), true, 'a webphone');
    assert.equal(b('sip:k3x9@198.51.100.7:5060;transport=ws', 'wss', '198.51.100.7:5'), true, 'any WebSocket registration');
    assert.equal(b('sip:1001@10.0.0.7:5060;transport=tcp', 'tcp', '198.51.100.7:40000'), true, 'TCP behind NAT, private Contact');
    assert.equal(b('sip:1001@k.invalid;transport=tcp', 'tcp', '198.51.100.7:40000'), true, 'TCP, .invalid Contact');
    assert.equal(b('sip:1001@10.0.0.7:5060;transport=tcp', 'tcp', '10.0.0.7:40000'), false, 'TCP on the same private network: ferry connects back');
    assert.equal(b('sip:1001@198.51.100.7:5060;transport=tcp', 'tcp', '198.51.100.7:40000'), false, 'TCP naming its own public address');
    assert.equal(b('sip:1001@10.0.0.7:5060', 'udp', '198.51.100.7:40000'), false, 'UDP behind NAT (qualify keeps it)');
    assert.equal(isFlowBound({ contact: 'sip:1001@198.51.100.7:5060;transport=tcp', transport: 'tcp', source: '198.51.100.7:1', flowBound: true }), true, 'recorded as flow-bound');
  });

  test('settings: defaults 45 s grace and 30 s check; a check interval under 100 ms is refused', () => {
    const base = { REDIS_URL: '', FERRY_SIP_CONFIG: '' };
    assert.deepEqual(loadGatewayConfig(base).flows, { reconnectGraceMs: 45_000, checkMs: 30_000 });
    assert.deepEqual(loadGatewayConfig({ ...base, FERRY_FLOW_CHECK_MS: '0', FERRY_FLOW_RECONNECT_GRACE_MS: '6000' }).flows, { reconnectGraceMs: 6000, checkMs: 0 });
    assert.throws(() => loadGatewayConfig({ ...base, FERRY_FLOW_CHECK_MS: '50' }), (err: { problems?: string[] }) => (err.problems ?? []).some((p) => /FERRY_FLOW_CHECK_MS=50: must be 0 \(no check\) or at least 100/.test(p)));
  });

  test('what an answer proves: 410/430 closed, ferry sip\'s own "no connection" 503, nothing else', () => {
    assert.equal(flowAnswer({ status: 410, reason: 'Gone' }), 'closed');
    assert.equal(flowAnswer({ status: 430, reason: 'Flow Failed' }), 'closed');
    assert.equal(flowAnswer(NO_CONNECTION), 'no-connection');
    assert.equal(flowAnswer({ status: 503, reason: 'Service Unavailable' }), undefined, 'a device\'s own 503');
    assert.equal(flowAnswer({ status: 486 }), undefined);
    assert.equal(flowAnswer(undefined), undefined);
  });

  test('a call\'s 410 removes the binding at once; "no connection" only after the reconnection grace; a device\'s 503 never', async () => {
    const w = world();
    const notes: string[] = [];
    const call = { note: (k: string, d: string) => notes.push(`${k} ${d}`) };
    await w.store.putRegistration(tab('a'));
    await w.store.putRegistration(tab('b'));
    await w.store.putRegistration(tab('c'));
    w.flows.controlUp();
    assert.equal(await movesToNextRegistration(w.store, { user: 'carol', uri: tab('a').contact }, NO_CONNECTION, call, w.flows), true, 'moves on');
    assert.equal((await w.store.getRegistrations('carol')).length, 3, 'within the grace: kept (registration-unavailable)');
    assert.deepEqual(notes, [`registration-unavailable 503 ${tab('a').contact}`]);
    assert.equal(await movesToNextRegistration(w.store, { user: 'carol', uri: tab('b').contact }, { status: 410, reason: 'Gone' }, call, w.flows), true);
    assert.deepEqual((await w.store.getRegistrations('carol')).map((r) => r.contact).sort(), [tab('a').contact, tab('c').contact]);
    w.clock.advance(10_000);
    await movesToNextRegistration(w.store, { user: 'carol', uri: tab('c').contact }, { status: 503, reason: 'Service Unavailable' }, call, w.flows);
    assert.equal((await w.store.getRegistrations('carol')).length, 2, 'a device\'s own 503 keeps it');
    await movesToNextRegistration(w.store, { user: 'carol', uri: tab('a').contact }, NO_CONNECTION, call, w.flows);
    assert.deepEqual((await w.store.getRegistrations('carol')).map((r) => r.contact), [tab('c').contact], 'after the grace: removed');
    assert.deepEqual(w.changes.map((c) => [c.removed, c.reason]), [[[tab('b').contact], 'flow-closed'], [[tab('a').contact], 'flow-closed']]);
    assert.equal(w.lines.filter((l) => l.message === 'registration removed: flow closed').length, 2);
    // a reconnection starts the grace again
    w.flows.controlUp();
    await w.store.putRegistration(tab('d'));
    await movesToNextRegistration(w.store, { user: 'carol', uri: tab('d').contact }, NO_CONNECTION, call, w.flows);
    assert.equal((await w.store.getRegistrations('carol')).length, 2, 'kept: ferry sip just came back');
  });

  test('a call\'s 410 for a binding registered again since the call began (a new connection) keeps it and moves on', async () => {
    const w = world();
    const notes: string[] = [];
    const call = { note: (k: string, d: string) => notes.push(`${k} ${d}`), record: { createdAt: T0 + 1000 } };
    w.flows.controlUp();
    await w.store.putRegistration(tab('r', T0 + 2000));
    assert.equal(await movesToNextRegistration(w.store, { user: 'carol', uri: tab('r').contact }, { status: 410, reason: 'Gone' }, call, w.flows), true, 'moves on');
    assert.equal((await w.store.getRegistrations('carol')).length, 1, 'kept');
    assert.deepEqual(notes, [`registration-unavailable 410 ${tab('r').contact}`]);
    assert.deepEqual(w.changes, []);
    // control: registered before the call began, the same answer removes it
    await w.store.putRegistration(tab('r', T0 + 500));
    assert.equal(await movesToNextRegistration(w.store, { user: 'carol', uri: tab('r').contact }, { status: 410, reason: 'Gone' }, call, w.flows), true);
    assert.equal((await w.store.getRegistrations('carol')).length, 0, 'removed');
    assert.equal(w.changes.length, 1);
  });

  test('the check: nothing within the grace, then one OPTIONS per binding on a connection; a binding registered again meanwhile stays', async () => {
    const w = world();
    const udp: Registration = { ...tab('x'), contact: 'sip:dave@127.0.0.1:5062', transport: 'udp', webrtc: false };
    await w.store.putRegistration(tab('gone'));
    await w.store.putRegistration(tab('back'));
    await w.store.putRegistration(tab('other-gw', T0, 'gw-2'));
    await w.store.putRegistration(udp);
    await w.store.renewLease('gw-2', 60_000);
    w.answers.set(tab('gone').contact, NO_CONNECTION);
    w.answers.set(tab('back').contact, NO_CONNECTION);
    w.answers.set(tab('other-gw').contact, NO_CONNECTION);
    // 'back' registers again (same Contact, a new registration time) while its OPTIONS is on the way
    w.reRegisterOnProbe.set(tab('back').contact, tab('back', T0 + 10_001));
    w.flows.start();
    w.flows.controlUp();
    w.clock.advance(5000);
    await flush();
    assert.deepEqual(w.probed, [], 'within the grace nothing is probed');
    w.clock.advance(5000);
    for (let i = 0; i < 20; i++) await flush();
    assert.deepEqual(w.probed.sort(), [tab('back').contact, tab('gone').contact].sort(), 'own bindings on a connection only (not the UDP one, not another live gateway\'s)');
    const left = (await w.store.getRegistrations('carol')).map((r) => r.contact).sort();
    assert.deepEqual(left, [tab('back').contact, tab('other-gw').contact, udp.contact].sort());
    assert.deepEqual(w.changes.map((c) => c.removed), [[tab('gone').contact]]);
    w.flows.stop();
    assert.equal(w.clock.pending(), 0, 'stop leaves no timer');
  });

  test('conditional removal is one step in each store: a newer registration of the Contact is kept', async () => {
    const prefix = `ferry-test-${randomUUID().slice(0, 8)}:`;
    const redis = new RedisStateStore('redis://127.0.0.1:6379', prefix);
    const { log } = captureLog();
    const resilient = new ResilientStateStore(new RedisStateStore('redis://127.0.0.1:6379', prefix), { timeoutMs: 2000, log });
    after(async () => {
      for (const r of await redis.getRegistrations('carol')) await redis.removeRegistration('carol', r.contact);
      await redis.close();
      await resilient.close();
    });
    const now = Date.now();
    for (const store of [new MemoryStateStore(), redis, resilient] as StateStore[]) {
      await store.putRegistration(tab('y', now + 1));
      assert.equal(await store.removeRegistrationIf('carol', tab('y').contact, now), false, `${store.kind}: another registration time`);
      assert.equal((await store.getRegistrations('carol')).length, 1);
      assert.equal(await store.removeRegistrationIf('carol', tab('y').contact, now + 1), true, `${store.kind}: the same one`);
      assert.equal((await store.getRegistrations('carol')).length, 0);
      assert.equal(await store.removeRegistrationIf('carol', tab('y').contact, now + 1), false, `${store.kind}: gone already`);
    }
    assert.equal(await redis.countRegistrations(), 0, 'the expiry index too');
  });
});
