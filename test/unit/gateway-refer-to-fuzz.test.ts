/**
 * The Refer-To / Replaces parser of the transfer core (src/gateway/transfer/refer-to.ts): the forms
 * phones and JsSIP send, the refusals, and a seeded fuzz — mangled values either parse into a checked
 * result (a plain user part, tokens without spaces or angle brackets) or come back as a problem;
 * nothing is ever thrown.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_REFER_TO_LENGTH, parseReferTo, parseReplaces, sipfrag } from '../../src/gateway/transfer/refer-to';
import { rng } from '../helpers/seeded-random';

describe('transfer: Refer-To and Replaces parsing', () => {
  test('the forms phones and JsSIP send', { timeout: 5000 }, () => {
    assert.deepEqual(parseReferTo('<sip:8100@ferry.local>'), { ok: true, user: '8100', uri: 'sip:8100@ferry.local' });
    assert.deepEqual(parseReferTo('sip:bob@ferry.local;transport=ws'), { ok: true, user: 'bob', uri: 'sip:bob@ferry.local' });
    assert.deepEqual(parseReferTo('"Bob" <sips:bob@10.0.0.1:5061;transport=tls>'), { ok: true, user: 'bob', uri: 'sips:bob@10.0.0.1:5061;transport=tls' });
    assert.deepEqual(parseReferTo('<tel:+15550100>'), { ok: true, user: '+15550100', uri: 'tel:+15550100' });
    assert.deepEqual(parseReferTo('8100'), { ok: true, user: '8100', uri: '8100' });
    const r = parseReferTo('<sip:c@h?Replaces=abc%40host%3Bto-tag%3D11%3Bfrom-tag%3D22&Require=replaces>');
    assert.deepEqual(r, { ok: true, user: 'c', uri: 'sip:c@h', replaces: { callId: 'abc@host', toTag: '11', fromTag: '22', earlyOnly: false } });
    assert.deepEqual(parseReplaces('x@y; from-tag=2 ;to-tag=1;early-only'), { ok: true, ref: { callId: 'x@y', toTag: '1', fromTag: '2', earlyOnly: true } });
    assert.equal(sipfrag(486, 'Busy\r\nHere'), 'SIP/2.0 486 Busy  Here\r\n');
  });

  test('refusals name the problem', { timeout: 5000 }, () => {
    for (const [value, problem] of [
      [undefined, /no Refer-To/],
      ['<http://example.com/>', /not a sip/],
      ['<sip:ferry.local>', /not a sip/],
      ['<sip:8100@h?method=BYE>', /only INVITE/],
      ['<sip:8100@h?Replaces=abc>', /call-id, a to-tag and a from-tag/],
      ['<sip:8100@h?Replaces=%E0%A4%A>', /badly escaped/],
      [`<sip:${'1'.repeat(65)}@h>`, /too long|user part/],
      [`<sip:1@h?x=${'a'.repeat(MAX_REFER_TO_LENGTH)}>`, /too long/],
    ] as const) {
      const r = parseReferTo(value);
      assert.equal(r.ok, false, String(value));
      if (!r.ok) assert.match(r.problem, problem, String(value));
    }
  });

  test('fuzz: mangled values parse into checked results or a problem, never a throw', { timeout: 10_000 }, () => {
    const r = rng(1203);
    const seeds = ['<sip:8100@ferry.local>', '<sip:c@h?Replaces=abc%40host%3Bto-tag%3D11%3Bfrom-tag%3D22>', 'tel:+1555', '"x" <sips:a@b;transport=tls>'];
    const junk = ['<', '>', '?', '&', '=', ';', '%', '%3B', '@', ':', ' ', '\r\n', '"', '\u0000', 'é', 'Replaces=', 'to-tag=', 'from-tag='];
    let parsed = 0;
    for (let i = 0; i < 5000; i++) {
      let s = seeds[Math.floor(r() * seeds.length)]!;
      const edits = 1 + Math.floor(r() * 6);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * (s.length + 1));
        s = r() < 0.3 ? s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 4)) : s.slice(0, at) + junk[Math.floor(r() * junk.length)]!.repeat(1 + Math.floor(r() * 3)) + s.slice(at);
      }
      if (r() < 0.01) s = s.repeat(200);
      const out = parseReferTo(s);
      if (!out.ok) {
        assert.ok(out.problem.length > 0);
        continue;
      }
      parsed++;
      assert.match(out.user, /^[A-Za-z0-9+*#._~!$&'()=,-]{1,64}$/);
      if (out.replaces) for (const t of [out.replaces.callId, out.replaces.toTag, out.replaces.fromTag]) assert.ok(t.length > 0 && t.length <= 256 && !/[\s<>"]/.test(t));
    }
    assert.ok(parsed > 100, `some mangled values still parse (${parsed})`);
  });
});
