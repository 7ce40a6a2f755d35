/**
 * Over UDP anyone can send a REGISTER or an INVITE with a forged source address, and receives nothing back.
 * Failure counting (docs/security.md, "Authentication") locks a source out after a few wrong answers; it used
 * to count every wrong answer, whatever nonce it was computed on — a made-up one included. A stranger could
 * therefore lock out any address (an office's NAT, a trunk's PBX) with ten forged datagrams naming an unknown
 * user, and lock out any user by name from addresses it does not hold, without ever receiving a challenge.
 * Now only answers on a nonce ferry issued to that very address count (a nonce is an HMAC of the address:
 * src/gateway/registrar/digest-auth.ts); any other gets a fresh challenge with stale=true whatever the
 * password, so it also tells a guesser nothing. Positive control: the same wrong answers on nonces issued to
 * the address lock it out as before.
 *
 * The real SipAuthenticator, DigestAuth and in-memory state store, with a real winston logger.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/common/clock';
import { AuthCounters } from '../../src/gateway/registrar/auth-counters';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { type AuthLimits, type AuthOutcome, type AuthRequest, SipAuthenticator } from '../../src/gateway/registrar/sip-authenticator';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { captureLog } from '../helpers/captured-log';
import { digestAnswer } from '../helpers/digest-answer';

const LIMITS: AuthLimits = { nonceLifetimeMs: 30_000, maxFailuresPerSource: 5, maxFailuresPerUser: 8, failureWindowMs: 60_000, lockoutMs: 120_000 };
const PASSWORDS: Record<string, string> = { alice: 'alice-pw' };
const lookup = (u: string) => (PASSWORDS[u] ? { password: PASSWORDS[u]!, who: u } : undefined);

function world() {
  let now = 1_000_000;
  const clock = { now: () => now } as unknown as Clock;
  const digest = new DigestAuth('ferry.local', Buffer.alloc(32, 3), LIMITS.nonceLifetimeMs, () => now);
  const counters = new AuthCounters();
  const { log, lines } = captureLog('info');
  const auth = new SipAuthenticator(digest, new MemoryStateStore(clock), LIMITS, counters, log, clock);
  /** an INVITE from `source` answering `nonce` for `user` with `password` (the digest's other parameters as given) */
  const invite = (source: string, user: string, password: string, nonce: string, opts: { uri?: string; nc?: string } = {}): Promise<AuthOutcome<string>> => {
    const uri = 'sip:9777000555@ferry.local';
    const nc = opts.nc ?? '00000001';
    const header = digestAnswer({ method: 'INVITE', uri: opts.uri ?? uri, user, password, nonce, nc });
    const req: AuthRequest = { method: 'INVITE', uri, header, source, sourcePort: 5060, transport: 'udp' };
    return auth.authenticate(req, lookup, 407);
  };
  return { digest, counters, auth, invite, lines, advance: (ms: number) => { now += ms; } };
}

const status = (o: AuthOutcome<string>): number => (o.ok ? 200 : o.status);
const stale = (o: AuthOutcome<string>): boolean => !o.ok && /stale=true/.test(o.headers['Proxy-Authenticate'] ?? '');

