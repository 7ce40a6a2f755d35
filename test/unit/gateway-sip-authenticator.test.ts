import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import winston from 'winston';
import { Clock } from '../../src/common/clock';
import { parseSipConfig } from '../../src/gateway/config/sip-config-loader';
import { ConfigError } from '../../src/gateway/config/config-error';
import { CallRouter } from '../../src/gateway/calls/call-router';
import { AuthCounters } from '../../src/gateway/registrar/auth-counters';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { AuthLimits, AuthRequest, DEFAULT_AUTH_LIMITS, SipAuthenticator } from '../../src/gateway/registrar/sip-authenticator';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { StateStore } from '../../src/gateway/state/state-store';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** a clock the test moves by hand (only `now` is used here) */
function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  } as unknown as Clock & { advance(ms: number): void };
}

const LIMITS: AuthLimits = { nonceLifetimeMs: 30_000, maxFailuresPerSource: 5, maxFailuresPerUser: 8, failureWindowMs: 60_000, lockoutMs: 120_000 };
const PASSWORDS: Record<string, string> = { alice: 'alice-pw', bob: 'bob-pw' };
const lookup = (u: string) => (PASSWORDS[u] ? { password: PASSWORDS[u]!, who: u } : undefined);

function world(store?: StateStore) {
  const clock = manualClock();
  const digest = new DigestAuth('ferry.local', Buffer.alloc(32, 1), LIMITS.nonceLifetimeMs, () => clock.now());
  const counters = new AuthCounters();
  // the log lines, kept for the assertions (a real winston logger with the gateway's JSON format)
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
  const auth = new SipAuthenticator(digest, store ?? new MemoryStateStore(clock), LIMITS, counters, log, clock);
  /** REGISTER from `source` with an answer (nc 1) for a fresh challenge, or for `nonce` */
  const register = async (source: string, user: string, password: string, opts: { nonce?: string; nc?: number } = {}) => {
    const nonce = opts.nonce ?? digest.makeNonce(source);
    const uri = 'sip:ferry.local';
    const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
    const response = md5(`${md5(`${user}:ferry.local:${password}`)}:${nonce}:${nc}:c0ffee:auth:${md5(`REGISTER:${uri}`)}`);
    const header = `Digest username="${user}", realm="ferry.local", nonce="${nonce}", uri="${uri}", response="${response}", qop=auth, nc=${nc}, cnonce="c0ffee"`;
    const req: AuthRequest = { method: 'REGISTER', uri, header, source, sourcePort: 5060, transport: 'udp' };
    return { outcome: await auth.authenticate(req, lookup, 401), nonce };
  };
  return { clock, digest, counters, auth, register, lines };
}

