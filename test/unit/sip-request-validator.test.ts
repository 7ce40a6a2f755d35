/**
 * The request validator (src/sip/message/request-validator.ts) and the strict address syntax it uses:
 * the answers RFC 3261 §8.2 orders (505, 400, 501, 416, 420), what stays accepted (the valid RFC 4475
 * messages, the headers real phones and JsSIP send). The seeded fuzz is sip-request-validator-fuzz.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { refusalResponse, validateRequest } from '../../src/sip/message/request-validator';
import { addressError, paramsError, viaError } from '../../src/sip/message/address-syntax';
import { SAMPLES } from '../helpers/sip-fuzz-samples';
import { RFC4475_CORPUS, loadRfc4475 } from '../fixtures/rfc4475/corpus';

const noApp = { routes: () => false };

function request(lines: string[]): SipRequest {
  const m = parseSipMessage(Buffer.from([...lines, 'Content-Length: 0', '', ''].join('\r\n')));
  assert.equal(m.kind, 'request');
  return m as SipRequest;
}

function options(extra: string[] = [], requestLine = 'OPTIONS sip:service@127.0.0.1 SIP/2.0', method = 'OPTIONS'): SipRequest {
  return request([requestLine, 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport', 'Max-Forwards: 70',
    'From: "Alice" <sip:alice@127.0.0.1>;tag=1', 'To: <sip:service@127.0.0.1>', 'Call-ID: v1', `CSeq: 1 ${method}`, ...extra]);
}

describe('request validator', () => {
  test('a plain request and the headers JsSIP and phones send pass', { timeout: 5000 }, () => {
    assert.equal(validateRequest(options(), noApp), undefined);
    assert.equal(validateRequest(options([
      'Contact: <sip:k7m2@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:0d3b>";expires=600',
      'Route: <sip:127.0.0.1;lr;transport=ws>', 'Record-Route: <sip:p1.example.com;lr>, <sip:[2001:db8::1]:5060;lr>',
      'Supported: path, gruu, outbound', 'Require: 100rel, timer',
    ]), noApp), undefined);
    for (const sample of SAMPLES) {
      const m = parseSipMessage(Buffer.from(sample));
      if (m.kind === 'request') assert.equal(validateRequest(m, { routes: () => true }), undefined, sample.split('\r\n')[0]);
    }
  });

  test('every valid RFC 4475 request passes the syntax checks (only 501 for the extension methods no app routes)', { timeout: 5000 }, () => {
    for (const msg of RFC4475_CORPUS.filter((m) => m.valid)) {
      const m = parseSipMessage(loadRfc4475(msg.name));
      if (m.kind !== 'request') continue;
      assert.equal(validateRequest(m, { routes: () => true }), undefined, `${msg.name} with every method routed`);
    }
  });

  test('505 for another SIP version, before anything else', { timeout: 5000 }, () => {
    const r = validateRequest(options(['Require: foo'], 'OPTIONS sip:service@127.0.0.1 SIP/3.0'), noApp);
    assert.equal(r?.status, 505);
  });

  test('501 only for an extension method outside a dialog that no app routes', { timeout: 5000 }, () => {
    const req = options([], 'FOO sip:service@127.0.0.1 SIP/2.0', 'FOO');
    assert.equal(validateRequest(req, noApp)?.status, 501);
    assert.equal(validateRequest(req, { routes: (m) => m === 'foo' }), undefined);
    // a known method with no app is the engine's 503, not 501
    assert.equal(validateRequest(options([], 'PUBLISH sip:service@127.0.0.1 SIP/2.0', 'PUBLISH'), noApp), undefined);
    // inside a dialog the dialog's app decides
    const inDialog = request(['FOO sip:service@127.0.0.1 SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx', 'From: <sip:a@b>;tag=1',
      'To: <sip:c@d>;tag=2', 'Call-ID: v2', 'CSeq: 2 FOO']);
    assert.equal(validateRequest(inDialog, noApp), undefined);
  });

  test('416 for a Request-URI scheme other than sip, sips and tel; 400 for one in <> or with headers', { timeout: 5000 }, () => {
    assert.equal(validateRequest(options([], 'OPTIONS mailto:a@example.com SIP/2.0'), noApp)?.status, 416);
    assert.equal(validateRequest(options([], 'OPTIONS tel:+15551234 SIP/2.0'), noApp), undefined);
    assert.equal(validateRequest(options([], 'OPTIONS sips:a@example.com SIP/2.0'), noApp), undefined);
    assert.equal(validateRequest(options([], 'OPTIONS <sip:a@example.com> SIP/2.0'), noApp)?.status, 400);
    assert.equal(validateRequest(options([], 'OPTIONS sip:a@example.com?Subject=x SIP/2.0'), noApp)?.status, 400);
    // ? and ; in the user part are allowed (RFC 3261 user-unreserved)
    assert.equal(validateRequest(options([], 'OPTIONS sip:a?b;c=d@example.com;transport=tcp SIP/2.0'), noApp), undefined);
  });

  test('420 lists every unsupported Require tag in Unsupported; ACK, CANCEL and routed requests are never refused for it', { timeout: 5000 }, () => {
    const r = validateRequest(options(['Require: 100rel, foo', 'Require: bar']), noApp);
    assert.equal(r?.status, 420);
    const res = refusalResponse(options(['Require: 100rel, foo', 'Require: bar']), r!);
    assert.equal(res.headers.get('Unsupported'), 'foo, bar');
    assert.equal(res.reason, 'Bad Extension');
    assert.match(res.headers.get('To')!, /;tag=[0-9a-f]{16}$/);
    assert.equal(validateRequest(options(['Require: foo'], 'CANCEL sip:service@127.0.0.1 SIP/2.0', 'CANCEL'), noApp), undefined);
    // routed through ferry sip (a proxy hop): the Require is for the UAS further on
    assert.equal(validateRequest(options(['Route: <sip:127.0.0.1;lr>', 'Require: precondition']), noApp), undefined);
  });

  test('400 for duplicated single headers, a bare z9hG4bK branch, a REGISTER To that is not sip', { timeout: 5000 }, () => {
    assert.equal(validateRequest(options(['To: <sip:other@example.com>']), noApp)?.status, 400);
    assert.equal(validateRequest(options(['Max-Forwards: 69']), noApp)?.why, 'more than one Max-Forwards');
    const bare = request(['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK', 'From: <sip:a@b>;tag=1', 'To: <sip:c@d>',
      'Call-ID: v3', 'CSeq: 1 OPTIONS']);
    assert.equal(validateRequest(bare, noApp)?.status, 400);
    const reg = request(['REGISTER sip:b SIP/2.0', 'Via: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKr', 'From: <sip:a@b>;tag=1', 'To: tel:+1555',
      'Call-ID: v4', 'CSeq: 1 REGISTER']);
    assert.equal(validateRequest(reg, noApp)?.why, 'the To of a REGISTER is not a sip or sips URI');
  });

  test('address syntax: what RFC 3261 §25.1 allows, and what it does not', { timeout: 5000 }, () => {
    for (const ok of ['<sip:a@b>', '"A \\"q\\"" <sip:a@b>;tag=1', 'Alice Smith <sip:a@b>', 'caller<sip:a@b>;tag=2', 'sip:a@b ; tag = 3',
      'sip:a@b;user=phone', '*', '<urn:uuid:1>', 'isbn:2983792873', '<sip:a@b>;x="quoted;value"']) {
      assert.equal(addressError(ok), undefined, ok);
    }
    for (const [bad, why] of [['Bell, Alexander <sip:a@b>', 'not quoted'], ['"Mr. J. User <sip:a@b>', 'unterminated'], ['< sip:a@b >', 'whitespace'],
      ['sip:a@b?Route=x', 'enclosed'], ['<sip:a@b>;;', 'empty parameter'], ['<sip:a@b', 'no >'], ['<sip:a@b>;x=', 'empty value'], ['noscheme', 'scheme']]) {
      assert.match(addressError(bad) ?? '', new RegExp(why), bad);
    }
    assert.equal(viaError('SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw'), undefined);
    assert.equal(viaError('SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK1;rport;received=2001:db8::1'), undefined);
    assert.match(viaError('SIP/2.0/UDP 192.0.2.15;;') ?? '', /empty parameter/);
    assert.match(viaError(';') ?? '', /SIP\/2.0/);
    assert.equal(paramsError(''), undefined);
  });

  test('hostile lengths are checked in linear time', { timeout: 5000 }, () => {
    const started = Date.now();
    for (const s of ['"'.repeat(60_000), ';'.repeat(60_000), `<sip:a@b>${';a=b'.repeat(15_000)}`, `${'a '.repeat(30_000)}<sip:a@b>`, '\\'.repeat(60_000)]) {
      addressError(s);
      viaError(`SIP/2.0/UDP h${s}`);
    }
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });
});
