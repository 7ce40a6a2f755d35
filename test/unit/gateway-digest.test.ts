import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { parseContacts } from '../../src/gateway/registrar/contact-header';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** what a client (JsSIP, SIPp) computes for a challenge */
function answer(challenge: string, user: string, password: string, method: string, uri: string, opts: { qop?: boolean; nc?: number } = {}): string {
  const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const ha1 = md5(`${user}:${realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  if (opts.qop === false) return `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${md5(`${ha1}:${nonce}:${ha2}`)}", algorithm=MD5`;
  const cnonce = 'abc123';
  const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
  const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return `Digest algorithm=MD5, username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", qop=auth, cnonce="${cnonce}", nc=${nc}`;
}

const REG = { method: 'REGISTER', uri: 'sip:ferry.local', source: '10.0.0.5' };

describe('digest authentication', () => {
  test('accepts the right password with and without qop (nc to claim), refuses a wrong one', { timeout: 30_000 }, () => {
    const auth = new DigestAuth('ferry.local');
    const ch = auth.challenge(REG.source);
    assert.match(ch, /^Digest realm="ferry.local", nonce="[0-9a-f]+\.[0-9a-f]{16}\.[0-9a-f]{32}", algorithm=MD5, qop="auth"$/);
    const ok = DigestAuth.parse(answer(ch, 'alice', 'pw', 'REGISTER', 'sip:ferry.local', { nc: 3 }))!;
    assert.deepEqual(auth.verify(ok, REG, 'pw'), { ok: true, nc: 3 });
    assert.deepEqual(auth.verify(DigestAuth.parse(answer(ch, 'alice', 'pw', 'REGISTER', 'sip:ferry.local', { qop: false }))!, REG, 'pw'), { ok: true, nc: 0 });
    assert.deepEqual(auth.verify(ok, REG, 'wrong'), { ok: false, stale: false, why: 'wrong-password' });
    assert.equal(auth.verify(ok, { ...REG, method: 'INVITE' }, 'pw').ok, false, 'method is part of the hash');
  });

  test('digest: a uri other than the Request-URI is refused (credentials for one target do not place a call to another)', { timeout: 30_000 }, () => {
    const auth = new DigestAuth('ferry.local');
    const ch = auth.challenge(REG.source);
    const creds = DigestAuth.parse(answer(ch, '1001', 'pw', 'INVITE', 'sip:1001@ferry.local'))!;
    const invite = { method: 'INVITE', source: REG.source };
    assert.deepEqual(auth.verify(creds, { ...invite, uri: 'sip:1001@ferry.local' }, 'pw'), { ok: true, nc: 1 }, 'positive control: same uri');
    assert.deepEqual(auth.verify(creds, { ...invite, uri: 'sip:1001@FERRY.local' }, 'pw'), { ok: true, nc: 1 }, 'host letter case may differ');
    assert.deepEqual(auth.verify(creds, { ...invite, uri: 'sip:9777000555@ferry.local' }, 'pw'), { ok: false, stale: false, why: 'uri-mismatch' });
  });

  test('nonces: bound to the source address; foreign and expired ones get a fresh nonce (stale) only for a right answer; shared key accepted across instances', { timeout: 30_000 }, () => {
    let now = 1_000_000;
    const key = Buffer.alloc(32, 7);
    const a = new DigestAuth('r', key, 1000, () => now);
    const b = new DigestAuth('r', key, 1000, () => now);
    const c = new DigestAuth('r', Buffer.alloc(32, 9), 1000, () => now);
    const req = { method: 'REGISTER', uri: 'sip:r', source: '10.0.0.5' };
    const creds = DigestAuth.parse(answer(a.challenge(req.source), 'u', 'p', 'REGISTER', 'sip:r'))!;
    assert.deepEqual(b.verify(creds, req, 'p'), { ok: true, nc: 1 }, 'another gateway with the shared key');
    assert.deepEqual(c.verify(creds, req, 'p'), { ok: false, stale: true, why: 'foreign-nonce' }, 'another key: a fresh nonce');
    assert.deepEqual(a.verify(creds, { ...req, source: '10.0.0.6' }, 'p'), { ok: false, stale: true, why: 'foreign-nonce' }, 'issued to another address');
    assert.deepEqual(c.verify(creds, req, 'wrong'), { ok: false, stale: false, why: 'wrong-password' }, 'a foreign nonce with a wrong answer is a failure');
    now += 5000;
    assert.deepEqual(a.verify(creds, req, 'p'), { ok: false, stale: true, why: 'stale-nonce' });
    assert.deepEqual(a.verify(creds, req, 'wrong'), { ok: false, stale: false, why: 'wrong-password' }, 'stale only with the right password');
    assert.match(a.challenge(req.source, true), /stale=true/);
  });

  test('qop=auth without a valid nc or cnonce, other qop and algorithms are refused', { timeout: 30_000 }, () => {
    const auth = new DigestAuth('ferry.local');
    const good = answer(auth.challenge(REG.source), 'alice', 'pw', 'REGISTER', 'sip:ferry.local');
    const p = (h: string) => DigestAuth.parse(h)!;
    assert.equal((auth.verify(p(good.replace(/, nc=\w+/, '')), REG, 'pw') as { why: string }).why, 'bad-nc');
    assert.equal((auth.verify(p(good.replace(/nc=\w+/, 'nc=00000000')), REG, 'pw') as { why: string }).why, 'bad-nc');
    assert.equal((auth.verify(p(good.replace('qop=auth', 'qop=auth-int')), REG, 'pw') as { why: string }).why, 'unsupported');
    assert.equal((auth.verify(p(good.replace('algorithm=MD5', 'algorithm=SHA-512')), REG, 'pw') as { why: string }).why, 'unsupported');
  });

  test('parse refuses non-digest and incomplete headers', { timeout: 30_000 }, () => {
    assert.equal(DigestAuth.parse(undefined), undefined);
    assert.equal(DigestAuth.parse('Basic abc'), undefined);
    assert.equal(DigestAuth.parse('Digest username="a"'), undefined);
    assert.equal(DigestAuth.parse('Digest username="a\\"b", realm="r", nonce="n", uri="u", response="x"')!.username, 'a"b');
  });

  test('fuzz: mutated Authorization headers never throw (seeded)', { timeout: 30_000 }, () => {
    const auth = new DigestAuth('ferry.local');
    const sample = answer(auth.challenge(REG.source), 'alice', 'pw', 'REGISTER', 'sip:ferry.local');
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    for (let i = 0; i < 5000; i++) {
      let s = sample;
      for (let k = 0; k < 1 + rnd(4); k++) {
        const at = rnd(s.length);
        s = rnd(2) ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + '",=\\. zqop'[rnd(11)] + s.slice(at);
      }
      const p = DigestAuth.parse(s);
      if (p) assert.doesNotThrow(() => auth.verify(p, REG, 'pw'));
    }
  });
});

describe('Contact header parsing', () => {
  test('JsSIP and phone contacts, several per header, expires', { timeout: 30_000 }, () => {
    const jssip = '<sip:pgu1j5tv@49707sareh9v.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:1-2>";expires=600';
    assert.deepEqual(parseContacts(jssip), [{ uri: 'sip:pgu1j5tv@49707sareh9v.invalid;transport=ws', expires: 600 }]);
    assert.deepEqual(parseContacts('"A, B" <sip:a@h>;expires=0, sip:b@h:5070;expires=30'), [
      { uri: 'sip:a@h', expires: 0 },
      { uri: 'sip:b@h:5070', expires: 30 },
    ]);
    assert.deepEqual(parseContacts('<sip:c@h>'), [{ uri: 'sip:c@h' }]);
    assert.deepEqual(parseContacts('garbage, <http://x>'), []);
  });

  test('fuzz: never throws', { timeout: 30_000 }, () => {
    let seed = 3;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    const base = '"A" <sip:a@h;transport=ws>;expires=60, <sip:b@h>;q=0.5';
    for (let i = 0; i < 5000; i++) {
      let s = base;
      for (let k = 0; k < 3; k++) {
        const at = rnd(s.length);
        s = s.slice(0, at) + '<>",;=:@ '[rnd(10)] + s.slice(at + rnd(2));
      }
      assert.doesNotThrow(() => parseContacts(s));
    }
  });
});