describe('SipAuthenticator', () => {
  test('no credentials: a challenge, nothing counted', { timeout: 30_000 }, async () => {
    const w = world();
    const out = await w.auth.authenticate({ method: 'INVITE', uri: 'sip:bob@ferry.local', header: undefined, source: '10.0.0.1', sourcePort: 5060, transport: 'udp' }, lookup, 407);
    assert.equal(out.ok, false);
    assert.equal(!out.ok && out.status, 407);
    assert.match(!out.ok ? out.headers['Proxy-Authenticate']! : '', /^Digest realm="ferry.local", nonce="/);
    assert.equal(w.counters.render().join('\n').includes('ferry_auth_failures_total 0'), true);
  });

  test('nonce counts: increasing nc accepted, a repeated or lower nc is a replay', { timeout: 30_000 }, async () => {
    const w = world();
    const first = await w.register('10.0.0.1', 'alice', 'alice-pw', { nc: 1 });
    assert.equal(first.outcome.ok, true);
    assert.equal((await w.register('10.0.0.1', 'alice', 'alice-pw', { nonce: first.nonce, nc: 3 })).outcome.ok, true);
    const lower = await w.register('10.0.0.1', 'alice', 'alice-pw', { nonce: first.nonce, nc: 2 });
    const same = await w.register('10.0.0.1', 'alice', 'alice-pw', { nonce: first.nonce, nc: 3 });
    assert.equal(lower.outcome.ok || same.outcome.ok, false);
    assert.equal(w.counters.failuresOf('replay'), 2);
  });

  test('clients behind one address challenged in the same millisecond each get their own nonce and all register with their first answer; a replayed answer is still refused', { timeout: 30_000 }, async () => {
    const w = world(); // the test clock stands still: every challenge below is issued at the same instant
    const source = '10.0.0.77';
    const challenged = await Promise.all(Array.from({ length: 50 }, () =>
      w.auth.authenticate({ method: 'REGISTER', uri: 'sip:ferry.local', header: undefined, source, sourcePort: 5060, transport: 'udp' }, lookup, 401)));
    const nonces = challenged.map((out) => /nonce="([^"]+)"/.exec(!out.ok ? out.headers['WWW-Authenticate']! : '')![1]!);
    assert.equal(new Set(nonces).size, 50, 'fifty distinct nonces from one instant and one address');
    const answers = await Promise.all(nonces.map((nonce, i) => w.register(source, i % 2 ? 'alice' : 'bob', i % 2 ? 'alice-pw' : 'bob-pw', { nonce })));
    assert.deepEqual(answers.filter((a) => !a.outcome.ok).length, 0, 'every first answer (nc=1) accepted');
    assert.equal(w.counters.failuresOf('replay'), 0);
    assert.equal(w.counters.lockouts, 0);
    const replay = await w.register(source, 'bob', 'bob-pw', { nonce: nonces[0] });
    assert.equal(replay.outcome.ok, false, 'the same answer again is a replay');
    assert.equal(w.counters.failuresOf('replay'), 1);
    const [ts, salt, mac] = nonces[2]!.split('.');
    const forged = `${ts}.${salt!.replace(/^./, (c) => (c === '0' ? '1' : '0'))}.${mac}`;
    const tampered = await w.register(source, 'bob', 'bob-pw', { nonce: forged });
    assert.match(!tampered.outcome.ok ? tampered.outcome.headers['WWW-Authenticate']! : '', /stale=true/, 'a changed random part no longer matches the HMAC');
  });

  test('an expired nonce with the right password gets stale=true and is not a failure', { timeout: 30_000 }, async () => {
    const w = world();
    const nonce = w.digest.makeNonce('10.0.0.1');
    w.clock.advance(LIMITS.nonceLifetimeMs + 1);
    const { outcome } = await w.register('10.0.0.1', 'alice', 'alice-pw', { nonce });
    assert.equal(outcome.ok, false);
    assert.match(!outcome.ok ? outcome.headers['WWW-Authenticate']! : '', /stale=true/);
    assert.equal(w.counters.render().join('\n').includes('ferry_auth_failures_total 0'), true);
  });

  test('right answers on a nonce of another key (gateway restarted) are re-challenged with stale=true, never counted: a site behind one address is not locked out', { timeout: 30_000 }, async () => {
    const w = world();
    const oldKey = new DigestAuth('ferry.local', Buffer.alloc(32, 2));
    for (let i = 0; i < LIMITS.maxFailuresPerSource * 2; i++) {
      const { outcome } = await w.register('10.0.0.50', i % 2 ? 'alice' : 'bob', i % 2 ? 'alice-pw' : 'bob-pw', { nonce: oldKey.makeNonce('10.0.0.50') });
      assert.equal(!outcome.ok && outcome.status, 401);
      assert.match(!outcome.ok ? outcome.headers['WWW-Authenticate']! : '', /stale=true/);
    }
    assert.equal(w.counters.lockouts, 0);
    assert.equal((await w.register('10.0.0.50', 'alice', 'alice-pw')).outcome.ok, true);
  });

  test('per source: the 5th failure locks the address out (403, also for the right password) until the lockout ends; other addresses unaffected', { timeout: 30_000 }, async () => {
    const w = world();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const { outcome } = await w.register('10.0.0.66', 'alice', `guess${i}`);
      statuses.push(outcome.ok ? 200 : outcome.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 403, 403, 403]);
    assert.equal(w.counters.lockouts, 1);
    // one line per event, fixed message text and src_ip (what a fail2ban filter matches)
    const by = (m: string) => w.lines.filter((l) => l.message === m);
    assert.equal(by('authentication failed').length, 5);
    assert.ok(by('authentication failed').every((l) => l.src_ip === '10.0.0.66' && l.kind === 'wrong-password' && l.user === 'alice'));
    assert.deepEqual(by('authentication lockout').map((l) => [l.src_ip, l.scope]), [['10.0.0.66', 'source']]);
    // refusals during the lockout: one line per source per 10 s (a locked-out guesser may go on sending), all counted
    assert.equal(by('authentication refused: locked out').length, 1);
    assert.equal(w.counters.failuresOf('locked-out'), 2, 'both refusals counted');
    assert.ok(!JSON.stringify(w.lines).includes('guess'), 'no password or digest response in the logs');
    assert.equal((await w.register('10.0.0.66', 'alice', 'alice-pw')).outcome.ok, false, 'locked out: right password refused');
    assert.equal((await w.register('10.0.0.7', 'alice', 'alice-pw')).outcome.ok, true, 'another address is not locked out');
    w.clock.advance(LIMITS.lockoutMs - 1000);
    assert.equal((await w.register('10.0.0.66', 'alice', 'alice-pw')).outcome.ok, false, 'not before the lockout ends');
    w.clock.advance(1001);
    assert.equal((await w.register('10.0.0.66', 'alice', 'alice-pw')).outcome.ok, true, 'after the lockout');
  });

  test('per user: failures from many addresses lock the user out, not other users', { timeout: 30_000 }, async () => {
    const w = world();
    for (let i = 0; i < LIMITS.maxFailuresPerUser; i++) await w.register(`10.1.0.${i}`, 'alice', 'wrong');
    assert.equal(w.counters.lockouts, 1, 'one lockout: the user (each address failed once)');
    const { outcome } = await w.register('10.2.0.1', 'alice', 'alice-pw');
    assert.equal(!outcome.ok && outcome.status, 403, 'alice is locked out from a fresh address too');
    assert.equal((await w.register('10.2.0.1', 'bob', 'bob-pw')).outcome.ok, true, 'bob is not');
  });

  test('failures outside the window do not add up', { timeout: 30_000 }, async () => {
    const w = world();
    for (let i = 0; i < LIMITS.maxFailuresPerSource - 1; i++) await w.register('10.0.0.9', 'alice', 'wrong');
    w.clock.advance(LIMITS.failureWindowMs + 1);
    const { outcome } = await w.register('10.0.0.9', 'alice', 'wrong');
    assert.equal(!outcome.ok && outcome.status, 401, 'a new window: challenged, not locked out');
  });

  test('while the state store does not answer, nonce counts and lockouts are kept in the gateway\'s memory', { timeout: 30_000 }, async () => {
    const failing = new Proxy({} as StateStore, {
      get: () => () => Promise.reject(new Error('store down')),
    });
    const w = world(failing);
    const first = await w.register('10.0.0.1', 'alice', 'alice-pw');
    assert.equal(first.outcome.ok, true);
    assert.equal((await w.register('10.0.0.1', 'alice', 'alice-pw', { nonce: first.nonce })).outcome.ok, false, 'replay still refused');
    for (let i = 0; i < LIMITS.maxFailuresPerSource; i++) await w.register('10.0.0.2', 'bob', 'wrong');
    const { outcome } = await w.register('10.0.0.2', 'bob', 'bob-pw');
    assert.equal(!outcome.ok && outcome.status, 403);
  });
});

