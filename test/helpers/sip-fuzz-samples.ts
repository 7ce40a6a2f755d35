/** Valid SIP samples and a seeded mutator for the parser and engine fuzz tests. */
export const BODY = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Grüße ☎\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

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

/** Small deterministic PRNG (mulberry32) so a failing fuzz case can be replayed by seed. */
export { rng as prng } from './seeded-random';

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

