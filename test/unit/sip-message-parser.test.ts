import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { serializeSipMessage } from '../../src/sip/message/sip-serializer';
import { SipParseError } from '../../src/sip/message/sip-parse-error';
import { SipStreamFramer } from '../../src/sip/message/sip-stream-framer';
import { parseNameAddr, tagOf } from '../../src/sip/message/name-addr';
import { parseSipUri } from '../../src/sip/message/sip-uri';
import { parseVia } from '../../src/sip/message/via';

const BODY = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Grüße ☎\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

export const SAMPLES: string[] = [
  ['INVITE sip:bob@127.0.0.1:5060 SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport',
    'v: SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bKproxy1',
    'Max-Forwards: 70',
    'f: "Alice, A." <sip:alice@127.0.0.1:5070>;tag=1928301774',
    't: <sip:bob@127.0.0.1>',
    'i: a84b4c76e66710@pc33.atlanta.com',
    'CSeq: 314159 INVITE',
    'm: <sip:alice@127.0.0.1:5070>, <sip:alice2@127.0.0.1:5072>;q=0.5',
    'Record-Route: <sip:p1.example.com;lr>,',
    ' <sip:p2.example.com;lr>',
    'c: application/sdp',
    `l: ${Buffer.byteLength(BODY)}`,
    '', BODY].join('\r\n'),
  ['SIP/2.0 200 OK',
    'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKabc;received=127.0.0.1',
    'From: <sip:alice@127.0.0.1>;tag=a1',
    'To: <sip:bob@127.0.0.1>;tag=b2',
    'Call-ID: resp-1',
    'CSeq: 2 BYE',
    'Content-Length: 0', '', ''].join('\r\n'),
  ['REGISTER sip:127.0.0.1 SIP/2.0',
    'Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks;rport',
    'From: <sip:1001@127.0.0.1>;tag=r1', 'To: <sip:1001@127.0.0.1>', 'Call-ID: reg-1', 'CSeq: 1 REGISTER',
    'Contact: <sip:k7m2@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:0d3b>";expires=600',
    'Expires: 600', 'Supported: path, gruu, outbound', 'Content-Length: 0', '', ''].join('\r\n'),
];

describe('SIP message parser', () => {
  test('expands compact header names and keeps multi-valued headers in order', () => {
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

  test('Content-Length counts bytes, not characters (UTF-8 body survives a round trip)', () => {
    const m = parseSipMessage(Buffer.from(SAMPLES[0]));
    assert.equal(m.body.toString('utf8'), BODY);
    const out = serializeSipMessage(m);
    const again = parseSipMessage(out);
    assert.equal(again.body.toString('utf8'), BODY);
    assert.match(out.toString('utf8'), new RegExp(`Content-Length: ${Buffer.byteLength(BODY)}\\r\\n`));
    assert.notEqual(Buffer.byteLength(BODY), BODY.length);
  });

  test('a datagram with extra bytes after Content-Length keeps only Content-Length bytes', () => {
    const m = parseSipMessage(Buffer.from(SAMPLES[1] + 'junk'));
    assert.equal(m.body.length, 0);
  });

  test('missing mandatory headers: SipParseError that still allows a 400', () => {
    const bad = SAMPLES[2].replace('CSeq: 1 REGISTER\r\n', '');
    assert.throws(() => parseSipMessage(Buffer.from(bad)), (e: unknown) => e instanceof SipParseError && e.isRequest && e.method === 'REGISTER'
      && e.headers?.get('Call-ID') === 'reg-1');
  });

  test('URI and Via helpers', () => {
    const u = parseSipUri('sip:k7m2@df7jal23ls0d.invalid;transport=ws');
    assert.equal(u?.host, 'df7jal23ls0d.invalid');
    assert.equal(u?.params.get('transport'), 'ws');
    assert.equal(parseSipUri('sip:[::1]:5062')?.port, 5062);
    assert.equal(parseSipUri('sip:host:99999'), undefined);
    assert.equal(parseVia('SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1')?.protocol, 'WS');
  });

  test('TCP framing: split and packed messages, CRLF keep-alive pings', () => {
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

  test('TCP framing: a stream without Content-Length is an error (the connection is closed)', () => {
    const f = new SipStreamFramer();
    const out = f.push(Buffer.from(SAMPLES[1].replace('Content-Length: 0\r\n', '')));
    assert.ok(out.error);
  });
});

/** Small deterministic PRNG (mulberry32) so a failing fuzz case can be replayed by seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mutate(sample: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(sample);
  const ops = 1 + Math.floor(rnd() * 6);
  let out = b;
  const specials = [':', ';', '<', '>', '"', '\r', '\n', ' ', ',', '=', '\0', '@', '[', ']', '#', '|', '\\', '\xff'];
  for (let i = 0; i < ops; i++) {
    const pos = Math.floor(rnd() * Math.max(1, out.length));
    const r = rnd();
    if (r < 0.3) out[pos] = Math.floor(rnd() * 256);
    else if (r < 0.5) out = Buffer.concat([out.subarray(0, pos), out.subarray(pos + 1 + Math.floor(rnd() * 20))]);
    else if (r < 0.7) out = Buffer.concat([out.subarray(0, pos), Buffer.from(specials[Math.floor(rnd() * specials.length)], 'latin1'), out.subarray(pos)]);
    else if (r < 0.85) out = out.subarray(0, pos);
    else { const len = Math.floor(rnd() * 40); out = Buffer.concat([out.subarray(0, pos), out.subarray(pos, pos + len), out.subarray(pos)]); }
  }
  return out;
}

describe('SIP parser fuzz (seeded mutations of valid messages)', () => {
  test('20 000 mutations: parse succeeds or throws SipParseError, never anything else; framer never throws', () => {
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