describe('FERRY_AUTH_* variables', () => {
  test('defaults, values and out-of-range values (named in the error)', { timeout: 30_000 }, () => {
    assert.deepEqual(loadGatewayConfig({}).auth, DEFAULT_AUTH_LIMITS);
    const c = loadGatewayConfig({ FERRY_AUTH_NONCE_LIFETIME_MS: '5000', FERRY_AUTH_MAX_FAILURES: '3', FERRY_AUTH_MAX_USER_FAILURES: '7', FERRY_AUTH_FAILURE_WINDOW_MS: '2000', FERRY_AUTH_LOCKOUT_MS: '9000', FERRY_AUTH_BACKOFF_MS: '0', FERRY_AUTH_BACKOFF_MAX_MS: '500' });
    assert.deepEqual(c.auth, { nonceLifetimeMs: 5000, maxFailuresPerSource: 3, maxFailuresPerUser: 7, failureWindowMs: 2000, lockoutMs: 9000, backoffBaseMs: 0, backoffMaxMs: 500 });
    assert.throws(() => loadGatewayConfig({ FERRY_AUTH_MAX_FAILURES: '0', FERRY_AUTH_LOCKOUT_MS: 'soon' }), (err: ConfigError) =>
      err.problems.some((p) => p.startsWith('environment: FERRY_AUTH_MAX_FAILURES="0"')) && err.problems.some((p) => p.startsWith('environment: FERRY_AUTH_LOCKOUT_MS="soon"')));
  });
});

