import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { AddressList } from '../../src/common/address-list';
import { sourceKeyer } from '../../src/common/source-key';
import { loadSipSettings } from '../../src/cli/sip-settings';
import { RequestRateGuard, startsSomethingNew } from '../../src/sip/engine/request-rate-guard';
import { DEFAULT_REQUEST_RATE, requestRateFromEnv, requestRateOff, type RequestRateLimits } from '../../src/sip/engine/request-rate-limits';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { Flow, SipProtocol } from '../../src/sip/transport/flow';
import { captureLog } from '../helpers/captured-log';

/**
 * The parts of the per-source rate of new requests: which requests count, the settings (read strictly: a bad
 * value names its variable), the exempt list, and the guard on a FakeClock (an IPv6 /64 is one source, exempt
 * sources are never counted, one log line per source per 10 s).
 */

function request(method: string, to: string): SipRequest {
  const text = [`${method} sip:service@127.0.0.1 SIP/2.0`, 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx1', 'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=f1', to, 'Call-ID: c1', `CSeq: 1 ${method}`, 'Content-Length: 0', '', ''].join('\r\n');
  const m = parseSipMessage(Buffer.from(text), true);
  assert.equal(m.kind, 'request');
  return m as SipRequest;
}

function flow(remoteAddress: string, protocol: SipProtocol = 'udp'): Flow {
  return { id: `${protocol}/${remoteAddress}:5070`, protocol, reliable: protocol !== 'udp', remoteAddress, remotePort: 5070,
    localAddress: '127.0.0.1', localPort: 5060, closed: false, send: () => undefined };
}

describe('which requests count against the per-source rate', { timeout: 10_000 }, () => {
  test('requests outside a dialog count, except ACK and CANCEL; anything with a To tag does not', () => {
    for (const method of ['INVITE', 'REGISTER', 'OPTIONS', 'SUBSCRIBE', 'MESSAGE', 'NOTIFY', 'PUBLISH', 'REFER', 'INFO', 'BYE', 'FOO']) {
      const r = request(method, 'To: <sip:service@127.0.0.1>');
      assert.equal(startsSomethingNew(r.method, r.headers), true, `${method} without a To tag`);
    }
    for (const method of ['ACK', 'CANCEL']) {
      const r = request(method, 'To: <sip:service@127.0.0.1>');
      assert.equal(startsSomethingNew(r.method, r.headers), false, `${method} belongs to a transaction that exists`);
    }
    for (const method of ['BYE', 'INVITE', 'ACK', 'INFO', 'NOTIFY', 'UPDATE', 'REFER', 'MESSAGE', 'OPTIONS', 'PRACK']) {
      const r = request(method, 'To: <sip:service@127.0.0.1>;tag=t9');
      assert.equal(startsSomethingNew(r.method, r.headers), false, `in-dialog ${method}`);
    }
    const compact = request('BYE', 't: <sip:service@127.0.0.1>;tag=t9');
    assert.equal(startsSomethingNew(compact.method, compact.headers), false, 'the compact form of To with a tag');
    const emptyTag = request('INVITE', 'To: <sip:service@127.0.0.1>;tag=');
    assert.equal(startsSomethingNew(emptyTag.method, emptyTag.headers), true, 'an empty tag is no tag');
  });
});

describe('the rate settings are read strictly', { timeout: 10_000 }, () => {
  test('defaults; whole numbers; 0 or off (any case) turns the limit off; an exempt list of addresses and networks', () => {
    const d = requestRateFromEnv({});
    assert.equal(d.perSecond, DEFAULT_REQUEST_RATE.perSecond);
    assert.equal(d.burst, DEFAULT_REQUEST_RATE.burst);
    assert.equal(d.exempt.size, 0);
    assert.equal(requestRateOff(d), false);
    const set = requestRateFromEnv({ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: ' 250 ', FERRY_SIP_REQUEST_BURST: '5000', FERRY_SIP_RATE_EXEMPT: '192.0.2.10, 198.51.100.0/24 2001:db8:1::/48' });
    assert.deepEqual([set.perSecond, set.burst, set.exempt.size], [250, 5000, 3]);
    assert.equal(set.exempt.has('198.51.100.77'), true);
    assert.equal(set.exempt.has('2001:db8:1:ffff::1'), true);
    assert.equal(set.exempt.has('192.0.2.11'), false);
    for (const off of [{ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: 'off' }, { FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '0' }, { FERRY_SIP_REQUEST_BURST: 'OFF' }, { FERRY_SIP_REQUEST_BURST: '0' }]) {
      assert.equal(requestRateOff(requestRateFromEnv(off)), true, JSON.stringify(off));
    }
  });

  test('a bad value is refused with a message naming the variable (and ferry sip\'s settings refuse it too)', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '-1' }, /FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND="-1" is not a whole number/],
      [{ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '1.5' }, /FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND="1\.5"/],
      [{ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '1e3' }, /FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND="1e3"/],
      [{ FERRY_SIP_REQUEST_BURST: 'lots' }, /FERRY_SIP_REQUEST_BURST="lots" is not a whole number/],
      [{ FERRY_SIP_REQUEST_BURST: 'none' }, /FERRY_SIP_REQUEST_BURST="none"/],
      [{ FERRY_SIP_RATE_EXEMPT: '10.0.0.1/24' }, /FERRY_SIP_RATE_EXEMPT="10\.0\.0\.1\/24": "10\.0\.0\.1\/24" has bits set past its \/24 prefix \(the network is 10\.0\.0\.0\/24\)/],
      [{ FERRY_SIP_RATE_EXEMPT: '10.0.0.0/33' }, /FERRY_SIP_RATE_EXEMPT=.*no valid prefix length \(0\.\.32 for IPv4\)/],
      [{ FERRY_SIP_RATE_EXEMPT: '192.0.2.1, sbc.example.com' }, /FERRY_SIP_RATE_EXEMPT=.*"sbc\.example\.com" is not an IP address or network/],
      [{ FERRY_SIP_RATE_EXEMPT: '2001:db8::1/32' }, /FERRY_SIP_RATE_EXEMPT=.*bits set past its \/32 prefix \(the network is 2001:db8::\/32\)/],
      [{ FERRY_SIP_RATE_EXEMPT: 'fe80::1%eth0' }, /FERRY_SIP_RATE_EXEMPT=.*not an IP address or network/],
    ];
    for (const [env, message] of bad) {
      assert.throws(() => requestRateFromEnv(env), message, JSON.stringify(env));
      assert.throws(() => loadSipSettings(env), message, `loadSipSettings ${JSON.stringify(env)}`);
    }
    assert.equal(loadSipSettings({ FERRY_SIP_REQUEST_BURST: '50' }).engine.requestRate?.burst, 50);
  });
});

