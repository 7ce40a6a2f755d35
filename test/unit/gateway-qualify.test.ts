import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { CallRouter } from '../../src/gateway/calls/call-router';
import { parseSipConfig } from '../../src/gateway/config/sip-config-loader';
import { isQualified, parseQualifyScope, RegistrationQualifier, type PingOutcome, type QualifySettings, type ReachabilityChange } from '../../src/gateway/registrar/qualify';
import { reachabilityEvent } from '../../src/gateway/events/registration-events';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import type { Registration } from '../../src/gateway/state/registration';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';
import { ConfigError } from '../../src/gateway/config/config-error';
import { captureLog } from '../helpers/captured-log';
import { srfQualifyPing } from '../../src/gateway/registrar/qualify-ping';
import type Srf from 'drachtio-srf';

/**
 * Qualify (src/gateway/registrar/qualify.ts) on a fake clock: the registrations a gateway pings, when,
 * how many at a time, what an unanswered run of pings does to call routing and what brings the
 * registration back. The pings here are a scripted function; test/integration/gateway-qualify.test.ts
 * sends them through the real ferry sip to real UDP sockets.
 */
const ME = 'gw-me';

interface Sent {
  uri: string;
  nextHop: string | undefined;
  at: number;
  answer(r: PingOutcome): void;
}

/** the qualifier's pings, held until the test answers them (or answered at once by `auto`) */
class ScriptedPings {
  readonly sent: Sent[] = [];
  auto: ((uri: string) => PingOutcome | undefined) | undefined = () => ({ outcome: 'answered', status: 200 });
  constructor(private readonly clock: FakeClock) {}
  readonly ping = (target: { uri: string; nextHop?: string }): Promise<PingOutcome> =>
    new Promise((resolve) => {
      this.sent.push({ uri: target.uri, nextHop: target.nextHop, at: this.clock.now(), answer: resolve });
      const r = this.auto?.(target.uri);
      if (r) resolve(r);
    });
  to(uri: string): Sent[] {
    return this.sent.filter((s) => s.uri === uri);
  }
}

/** lets the qualifier's promise chains (store reads, pings, writes) run after a clock step */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

function world(
  users: string[],
  settings: Partial<QualifySettings> = {},
  opts: { maxInFlight?: number; instanceId?: string; store?: MemoryStateStore; clock?: FakeClock; onChange?: (c: ReachabilityChange) => void } = {},
) {
  const clock = opts.clock ?? new FakeClock();
  const store = opts.store ?? new MemoryStateStore(clock);
  const pings = new ScriptedPings(clock);
  const { log, lines } = captureLog();
  /** what the qualifier told through onChange (the gateway publishes each as an event) */
  const changes: ReachabilityChange[] = [];
  const q = new RegistrationQualifier({
    store, users: () => users, ping: pings.ping, clock, log, instanceId: opts.instanceId ?? ME,
    settings: { intervalMs: 10_000, maxFailures: 2, scope: 'nat', ...settings },
    ...(opts.maxInFlight ? { maxInFlight: opts.maxInFlight } : {}),
    onChange: opts.onChange ?? ((c) => changes.push(c)),
  });
  /** advances the clock in steps of at most 250 ms, letting the promises run after each */
  const advance = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 250) {
      clock.advance(Math.min(250, left));
      await settle();
    }
  };
  const register = async (user: string, contact: string, source: string, extra: Partial<Registration> = {}): Promise<Registration> => {
    const now = clock.now();
    const reg: Registration = { aor: `sip:${user}@ferry.local`, user, contact, transport: 'udp', source, webrtc: false, registeredAt: now, expiresAt: now + 3_600_000, instanceId: ME, ...extra };
    await store.putRegistration(reg);
    return reg;
  };
  return { clock, store, pings, q, log, lines, changes, advance, register };
}

const natContact = (user: string, n = 20): string => `sip:${user}@192.168.1.${n}:5060`;