describe('authentication failures count only for answers on a nonce issued to the source', () => {
  test('forged answers (a made-up nonce, or one sent to another address) from an address never lock it out; the same answers on its own nonces do', { timeout: 30_000 }, async () => {
    const w = world();
    const victim = '198.51.100.20';
    const madeUp = `${(1_000_000).toString(16)}.0123456789abcdef.${'0'.repeat(32)}`;
    const forgeries: Array<[string, () => Promise<AuthOutcome<string>>]> = [
      ['unknown user, made-up nonce', () => w.invite(victim, 'nobody', 'x', madeUp)],
      ['wrong password, made-up nonce', () => w.invite(victim, 'alice', 'guess', madeUp)],
      ['wrong password, a nonce sent to another address', () => w.invite(victim, 'alice', 'guess', w.digest.makeNonce('203.0.113.9'))],
      ['unknown user, a nonce sent to another address', () => w.invite(victim, 'nobody', 'x', w.digest.makeNonce('203.0.113.9'))],
      ['uri mismatch, made-up nonce', () => w.invite(victim, 'alice', 'guess', madeUp, { uri: 'sip:1001@ferry.local' })],
      ['bad nc, made-up nonce', () => w.invite(victim, 'alice', 'guess', madeUp, { nc: '00000000' })],
    ];
    for (let round = 0; round < LIMITS.maxFailuresPerSource * 2; round++) {
      for (const [what, send] of forgeries) {
        const o = await send();
        assert.equal(status(o), 407, `${what}: challenged, not refused`);
        assert.ok(stale(o), `${what}: stale=true, as a right answer on such a nonce gets`);
      }
    }
    assert.equal(w.counters.lockouts, 0, 'no lockout');
    assert.equal(w.lines.filter((l) => l.message === 'authentication failed').length, 0, 'nothing logged as a failure');
    assert.equal(status(await w.invite(victim, 'alice', 'alice-pw', w.digest.makeNonce(victim))), 200, 'the address and the user are served');

    // positive control: wrong answers on nonces issued to that address are failures, and lock it out at the limit
    const statuses: number[] = [];
    for (let i = 0; i < LIMITS.maxFailuresPerSource; i++) statuses.push(status(await w.invite(victim, 'nobody', 'x', w.digest.makeNonce(victim))));
    assert.deepEqual(statuses, [407, 407, 407, 407, 403]);
    assert.equal(w.lines.filter((l) => l.message === 'authentication failed').length, LIMITS.maxFailuresPerSource);
    assert.equal(status(await w.invite(victim, 'alice', 'alice-pw', w.digest.makeNonce(victim))), 403, 'now locked out');
  });

  test('forged answers naming a user from many addresses do not lock the user out; answers on nonces issued to those addresses do', { timeout: 30_000 }, async () => {
    const w = world();
    for (let i = 0; i < LIMITS.maxFailuresPerUser * 3; i++) {
      const o = await w.invite(`203.0.113.${i + 1}`, 'alice', 'guess', w.digest.makeNonce('192.0.2.1'));
      assert.equal(status(o), 407);
    }
    assert.equal(w.counters.lockouts, 0);
    assert.equal(status(await w.invite('192.0.2.50', 'alice', 'alice-pw', w.digest.makeNonce('192.0.2.50'))), 200, 'alice is served');
    for (let i = 0; i < LIMITS.maxFailuresPerUser; i++) await w.invite(`203.0.113.${i + 1}`, 'alice', 'guess', w.digest.makeNonce(`203.0.113.${i + 1}`));
    assert.equal(status(await w.invite('192.0.2.50', 'alice', 'alice-pw', w.digest.makeNonce('192.0.2.50'))), 403, 'positive control: alice locked out');
  });

  test('on a nonce not issued to the source, the right and a wrong password get the same answer: no uncounted guessing', { timeout: 30_000 }, async () => {
    const w = world();
    const foreign = w.digest.makeNonce('203.0.113.9');
    const right = await w.invite('198.51.100.30', 'alice', 'alice-pw', foreign);
    const wrong = await w.invite('198.51.100.30', 'alice', 'guess', foreign);
    assert.deepEqual([status(right), stale(right)], [407, true]);
    assert.deepEqual([status(wrong), stale(wrong)], [status(right), stale(right)]);
    // on its own nonce, past its lifetime: the right password gets stale=true, a wrong one is a failure (as before)
    const old = w.digest.makeNonce('198.51.100.30');
    w.advance(LIMITS.nonceLifetimeMs + 1);
    assert.ok(stale(await w.invite('198.51.100.30', 'alice', 'alice-pw', old)));
    const guess = await w.invite('198.51.100.30', 'alice', 'guess', old);
    assert.equal(stale(guess), false);
    assert.equal(w.counters.failuresOf('wrong-password'), 1);
  });
});
