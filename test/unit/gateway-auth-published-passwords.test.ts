/**
 * `npm start` runs on the example sip-config shipped with ferry (sip-config/ferry.json) unless FERRY_SIP_CONFIG
 * names another file, and its passwords (`alice-secret`, `desk-1001-secret`, …) are printed in the README.
 * With `FERRY_HOST=0.0.0.0` and that file left in place, anyone on the network could register as its users and
 * place calls through its trunk (`9…`) with them. A right answer with one of those passwords is now accepted
 * only from this host (loopback or one of its own addresses, where `npm start`'s local set-up and its phones
 * are); from elsewhere it is refused 403 with a Warning saying why, logged once per source per 10 s.
 * Positive controls: the same user from this host, and a user with a password of its own from elsewhere.
 *
 * The real SipAuthenticator, DigestAuth, the in-memory state store and the shipped example file itself.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/common/clock';
import { AuthCounters } from '../../src/gateway/registrar/auth-counters';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { publishedPasswords } from '../../src/gateway/registrar/published-passwords';
import { type AuthOutcome, type AuthRequest, DEFAULT_AUTH_LIMITS, SipAuthenticator } from '../../src/gateway/registrar/sip-authenticator';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { captureLog } from '../helpers/captured-log';
import { digestAnswer } from '../helpers/digest-answer';
import { ownIPv4Address } from '../helpers/own-address';

function world() {
  const clock = { now: () => Date.now() } as unknown as Clock;
  const digest = new DigestAuth('ferry.local', Buffer.alloc(32, 5), DEFAULT_AUTH_LIMITS.nonceLifetimeMs);
  const { log, lines } = captureLog('info');
  const published = publishedPasswords();
  const auth = new SipAuthenticator(digest, new MemoryStateStore(clock), { ...DEFAULT_AUTH_LIMITS, backoffBaseMs: 0 }, new AuthCounters(), log, clock, published);
  const passwords: Record<string, string> = { alice: 'alice-secret', '1001': 'desk-1001-secret', carol: 'a-password-of-her-own-7f3k' };
  /** a REGISTER from `source` answering a fresh challenge for `user` with its configured password */
  const register = (source: string, user: string): Promise<AuthOutcome<string>> => {
    const nonce = digest.makeNonce(source);
    const uri = 'sip:ferry.local';
    const header = digestAnswer({ method: 'REGISTER', uri, user, password: `${passwords[user]}`, nonce, nc: '00000001' });
    const req: AuthRequest = { method: 'REGISTER', uri, header, source, sourcePort: 5060, transport: 'udp' };
    return auth.authenticate(req, (u) => (passwords[u] ? { password: passwords[u]!, who: u } : undefined), 401);
  };
  return { published, register, lines };
}

describe('the example sip-config\'s published passwords are accepted only from this host', () => {
  test('the shipped example\'s passwords are known; from another host a right answer with one is refused 403 with a Warning, logged once; from this host accepted; a password of its own accepted from anywhere', { timeout: 30_000 }, async () => {
    const w = world();
    for (const p of ['alice-secret', 'bob-secret', 'desk-1001-secret']) assert.ok(w.published.has(p), `${p} is published`);
    assert.ok(!w.published.has('a-password-of-her-own-7f3k'));

    for (const user of ['alice', '1001']) {
      const o = await w.register('198.51.100.7', user);
      assert.equal(o.ok ? 200 : o.status, 403, `${user} from another host`);
      assert.match(!o.ok ? o.headers.Warning ?? '' : '', /^399 ferry ".*example.*sip-config.*"$/);
    }
    assert.equal((await w.register('198.51.100.7', 'alice')).ok, false);
    const logged = w.lines.filter((l) => l.message === 'authentication refused: the password is the published example one');
    assert.equal(logged.length, 1, 'one line per source per 10 s');
    assert.equal(logged[0]!.src_ip, '198.51.100.7');
    assert.ok(!JSON.stringify(w.lines).includes('secret'), 'no password in the log');

    // positive controls
    assert.equal((await w.register('127.0.0.1', 'alice')).ok, true, 'from loopback');
    const own = ownIPv4Address();
    if (own) assert.equal((await w.register(own, '1001')).ok, true, `from this host's own address ${own}`);
    assert.equal((await w.register('198.51.100.7', 'carol')).ok, true, 'a password of its own, from another host');
  });

  test('no example file: nothing is published', { timeout: 30_000 }, () => {
    assert.equal(publishedPasswords('/nonexistent/ferry.json').size, 0);
  });
});
