import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { serializeSipMessage } from '../../src/sip/message/sip-serializer';
import { SipParseError } from '../../src/sip/message/sip-parse-error';
import { SipStreamFramer } from '../../src/sip/message/sip-stream-framer';
import { parseNameAddr, tagOf } from '../../src/sip/message/name-addr';
import { parseSipUri } from '../../src/sip/message/sip-uri';
import { parseVia } from '../../src/sip/message/via';
import { BODY, SAMPLES, mutate, prng } from '../helpers/sip-fuzz-samples';

describe('SIP message parser', () => {
  test('expands compact header names and keeps multi-valued headers in order', { timeout: 30_000 }, () => {
    const m = parseSipMessage(Buffer.from(SAMPLES[0]));
    assert.equal(m.kind, 'request');
    assert.deepEqual(m.headers.getAll('Via').map((v) => parseVia(v)?.params.get('branch')), ['z9hG4bK776asdhds', 'z9hG4bKproxy1']);
    assert.equal(m.headers.get('call-id'), 'a84b4c76e66710@pc33.atlanta.com');
    assert.equal(tagOf(m.headers.get('From')), '1928301774');
    assert.equal(parseNameAddr(m.headers.get('From')!)?.display, 'Alice, A.');
    assert.deepEqual(m.headers.getAll('Contact').length, 2);
    assert.deepEqual(m.headers.getAll('Record-Route'), ['<sip:p1.example.com;lr>', '<sip:p2.example.com;lr>']);
    assert.equal(m.headers.get('Content-Type'), 'application/sdp');
  });

  test('Content-Length counts bytes, not characters (UTF-8 body survives a round trip)', { timeout: 30_000 }, () => {
    const m = parseSipMessage(Buffer.from(SAMPLES[0]));
    assert.equal(m.body.toString('utf8'), BODY);
    const out = serializeSipMessage(m);
    const again = parseSipMessage(out);
    assert.equal(again.body.toString('utf8'), BODY);
    assert.match(out.toString('utf8'), new RegExp(`Content-Length: ${Buffer.byteLength(BODY)}\\r\\n`));
    assert.notEqual(Buffer.byteLength(BODY), BODY.length);
  });

  test('a datagram with extra bytes after Content-Length keeps only Content-Length bytes', { timeout: 30_000 }, () => {
    const m = parseSipMessage(Buffer.from(SAMPLES[1] + 'junk'));
    assert.equal(m.body.length, 0);
  });

  test('missing mandatory headers: SipParseError that still allows a 400', { timeout: 30_000 }, () => {
    const bad = SAMPLES[2].replace('CSeq: 1 REGISTER\r\n', '');
    assert.throws(() => parseSipMessage(Buffer.from(bad)), (e: unknown) => e instanceof SipParseError && e.isRequest && e.method === 'REGISTER'
      && e.headers?.get('Call-ID') === 'reg-1');
  });

  test('URI and Via helpers', { timeout: 30_000 }, () => {
    const u = parseSipUri('sip:k7m2@df7jal23ls0d.invalid;transport=ws');
    assert.equal(u?.host, 'df7jal23ls0d.invalid');
    assert.equal(u?.params.get('transport'), 'ws');
    assert.equal(parseSipUri('sip:[::1]:5062')?.port, 5062);
    assert.equal(parseSipUri('sip:host:99999'), undefined);
    assert.equal(parseVia('SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1')?.protocol, 'WS');
  });

  test('TCP framing: split and packed messages, CRLF keep-alive pings', { timeout: 30_000 }, () => {
    const f = new SipStreamFramer();
    const a = Buffer.from(SAMPLES[0]);
    const b = Buffer.from(SAMPLES[1]);
    const stream = Buffer.concat([Buffer.from('\r\n\r\n'), a, b, Buffer.from('\r\n\r\n')]);
    const got: Buffer[] = [];
    let pings = 0;
    for (let i = 0; i < stream.length; i += 7) {
      const out = f.push(stream.subarray(i, i + 7));
      assert.equal(out.error, undefined);
      got.push(...out.messages);
      pings += out.pings;
    }
    assert.equal(got.length, 2);
    assert.deepEqual(got[0], a);
    assert.deepEqual(got[1], b);
    assert.equal(pings, 2);
  });

  test('TCP framing: a stream without Content-Length is an error (the connection is closed)', { timeout: 30_000 }, () => {
    const f = new SipStreamFramer();
    const out = f.push(Buffer.from(SAMPLES[1].replace('Content-Length: 0\r\n', '')));
    assert.ok(out.error);
  });
});

describe('SIP parser fuzz (seeded mutations of valid messages)', () => {
  test('20 000 mutations: parse succeeds or throws SipParseError, never anything else; framer never throws', { timeout: 30_000 }, () => {
    const rnd = prng(0xfe77);
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 20_000; i++) {
      const sample = Buffer.from(SAMPLES[i % SAMPLES.length]);
      const input = mutate(sample, rnd);
      try {
        const m = parseSipMessage(input, i % 2 === 0);
        serializeSipMessage(m); // whatever parsed must serialise
        ok++;
      } catch (e) {
        if (!(e instanceof SipParseError)) assert.fail(`iteration ${i}: ${String(e)}\n${JSON.stringify(input.toString('latin1'))}`);
        rejected++;
      }
      const f = new SipStreamFramer();
      f.push(input);
    }
    assert.ok(ok > 1000, `some mutations still parse (${ok})`);
    assert.ok(rejected > 1000, `many mutations are rejected (${rejected})`);
  });
});