describe('qualify: OPTIONS pings to UDP registrations', () => {
  test('which registrations: UDP behind NAT (through the mapping); every UDP one with scope udp; never a connection', { timeout: 5000 }, () => {
    const r = (contact: string, source: string, transport: Registration['transport'] = 'udp') => ({ contact, source, transport });
    assert.equal(isQualified(r('sip:1@192.168.1.20:5060', '198.51.100.7:40312'), 'nat'), true);
    assert.equal(isQualified(r('sip:1@203.0.113.9:5060', '203.0.113.9:5060'), 'nat'), false, 'a public UDP phone: not with nat');
    assert.equal(isQualified(r('sip:1@203.0.113.9:5060', '203.0.113.9:5060'), 'udp'), true, 'a public UDP phone: with udp');
    assert.equal(isQualified(r('sip:1@192.168.1.20:5060;transport=tcp', '198.51.100.7:40312', 'tcp'), 'udp'), false, 'TCP: its connection tells');
    assert.equal(isQualified(r('sip:a@x.invalid;transport=ws', '198.51.100.7:40312', 'wss'), 'udp'), false, 'a webphone');
    const problems: string[] = [];
    assert.equal(parseQualifyScope(undefined, problems), 'nat');
    assert.equal(parseQualifyScope(' UDP ', problems), 'udp');
    assert.deepEqual(problems, []);
    parseQualifyScope('all', problems);
    assert.match(problems[0] ?? '', /FERRY_QUALIFY_SCOPE="all": must be nat or udp/);
  });

  test('settings: FERRY_QUALIFY_MS (default 25000, 0 = off), FERRY_QUALIFY_MAX_FAILURES (default 2), bad values refused', { timeout: 5000 }, () => {
    const base = { REDIS_URL: '', FERRY_SIP_CONFIG: '' };
    const d = loadGatewayConfig(base).qualify;
    assert.deepEqual(d, { intervalMs: 25_000, maxFailures: 2, scope: 'nat' });
    assert.deepEqual(loadGatewayConfig({ ...base, FERRY_QUALIFY_MS: '0', FERRY_QUALIFY_MAX_FAILURES: '3', FERRY_QUALIFY_SCOPE: 'udp' }).qualify, { intervalMs: 0, maxFailures: 3, scope: 'udp' });
    const refused = (env: Record<string, string>): string => {
      try {
        loadGatewayConfig({ ...base, ...env });
      } catch (err) {
        if (err instanceof ConfigError) return err.problems.join('\n');
        throw err;
      }
      return '';
    };
    assert.match(refused({ FERRY_QUALIFY_MS: '50' }), /FERRY_QUALIFY_MS=50: must be 0 \(no pings\) or at least 100/);
    assert.match(refused({ FERRY_QUALIFY_MS: 'soon' }), /FERRY_QUALIFY_MS="soon": must be an integer/);
    assert.match(refused({ FERRY_QUALIFY_MAX_FAILURES: '0' }), /FERRY_QUALIFY_MAX_FAILURES="0"/);
  });

  test('pings go where a call would go (the NAT mapping), spread over the interval: 50 users, a tenth each second, each once per interval', { timeout: 10_000 }, async () => {
    const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
    const w = world(users);
    for (const [i, u] of users.entries()) await w.register(u, natContact(u, i + 2), `198.51.100.7:${40000 + i}`);
    // positive control of the scope: a public UDP phone and a webphone of the same users are not pinged
    await w.register('u0', 'sip:u0@203.0.113.9:5060', '203.0.113.9:5060');
    await w.register('u1', 'sip:u1@abc.invalid;transport=ws', '198.51.100.7:1', { transport: 'ws', webrtc: true });
    w.q.start();
    const perSecond: number[] = [];
    for (let s = 0; s < 20; s++) {
      const before = w.pings.sent.length;
      await w.advance(1000);
      perSecond.push(w.pings.sent.length - before);
    }
    assert.deepEqual(perSecond, Array(20).fill(5), 'five pings a second, no burst');
    for (const [i, u] of users.entries()) {
      const mine = w.pings.to(natContact(u, i + 2));
      assert.equal(mine.length, 2, `${u}: once per interval in 20 s`);
      assert.equal(mine[0]!.nextHop, `sip:198.51.100.7:${40000 + i}`, 'through the REGISTER\'s source');
      assert.equal(mine[1]!.at - mine[0]!.at, 10_000, 'one interval apart');
    }
    assert.equal(w.pings.to('sip:u0@203.0.113.9:5060').length, 0);
    assert.equal(w.pings.sent.filter((s) => s.uri.includes('.invalid')).length, 0);
    w.q.stop();
    assert.equal(w.clock.pending(), 0, 'no timer left after stop');
    await w.advance(20_000);
    assert.equal(w.pings.sent.length, 100, 'no ping after stop');
  });

  test('a cap on pings in flight: unanswered pings hold the sweep, it goes on as they end', { timeout: 10_000 }, async () => {
    const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
    const w = world(users, { intervalMs: 1000 }, { maxInFlight: 3 });
    for (const [i, u] of users.entries()) await w.register(u, natContact(u, i + 2), `198.51.100.7:${40000 + i}`);
    w.pings.auto = undefined;
    w.q.start();
    await w.advance(5000);
    assert.equal(w.pings.sent.length, 3, 'three in flight, the rest wait');
    for (const s of w.pings.sent.splice(0)) s.answer({ outcome: 'answered', status: 200 });
    await settle();
    assert.equal(w.pings.sent.length, 3, 'the next three as soon as those ended');
    w.q.stop();
    for (const s of w.pings.sent) s.answer({ outcome: 'no-answer' });
    await settle();
    assert.equal(w.q.counts.unanswered, 0, 'answers after stop are not counted');
  });

  test('S1: two unanswered pings in a row mark the NAT\'d registration unreachable: calls skip it; its answer brings it back', { timeout: 10_000 }, async () => {
    const config = parseSipConfig(JSON.stringify({ domain: 'ferry.local', users: [{ user: 'carol', password: 'p' }] }), 'f.json');
    const w = world(['carol'], { intervalMs: 1000 });
    const router = new CallRouter(config, w.store);
    const desk = await w.register('carol', 'sip:carol@127.0.0.2:5070', '127.0.0.2:5070');
    w.clock.advance(10);
    const nat = await w.register('carol', natContact('carol'), '198.51.100.7:40312');
    let answering = true;
    w.pings.auto = (uri) => (uri === nat.contact && !answering ? { outcome: 'no-answer' } : { outcome: 'answered', status: 405 });
    w.q.start();
    await w.advance(3000);
    assert.ok(w.pings.to(nat.contact).length >= 3, 'pinged every second');
    assert.equal(w.q.counts.markedUnreachable, 0, 'answered (405 is an answer): kept');
    let first = await router.route('carol');
    assert.ok(first.ok && first.uri === nat.contact, 'the newest registration is called first');

    answering = false;
    await w.advance(1000);
    assert.equal((await w.store.getRegistrations('carol')).find((r) => r.contact === nat.contact)?.unreachableSince, undefined, 'one miss is not enough');
    await w.advance(1000);
    const marked = (await w.store.getRegistrations('carol')).find((r) => r.contact === nat.contact)!;
    assert.equal(typeof marked.unreachableSince, 'number', 'two misses in a row: unreachable');
    const line = w.lines.find((l) => l.message === 'registration-unreachable');
    assert.deepEqual([line?.user, line?.contact, line?.source, line?.failures, line?.level], ['carol', nat.contact, '198.51.100.7:40312', 2, 'warn']);
    assert.equal(JSON.stringify(line).includes('password'), false);
    first = await router.route('carol');
    assert.ok(first.ok && first.uri === desk.contact, 'a call goes to the desk phone, not the unreachable one');
    const tried: string[] = [];
    for await (const t of router.candidates(first as Extract<typeof first, { ok: true }>)) tried.push(t.uri);
    assert.deepEqual(tried, [desk.contact], 'the search does not try it either');
    await w.advance(3000);
    assert.equal(w.lines.filter((l) => l.message === 'registration-unreachable').length, 1, 'logged once, not per ping');
    assert.ok(w.pings.to(nat.contact).filter((p) => p.at > marked.unreachableSince!).length >= 3, 'still pinged while unreachable');

    answering = true;
    await w.advance(1000);
    assert.equal((await w.store.getRegistrations('carol')).find((r) => r.contact === nat.contact)?.unreachableSince, undefined, 'answered: back');
    assert.ok(w.lines.some((l) => l.message === 'registration-reachable' && l.contact === nat.contact));
    first = await router.route('carol');
    assert.ok(first.ok && first.uri === nat.contact, 'called first again');
    w.q.stop();
  });

  test('S2: an unreachable registration comes back when the phone registers again; the count starts over; only dead pings count, not unsent ones', { timeout: 10_000 }, async () => {
    const config = parseSipConfig(JSON.stringify({ domain: 'ferry.local', users: [{ user: 'dave', password: 'p' }] }), 'f.json');
    const w = world(['dave'], { intervalMs: 1000, maxFailures: 3 });
    const router = new CallRouter(config, w.store);
    const nat = await w.register('dave', natContact('dave'), '198.51.100.7:40312');
    let outcome: PingOutcome = { outcome: 'not-sent', why: 'no connection to the SIP engine' };
    w.pings.auto = () => outcome;
    w.q.start();
    await w.advance(5000);
    assert.equal(w.q.counts.notSent, 5);
    assert.equal(w.q.counts.markedUnreachable, 0, 'pings that could not be sent say nothing about the phone');
    outcome = { outcome: 'no-answer' };
    await w.advance(3000);
    assert.equal(w.q.counts.markedUnreachable, 1, 'three misses (FERRY_QUALIFY_MAX_FAILURES 3)');
    const r1 = await router.route('dave');
    assert.deepEqual(r1.ok ? r1 : [r1.status, r1.reason], [480, 'Temporarily Unavailable'], 'its only registration unreachable: 480');
    // the phone registers again from a new mapping: the registrar writes the binding anew, without the mark
    await w.register('dave', nat.contact, '198.51.100.7:40999');
    const r2 = await router.route('dave');
    assert.ok(r2.ok && r2.nextHop === 'sip:198.51.100.7:40999', 'callable again at once, on its new mapping');
    await w.advance(2000);
    assert.equal(w.q.counts.markedUnreachable, 1, 'the new binding\'s count started over: two misses are not three');
    await w.advance(1000);
    assert.equal(w.q.counts.markedUnreachable, 2);
    w.q.stop();
  });

  test('S3: a REGISTER while a ping is out: the late miss does not mark the new binding', { timeout: 10_000 }, async () => {
    const w = world(['erin'], { intervalMs: 1000, maxFailures: 1 });
    const nat = await w.register('erin', natContact('erin'), '198.51.100.7:40312');
    w.pings.auto = undefined;
    w.q.start();
    await w.advance(1000);
    assert.equal(w.pings.sent.length, 1);
    w.clock.advance(5);
    await w.register('erin', nat.contact, '198.51.100.7:41000');
    w.pings.sent[0]!.answer({ outcome: 'no-answer' });
    await settle();
    const reg = (await w.store.getRegistrations('erin'))[0]!;
    assert.deepEqual([reg.source, reg.unreachableSince], ['198.51.100.7:41000', undefined], 'the newer binding stands as written');
    // positive control: a miss of the current binding does mark it (maxFailures 1)
    w.pings.sent.splice(0);
    await w.advance(1000);
    w.pings.sent[0]!.answer({ outcome: 'no-answer' });
    await settle();
    assert.equal(typeof (await w.store.getRegistrations('erin'))[0]!.unreachableSince, 'number');
    w.q.stop();
  });

  test('several gateways on one store: a registration is pinged by the gateway that took it; one of a dead gateway by a single other', { timeout: 10_000 }, async () => {
    const clock = new FakeClock();
    const store = new MemoryStateStore(clock);
    const a = world(['fay', 'gus'], { intervalMs: 1000 }, { clock, store, instanceId: 'gw-a' });
    const b = world(['fay', 'gus'], { intervalMs: 1000 }, { clock, store, instanceId: 'gw-b' });
    await store.renewLease('gw-a', 60_000);
    await store.renewLease('gw-b', 60_000);
    await a.register('fay', natContact('fay'), '198.51.100.7:40312', { instanceId: 'gw-a' });
    await a.register('gus', natContact('gus'), '198.51.100.8:40312', { instanceId: 'gw-gone' });
    a.q.start();
    b.q.start();
    await a.advance(3000);
    assert.equal(a.pings.to(natContact('fay')).length, 3, 'gw-a pings what it took');
    assert.equal(b.pings.to(natContact('fay')).length, 0, 'gw-b does not');
    const gus = [a.pings.to(natContact('gus')).length, b.pings.to(natContact('gus')).length];
    assert.equal(gus[0]! + gus[1]!, 3, `the dead gateway's registration: once a second in all (${gus})`);
    assert.ok(gus.includes(0), `by one gateway only (${gus})`);
    a.q.stop();
    b.q.stop();
  });

  test('the ping over srf: an OPTIONS through the next hop; any answer counts but 408; no answer in time, a refused send, a stop: each settles once and leaves no timer', { timeout: 5000 }, async () => {
    const clock = new FakeClock();
    const requests: { uri: string; opts: { method: string; headers: Record<string, string>; proxy?: string }; respond(status: number): void; fail(err: Error): void }[] = [];
    const srf = {
      request(uri: string, opts: { method: string; headers: Record<string, string>; proxy?: string }, cb: (err: Error | null, sent: { on(e: string, f: (r: { status: number }) => void): void }) => void): void {
        let onResponse: ((r: { status: number }) => void) | undefined;
        requests.push({ uri, opts, respond: (status) => onResponse?.({ status }), fail: (err) => cb(err, undefined as never) });
        if (uri.includes('refused')) return;
        cb(null, { on: (_e, f) => { onResponse = f; } });
      },
    } as unknown as Srf;
    const ping = srfQualifyPing(srf, clock, 'sip:ferry@ferry.local');
    const live = new AbortController();
    const answered = ping({ uri: 'sip:1@192.168.1.20:5060', nextHop: 'sip:198.51.100.7:40312' }, 5000, live.signal);
    assert.deepEqual([requests[0]!.opts.method, requests[0]!.opts.proxy, requests[0]!.opts.headers.From], ['OPTIONS', 'sip:198.51.100.7:40312', '<sip:ferry@ferry.local>']);
    requests[0]!.respond(501);
    requests[0]!.respond(200);
    assert.deepEqual(await answered, { outcome: 'answered', status: 501 }, 'a 501 is an answer; the first one counts');
    const timedOut = ping({ uri: 'sip:2@192.168.1.21:5060' }, 5000, live.signal);
    assert.equal(requests[1]!.opts.proxy, undefined, 'no next hop: to the Contact');
    requests[1]!.respond(408);
    assert.deepEqual(await timedOut, { outcome: 'no-answer' }, 'the engine\'s 408: nothing answered');
    const silent = ping({ uri: 'sip:3@192.168.1.22:5060' }, 5000, live.signal);
    clock.advance(4999);
    let settled = false;
    void silent.then(() => (settled = true));
    await settle();
    assert.equal(settled, false, 'still waiting before the timeout');
    clock.advance(1);
    assert.deepEqual(await silent, { outcome: 'no-answer' });
    const refused = ping({ uri: 'sip:refused@192.168.1.23:5060' }, 5000, live.signal);
    requests[3]!.fail(new Error('no connection'));
    assert.deepEqual(await refused, { outcome: 'not-sent', why: 'no connection' });
    const waiting = ping({ uri: 'sip:4@192.168.1.24:5060' }, 5000, live.signal);
    assert.equal(clock.pending(), 1, 'one timer while a ping waits');
    live.abort();
    assert.deepEqual(await waiting, { outcome: 'not-sent', why: 'qualify stopped' });
    assert.equal(clock.pending(), 0, 'no timer left once every ping settled');
  });

  test('S5: each mark set or cleared is told once (the registration.unreachable / registration.reachable events), not per ping', { timeout: 10_000 }, async () => {
    const w = world(['ida'], { intervalMs: 1000 });
    const nat = await w.register('ida', natContact('ida'), '198.51.100.7:40312');
    let answering = true;
    w.pings.auto = () => (answering ? { outcome: 'answered', status: 200 } : { outcome: 'no-answer' });
    w.q.start();
    await w.advance(3000);
    assert.deepEqual(w.changes, [], 'answered pings: no change');
    answering = false;
    await w.advance(5000);
    const since = (await w.store.getRegistrations('ida'))[0]!.unreachableSince!;
    const binding = { user: 'ida', aor: 'sip:ida@ferry.local', contact: nat.contact, transport: 'udp', source: '198.51.100.7:40312' };
    assert.deepEqual(w.changes, [{ ...binding, to: 'unreachable', unreachableSince: since, failures: 2 }], 'five misses: one change');
    answering = true;
    await w.advance(3000);
    assert.deepEqual(w.changes.slice(1), [{ ...binding, to: 'reachable', unreachableSince: since, by: 'answer' }], 'three answers: one change');
    assert.deepEqual(reachabilityEvent(w.changes[0]!), { type: 'registration.unreachable', data: { ...binding, unreachableSince: since, failures: 2 } });
    assert.deepEqual(reachabilityEvent(w.changes[1]!), { type: 'registration.reachable', data: { ...binding, unreachableSince: since, by: 'answer' } });
    w.q.stop();
  });

  test('S6: two misses of one binding settling at once (pings overlapping) mark it once; a throwing listener is logged, the mark stands', { timeout: 10_000 }, async () => {
    const w = world(['jo'], { intervalMs: 1000, maxFailures: 1 }, { onChange: () => { throw new Error('listener broke'); } });
    const nat = await w.register('jo', natContact('jo'), '198.51.100.7:40312');
    w.pings.auto = undefined;
    w.q.start();
    await w.advance(2000);
    const out = w.pings.to(nat.contact);
    assert.equal(out.length, 2, 'two pings out, neither answered yet');
    for (const p of out) p.answer({ outcome: 'no-answer' });
    await w.advance(250);
    assert.equal(w.q.counts.markedUnreachable, 1, 'marked once');
    assert.equal(w.lines.filter((l) => l.message === 'registration-unreachable').length, 1);
    assert.equal(typeof (await w.store.getRegistrations('jo'))[0]!.unreachableSince, 'number', 'the mark stands');
    assert.equal(w.lines.filter((l) => l.message === 'qualify: reachability change not published').length, 1, 'the listener\'s failure is logged');
    w.q.stop();
  });

  test('FERRY_QUALIFY_MS=0: no timer, no ping', { timeout: 5000 }, async () => {
    const w = world(['hal'], { intervalMs: 0 });
    await w.register('hal', natContact('hal'), '198.51.100.7:40312');
    w.q.start();
    assert.equal(w.clock.pending(), 0);
    await w.advance(60_000);
    assert.equal(w.pings.sent.length, 0);
    // positive control: the same registration with pings on
    const on = world(['hal'], { intervalMs: 1000 });
    await on.register('hal', natContact('hal'), '198.51.100.7:40312');
    on.q.start();
    await on.advance(1000);
    assert.equal(on.pings.sent.length, 1);
    on.q.stop();
  });
});
