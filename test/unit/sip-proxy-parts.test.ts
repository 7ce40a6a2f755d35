/**
 * The proxy core's small parts: the `proxy` message's options as srf sends them (durations,
 * destinations, extra headers; fuzzed: only ProxyOptionsError ever escapes), the choice of the best
 * failure (RFC 3261 §16.7), the loop hash in our branches, and the forwarded copy of a request.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipHeaders } from '../../src/sip/message/sip-headers';
import type { SipRequest } from '../../src/sip/message/sip-message';
import type { Flow } from '../../src/sip/transport/flow';
import { appHeaders, parseProxyDestination, parseProxyDuration, proxyOptionsFrom, ProxyOptionsError, type ProxyCommand } from '../../src/sip/proxy/proxy-options';
import { bestResponseIndex, upstreamStatus } from '../../src/sip/proxy/best-response';
import { isLoop, loopHash, PROXY_BRANCH_PREFIX } from '../../src/sip/proxy/loop-detection';
import { buildBranchRequest, isOurRoute, recordRouteFor, RouteStamp } from '../../src/sip/proxy/forwarded-request';
import { rng } from '../helpers/seeded-random';

const local = {
  host: () => '10.0.0.5',
  port: (f: Flow) => (f.protocol === 'ws' ? 8088 : 5060),
  via: (f: Flow) => `SIP/2.0/${f.protocol.toUpperCase()} 10.0.0.5:5060;rport;branch=z9hG4bKengine1`,
};
const udp = { protocol: 'udp' } as Flow;
const tcp = { protocol: 'tcp' } as Flow;

function invite(uri = 'sip:bob@10.0.0.5:5060'): SipRequest {
  return {
    kind: 'request', method: 'INVITE', uri, body: Buffer.from('v=0\r\n'),
    headers: SipHeaders.from([
      ['Via', 'SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKcaller1;rport'], ['Max-Forwards', '70'], ['From', '<sip:alice@10.0.0.9>;tag=a1'],
      ['To', '<sip:bob@10.0.0.5>'], ['Call-ID', 'c1@10.0.0.9'], ['CSeq', '1 INVITE'], ['Contact', '<sip:alice@10.0.0.9:5062>'],
    ]),
  };
}

function command(over: Partial<ProxyCommand> = {}): ProxyCommand {
  return { remainInDialog: false, followRedirects: false, simultaneous: false, provisionalTimeout: '', finalTimeout: '',
    destinations: ['10.0.0.7'], raw: '', ...over };
}

describe('proxy options as drachtio-srf sends them', () => {
  test('durations: empty is none, 1500ms and 2s are read, anything else is refused with the option\'s name', { timeout: 30_000 }, () => {
    assert.equal(parseProxyDuration('provisionalTimeout', ''), undefined);
    assert.equal(parseProxyDuration('provisionalTimeout', '1500ms'), 1500);
    assert.equal(parseProxyDuration('finalTimeout', '2s'), 2000);
    assert.throws(() => parseProxyDuration('finalTimeout', '2 minutes'), /invalid finalTimeout '2 minutes'/);
    assert.throws(() => parseProxyDuration('finalTimeout', '0ms'), ProxyOptionsError);
    assert.throws(() => parseProxyDuration('finalTimeout', '99999s'), /between/);
  });

  test('destinations: a bare host[:port] becomes a sip: URI as srf writes it; tel: and garbage are refused', { timeout: 30_000 }, () => {
    assert.equal(parseProxyDestination('10.0.0.7:5070'), 'sip:10.0.0.7:5070');
    assert.equal(parseProxyDestination('sip:bob@pbx.example;transport=tcp'), 'sip:bob@pbx.example;transport=tcp');
    assert.throws(() => parseProxyDestination('tel:+4930123'), ProxyOptionsError);
    assert.throws(() => parseProxyDestination('sip:'), ProxyOptionsError);
    assert.throws(() => proxyOptionsFrom(command({ destinations: [] })), /no destination/);
    assert.throws(() => proxyOptionsFrom(command({ destinations: Array(17).fill('10.0.0.7') })), /too many destinations/);
  });

  test('extra headers come from the SIP text; the ones the proxy owns are dropped', { timeout: 30_000 }, () => {
    const raw = 'INVITE sip:10.0.0.7 SIP/2.0\r\nX-Tenant: blue\r\nVia: SIP/2.0/UDP evil\r\nRecord-Route: <sip:evil>\r\nContent-Length: 0\r\n\r\n';
    assert.deepEqual(appHeaders(raw), [['X-Tenant', 'blue']]);
    assert.deepEqual(appHeaders(''), []);
    const o = proxyOptionsFrom(command({ raw, remainInDialog: true, simultaneous: true, provisionalTimeout: '2s' }));
    assert.deepEqual([o.recordRoute, o.simultaneous, o.provisionalTimeoutMs, o.headers.length], [true, true, 2000, 1]);
  });

  test('fuzz: random option values and SIP text only ever give options or a ProxyOptionsError', { timeout: 30_000 }, () => {
    const next = rng(4711);
    const alphabet = 'sip:@;=.0123456789msx \r\n|<>"tcp-_%\u00e9';
    const word = (n: number) => Array.from({ length: Math.floor(next() * n) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const m = command({
        destinations: Array.from({ length: Math.floor(next() * 4) }, () => (next() < 0.5 ? `10.0.0.${Math.floor(next() * 255)}:5070` : word(30))),
        provisionalTimeout: next() < 0.5 ? `${Math.floor(next() * 5000)}ms` : word(8),
        finalTimeout: next() < 0.7 ? '' : word(6),
        raw: next() < 0.5 ? `INVITE sip:x SIP/2.0\r\n${word(60)}\r\n\r\n` : word(80),
      });
      try {
        const o = proxyOptionsFrom(m);
        for (const d of o.destinations) assert.match(d, /^sips?:/);
      } catch (err) {
        assert.ok(err instanceof ProxyOptionsError, `case ${i}: ${String(err)}`);
        refused++;
      }
    }
    assert.ok(refused > 0 && refused < 2000, 'both outcomes occurred');
  });
});

describe('best failure and loops', () => {
  test('RFC 3261 §16.7: 6xx wins, then the lowest class, 401/407/415/420/484 first among 4xx; a 503 goes up as 500', { timeout: 30_000 }, () => {
    assert.equal(bestResponseIndex([503, 486]), 1);
    assert.equal(bestResponseIndex([486, 603, 302]), 1);
    assert.equal(bestResponseIndex([500, 302, 404]), 1);
    assert.equal(bestResponseIndex([404, 407]), 1);
    assert.equal(bestResponseIndex([480, 486]), 0, 'earlier branch wins a tie');
    assert.equal(bestResponseIndex([]), -1);
    assert.equal(upstreamStatus(503), 500);
    assert.equal(upstreamStatus(486), 486);
  });

  test('a request carrying our Via with its own loop hash has looped; a spiral (new Request-URI) has not', { timeout: 30_000 }, () => {
    const first = invite();
    const forwarded = buildBranchRequest({ original: first, target: 'sip:10.0.0.7', replaceUri: false, recordRoute: false, appHeaders: [],
      hash: loopHash(first) }, local, udp);
    assert.ok(forwarded.headers.getAll('Via')[0].includes(`branch=${PROXY_BRANCH_PREFIX}${loopHash(first)}x`));
    assert.equal(isLoop(first, '10.0.0.5'), false, 'the first arrival carries no Via of ours');
    assert.equal(isLoop(forwarded, '10.0.0.5'), true, 'back with the same Request-URI, tags, Call-ID, CSeq: a loop');
    assert.equal(isLoop({ ...forwarded, uri: 'sip:carol@10.0.0.5' }, '10.0.0.5'), false, 'another Request-URI: a spiral');
    assert.equal(isLoop(forwarded, '10.0.0.6'), false, 'a Via of another host is not ours');
  });
});

describe('the forwarded copy of a request', () => {
  test('Request-URI replaced when it named ferry sip, Max-Forwards down by one, Record-Route and our Via on top, app headers set', { timeout: 30_000 }, () => {
    const req = invite();
    const out = buildBranchRequest({ original: req, target: 'sip:10.0.0.7:5070', replaceUri: true, recordRoute: true, routeStamp: 'st4mp',
      appHeaders: [['X-Tenant', 'blue']], hash: loopHash(req) }, local, tcp);
    assert.equal(out.uri, 'sip:10.0.0.7:5070');
    assert.equal(out.headers.get('Max-Forwards'), '69');
    assert.equal(out.headers.get('Record-Route'), '<sip:10.0.0.5:5060;transport=tcp;lr;ferry-rr=st4mp>');
    assert.equal(out.headers.getAll('Via').length, 2);
    assert.match(out.headers.getAll('Via')[0], /^SIP\/2\.0\/TCP 10\.0\.0\.5:5060;rport;branch=z9hG4bKfp/);
    assert.equal(out.headers.get('X-Tenant'), 'blue');
    assert.equal(req.headers.get('Max-Forwards'), '70', 'the original is untouched');
    assert.equal(recordRouteFor(local, udp, 'st4mp'), '<sip:10.0.0.5:5060;lr;ferry-rr=st4mp>');
  });

  test('REGISTER gets Path and Require: path instead of Record-Route; no Max-Forwards becomes 70', { timeout: 30_000 }, () => {
    const reg = invite('sip:10.0.0.5');
    reg.method = 'REGISTER';
    reg.headers.remove('Max-Forwards');
    const out = buildBranchRequest({ original: reg, target: 'sip:registrar.example', replaceUri: false, recordRoute: true, routeStamp: 'st4mp', appHeaders: [],
      hash: loopHash(reg) }, local, udp);
    assert.equal(out.uri, 'sip:10.0.0.5', 'a Request-URI kept when it did not name ferry sip');
    assert.equal(out.headers.get('Record-Route'), undefined);
    assert.equal(out.headers.get('Path'), '<sip:10.0.0.5:5060;lr;ferry-rr=st4mp>');
    assert.equal(out.headers.get('Require'), 'path');
    assert.equal(out.headers.get('Max-Forwards'), '70');
  });

  test('our Route is recognised by our host and the stamp of the request\'s Call-ID, never by the mark alone', { timeout: 30_000 }, () => {
    const stamp = new RouteStamp(Buffer.alloc(32, 7));
    const s = stamp.of('c1@10.0.0.9');
    assert.match(s, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(isOurRoute(`<sip:10.0.0.5:5060;lr;ferry-rr=${s}>`, ['10.0.0.5'], stamp, 'c1@10.0.0.9'), true);
    assert.equal(isOurRoute(`<sip:10.0.0.5:5060;lr;ferry-rr=${s}>`, ['10.0.0.5'], stamp, 'c2@10.0.0.9'), false, 'another call\'s Call-ID');
    assert.equal(isOurRoute(`<sip:10.0.0.5:5060;lr;ferry-rr=${s}>`, ['10.0.0.5'], new RouteStamp(Buffer.alloc(32, 8)), 'c1@10.0.0.9'), false, 'another key');
    assert.equal(isOurRoute('<sip:10.0.0.5:5060;lr;ferry-rr>', ['10.0.0.5'], stamp, 'c1@10.0.0.9'), false, 'the bare mark');
    assert.equal(isOurRoute(`<sip:10.0.0.5:5060;lr;ferry-rr=${s.slice(1)}>`, ['10.0.0.5'], stamp, 'c1@10.0.0.9'), false, 'a shorter stamp');
    assert.equal(isOurRoute(`<sip:10.0.0.5:5060;lr>`, ['10.0.0.5'], stamp, 'c1@10.0.0.9'), false);
    assert.equal(isOurRoute(`<sip:10.0.0.8:5060;lr;ferry-rr=${s}>`, ['10.0.0.5'], stamp, 'c1@10.0.0.9'), false, 'another host');
    assert.equal(isOurRoute(undefined, ['10.0.0.5'], stamp, 'c1@10.0.0.9'), false);
  });
});
