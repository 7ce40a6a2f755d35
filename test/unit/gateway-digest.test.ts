import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { parseContacts } from '../../src/gateway/registrar/contact-header';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** what a client (JsSIP, SIPp) computes for a challenge */
function answer(challenge: string, user: string, password: string, method: string, uri: string, qop = true): string {
  const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const ha1 = md5(`${user}:${realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  if (!qop) return `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${md5(`${ha1}:${nonce}:${ha2}`)}", algorithm=MD5`;
  const cnonce = 'abc123';
  const nc = '00000001';
  const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return `Digest algorithm=MD5, username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", qop=auth, cnonce="${cnonce}", nc=${nc}`;
}

describe('digest authentication', () => {
  test('accepts the right password with and without qop, refuses a wrong one', () => {
    const auth = new DigestAuth('ferry.local');
    const ch = auth.challenge();
    assert.match(ch, /^Digest realm="ferry.local", nonce="[0-9a-f]+\.[0-9a-f]{32}", algorithm=MD5, qop="auth"$/);
    const ok = DigestAuth.parse(answer(ch, 'alice', 'pw', 'REGISTER', 'sip:ferry.local'))!;
    assert.deepEqual(auth.verify(ok, 'REGISTER', 'pw'), { ok: true });
    assert.deepEqual(auth.verify(DigestAuth.parse(answer(ch, 'alice', 'pw', 'REGISTER', 'sip:ferry.local', false))!, 'REGISTER', 'pw'), { ok: true });
    assert.equal(auth.verify(ok, 'REGISTER', 'wrong').ok, false);
    assert.equal(auth.verify(ok, 'INVITE', 'pw').ok, false, 'method is part of the hash');
  });

  test('nonces: foreign ones refused, stale ones flagged, shared key accepted across instances', () => {
    let now = 1_000_000;
    const key = Buffer.alloc(32, 7);
    const a = new DigestAuth('r', key, 1000, () => now);
    const b = new DigestAuth('r', key, 1000, () => now);
    const c = new DigestAuth('r', Buffer.alloc(32, 9), 1000, () => now);
    const creds = DigestAuth.parse(answer(a.challenge(), 'u', 'p', 'REGISTER', 'sip:r'))!;
    assert.deepEqual(b.verify(creds, 'REGISTER', 'p'), { ok: true }, 'another gateway with the shared key');
    assert.deepEqual(c.verify(creds, 'REGISTER', 'p'), { ok: false, stale: false, why: 'foreign nonce' });
    now += 5000;
    assert.deepEqual(a.verify(creds, 'REGISTER', 'p'), { ok: false, stale: true, why: 'stale nonce' });
    assert.match(a.challenge(true), /stale=true/);
  });

  test('parse refuses non-digest and incomplete headers', () => {
    assert.equal(DigestAuth.parse(undefined), undefined);
    assert.equal(DigestAuth.parse('Basic abc'), undefined);
    assert.equal(DigestAuth.parse('Digest username="a"'), undefined);
    assert.equal(DigestAuth.parse('Digest username="a\\"b", realm="r", nonce="n", uri="u", response="x"')!.username, 'a"b');
  });

  test('fuzz: mutated Authorization headers never throw (seeded)', () => {
    const auth = new DigestAuth('ferry.local');
    const sample = answer(auth.challenge(), 'alice', 'pw', 'REGISTER', 'sip:ferry.local');
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    for (let i = 0; i < 5000; i++) {
      let s = sample;
      for (let k = 0; k < 1 + rnd(4); k++) {
        const at = rnd(s.length);
        s = rnd(2) ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + '",=\\. zqop'[rnd(11)] + s.slice(at);
      }
      const p = DigestAuth.parse(s);
      if (p) assert.doesNotThrow(() => auth.verify(p, 'REGISTER', 'pw'));
    }
  });
});

describe('Contact header parsing', () => {
  test('JsSIP and phone contacts, several per header, expires', () => {
    const jssip = '<sip:pgu1j5tv@49707sareh9v.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:1-2>";expires=600';
    assert.deepEqual(parseContacts(jssip), [{ uri: 'sip:pgu1j5tv@49707sareh9v.invalid;transport=ws', expires: 600 }]);
    assert.deepEqual(parseContacts('"A, B" <sip:a@h>;expires=0, sip:b@h:5070;expires=30'), [
      { uri: 'sip:a@h', expires: 0 },
      { uri: 'sip:b@h:5070', expires: 30 },
    ]);
    assert.deepEqual(parseContacts('<sip:c@h>'), [{ uri: 'sip:c@h' }]);
    assert.deepEqual(parseContacts('garbage, <http://x>'), []);
  });

  test('fuzz: never throws', () => {
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