describe('the exempt list', { timeout: 10_000 }, () => {
  test('matches addresses and networks in every spelling a listener reports; nothing else', () => {
    const l = AddressList.parse('127.0.0.3,10.0.0.0/8 2001:db8::/32 ::1 0:0:0:0:0:0:a00:1/128');
    for (const a of ['127.0.0.3', '::ffff:127.0.0.3', '10.200.3.4', '::ffff:10.1.1.1', '2001:db8:ffff::9', '2001:DB8::1', '[2001:db8::1]', '::1', '::a00:1'])
      assert.equal(l.has(a), true, a);
    for (const a of ['127.0.0.1', '11.0.0.1', '2001:db9::1', '::2', 'localhost', ''])
      assert.equal(l.has(a), false, a);
    assert.equal(AddressList.parse('').has('127.0.0.1'), false);
    assert.equal(AddressList.parse('0.0.0.0/0').has('203.0.113.9'), true);
  });
});

describe('the guard', { timeout: 10_000 }, () => {
  const limits = (over: Partial<RequestRateLimits> = {}): RequestRateLimits => ({ perSecond: 2, burst: 3, exempt: AddressList.parse('192.0.2.50'), ...over });
  const invite = request('INVITE', 'To: <sip:service@127.0.0.1>');
  const bye = request('BYE', 'To: <sip:service@127.0.0.1>;tag=t9');

  test('a source gets its burst, then its rate; in-dialog requests always pass; an IPv6 /64 is one source; exempt sources are never counted', () => {
    const clock = new FakeClock();
    const { log, lines } = captureLog();
    const g = new RequestRateGuard(limits(), sourceKeyer(64), log, clock);
    const take = (address: string, r = invite): boolean => g.admit(r.method, r.headers, flow(address));
    assert.deepEqual([1, 2, 3, 4, 5].map(() => take('203.0.113.1')), [true, true, true, false, false]);
    assert.equal(take('203.0.113.1', bye), true, 'a BYE in a dialog from the same source');
    assert.equal(take('203.0.113.2'), true, 'another IPv4 source');
    // three addresses of one /64 share one bucket; another /64 has its own
    assert.deepEqual(['2001:db8:0:1::1', '2001:db8:0:1::2', '2001:db8:0:1:ffff::3', '2001:db8:0:1::4'].map((a) => take(a)), [true, true, true, false]);
    assert.equal(take('2001:db8:0:2::1'), true);
    assert.deepEqual(Array.from({ length: 20 }, () => take('192.0.2.50')).every(Boolean), true, 'exempt');
    assert.deepEqual(g.stats(), { dropped: 3, sources: 4, perSecond: 2, burst: 3 });
    clock.advance(500);
    assert.deepEqual([take('203.0.113.1'), take('203.0.113.1')], [true, false], 'half a second: one token');
    assert.equal(g.stats().dropped, 4);
    // one line per source per 10 s, naming the address and the key; the next one reports what it left out
    const drops = lines.filter((l) => /dropped: over the per-source rate/.test(String(l.message)));
    assert.deepEqual(drops.map((l) => [l.source, l.sourceKey, l.suppressed]), [['203.0.113.1', '203.0.113.1', 0], ['2001:db8:0:1::4', '2001:db8:0:1::/64', 0]]);
    assert.match(String(drops[1]!.message), /from 2001:db8:0:1::4 \(counted as 2001:db8:0:1::\/64\)/);
    clock.advance(10_000);
    for (let i = 0; i < 4; i++) take('203.0.113.1');
    const next = lines.filter((l) => /dropped: over the per-source rate/.test(String(l.message)) && l.source === '203.0.113.1');
    assert.deepEqual(next.map((l) => l.suppressed), [0, 2], "the two drops within the first 10 s after the logged one");
  });

  test('a retransmission of a request whose transaction exists never counts, even over the rate', () => {
    const { log } = captureLog();
    const g = new RequestRateGuard(limits(), sourceKeyer(64), log, new FakeClock());
    for (let i = 0; i < 3; i++) assert.equal(g.admit(invite.method, invite.headers, flow('203.0.113.1')), true);
    assert.equal(g.admit(invite.method, invite.headers, flow('203.0.113.1')), false, 'over the rate');
    assert.equal(g.admit(invite.method, invite.headers, flow('203.0.113.1'), () => true), true, 'its retransmission');
    assert.equal(g.stats().dropped, 1);
  });

  test('0 turns it off: nothing is counted or dropped', () => {
    const { log } = captureLog();
    const g = new RequestRateGuard(limits({ perSecond: 0 }), sourceKeyer(64), log, new FakeClock());
    assert.ok(Array.from({ length: 100 }, () => g.admit(invite.method, invite.headers, flow('203.0.113.1'))).every(Boolean));
    assert.deepEqual(g.stats(), { dropped: 0, sources: 0, perSecond: 0, burst: 0 });
  });

  test('memory: 10 000 sources flooding through a guard bounded at 100 keep at most 100 buckets', () => {
    const { log } = captureLog();
    const g = new RequestRateGuard(limits({ maxSources: 100 }), sourceKeyer(64), log, new FakeClock());
    for (let i = 0; i < 10_000; i++) {
      const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      for (let k = 0; k < 5; k++) g.admit(invite.method, invite.headers, flow(a));
      assert.ok(g.stats().sources <= 100);
    }
    assert.equal(g.stats().sources, 100);
    assert.equal(g.stats().dropped, 10_000 * 2);
  });
});
