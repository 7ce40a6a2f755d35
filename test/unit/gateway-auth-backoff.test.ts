import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import { FakeClock } from '../../src/common/clock';
import { AuthCounters } from '../../src/gateway/registrar/auth-counters';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { FailureBackoff } from '../../src/gateway/registrar/failure-backoff';
import { AuthLimits, AuthRequest, SipAuthenticator } from '../../src/gateway/registrar/sip-authenticator';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';

/**
 * Failed authentications are answered later and later (back-off) before the lockout: the first
 * failure of a source at once, then 100, 200, 400 ms … capped; another source is not slowed; the
 * window's end forgets the count. On a FakeClock: an answer is pending until the clock reaches it.
 */
const LIMITS: AuthLimits = { nonceLifetimeMs: 30_000, maxFailuresPerSource: 6, maxFailuresPerUser: 100, failureWindowMs: 60_000, lockoutMs: 120_000, backoffBaseMs: 100, backoffMaxMs: 300 };

describe('authentication back-off', { timeout: 10_000 }, () => {
  test('FailureBackoff: 0 for the first failure, then doubling from the base, capped; per source; forgotten after the window', () => {
    const clock = new FakeClock();
    const b = new FailureBackoff(100, 300, 60_000, clock, 2);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => b.delayFor('10.0.0.1')), [0, 100, 200, 300, 300]);
    assert.equal(b.delayFor('10.0.0.2'), 0, 'another source is not slowed by the first one');
    clock.advance(60_001);
    assert.equal(b.delayFor('10.0.0.1'), 0, 'after the window the count starts again');
    const off = new FailureBackoff(0, 300, 60_000, clock);
    assert.deepEqual([1, 2, 3].map(() => off.delayFor('10.0.0.1')), [0, 0, 0], 'base 0: no back-off');
  });

  test('a wrong password is answered at once the first time, the second only after 100 ms of the clock, the fourth after 300 ms (cap); the lockout 403 at once', async () => {
    const clock = new FakeClock();
    const digest = new DigestAuth('ferry.local', Buffer.alloc(32, 1), LIMITS.nonceLifetimeMs, () => clock.now());
    const log = winston.createLogger({ silent: true });
    const auth = new SipAuthenticator(digest, new MemoryStateStore(clock), LIMITS, new AuthCounters(), log, clock);
    const wrong = (): Promise<{ status: number }> => {
      const nonce = digest.makeNonce('10.0.0.9');
      const header = `Digest username="alice", realm="ferry.local", nonce="${nonce}", uri="sip:ferry.local", response="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="c0ffee"`;
      const req: AuthRequest = { method: 'REGISTER', uri: 'sip:ferry.local', header, source: '10.0.0.9', sourcePort: 5060, transport: 'udp' };
      return auth.authenticate(req, (u) => (u === 'alice' ? { password: 'alice-pw', who: u } : undefined), 401).then((o) => ({ status: o.ok ? 200 : o.status }));
    };
    const settledAfter = async (p: Promise<{ status: number }>, ms: number): Promise<number> => {
      let done: number | undefined;
      void p.then((o) => { done = o.status; });
      // let the store's promises run: the answer must still be pending before the clock moves
      for (let i = 0; i < 20; i++) await Promise.resolve();
      if (ms > 0) {
        assert.equal(done, undefined, `answer pending before ${ms} ms`);
        clock.advance(ms - 1);
        for (let i = 0; i < 20; i++) await Promise.resolve();
        assert.equal(done, undefined, `answer still pending at ${ms - 1} ms`);
        clock.advance(1);
      }
      return (await p).status;
    };
    assert.equal(await settledAfter(wrong(), 0), 401, 'first failure answered at once');
    assert.equal(await settledAfter(wrong(), 100), 401);
    assert.equal(await settledAfter(wrong(), 200), 401);
    assert.equal(await settledAfter(wrong(), 300), 401);
    assert.equal(await settledAfter(wrong(), 300), 401, 'capped');
    assert.equal(await settledAfter(wrong(), 0), 403, 'the 6th failure locks the source out, answered at once');
  });
});