describe('trunk config: acceptFrom and digest credentials', () => {
  const parse = (trunks: unknown[], users: unknown[] = []) => parseSipConfig(JSON.stringify({ domain: 'd', users, trunks }, null, 1), 'f.json');

  test('acceptFrom: host, host:port, transport:host:port; defaults are the trunk address port and transport', { timeout: 30_000 }, () => {
    const c = parse([{ name: 'pbx', address: 'pbx.example:5070', transport: 'tcp', acceptFrom: ['10.0.0.20', '10.0.0.21:5090', 'udp:10.0.0.22', 'TLS:10.0.0.23:5061'] }]);
    assert.deepEqual(c.trunks[0]!.acceptFrom, [
      { transport: 'tcp', host: '10.0.0.20', port: 5070 },
      { transport: 'tcp', host: '10.0.0.21', port: 5090 },
      { transport: 'udp', host: '10.0.0.22', port: 5070 },
      { transport: 'tls', host: '10.0.0.23', port: 5061 },
    ]);
  });

  test('bad entries and credentials are refused with file:line', { timeout: 30_000 }, () => {
    let err: ConfigError | undefined;
    try {
      parse(
        [
          { name: 'a', address: '10.0.0.1:5060', acceptFrom: ['pbx.example', '10.0.0.1:0', 'sctp:10.0.0.1', '300.0.0.1'] },
          { name: 'b', address: '10.0.0.2:5060', inboundAuth: { username: 'alice', password: 'x' }, outboundAuth: { username: 'b' } },
          { name: 'c', address: '10.0.0.3:5060', inboundAuth: 'secret' },
        ],
        [{ user: 'alice', password: 'pw' }],
      );
    } catch (e) {
      err = e as ConfigError;
    }
    assert.ok(err instanceof ConfigError);
    const p = err.problems.join('\n');
    for (const j of [0, 1, 2, 3]) assert.match(p, new RegExp(`^f\\.json:\\d+: trunks\\[0\\]\\.acceptFrom\\[${j}\\]: must be`, 'm'));
    assert.match(p, /^f\.json:\d+: trunks\[1\]\.inboundAuth\.username: "alice" is also a user/m);
    assert.match(p, /^f\.json:\d+: trunks\[1\]\.outboundAuth\.password: is required/m);
    assert.match(p, /^f\.json:\d+: trunks\[2\]\.inboundAuth: must be an object/m);
  });

  test('the router trusts exactly transport + address + port', { timeout: 30_000 }, () => {
    const c = parse([{ name: 'pbx', address: '10.0.0.20:5060', transport: 'udp', acceptFrom: ['10.0.0.20'] }]);
    const r = new CallRouter(c, new MemoryStateStore());
    assert.equal(r.trunkFor('udp', '10.0.0.20', 5060)?.name, 'pbx');
    assert.equal(r.trunkFor('tcp', '10.0.0.20', 5060), undefined, 'TCP from the same host and port');
    assert.equal(r.trunkFor('udp', '10.0.0.20', 5090), undefined, 'another port');
    assert.equal(r.trunkFor('ws', '10.0.0.20', 5060), undefined);
    assert.equal(r.trunkFor('udp', '10.0.0.21', 5060), undefined);
  });
});
