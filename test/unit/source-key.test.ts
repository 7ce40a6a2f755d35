import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import { FakeClock } from '../../src/common/clock';
import {
  DEFAULT_SOURCE_IPV6_PREFIX, formatIpv6, parseIpv6, sourceIpv6PrefixFromEnv, sourceKey, sourceKeyer,
} from '../../src/common/source-key';
import { SourceRateLimiter } from '../../src/common/source-rate-limit';
import { AuthCounters } from '../../src/gateway/registrar/auth-counters';
import { DigestAuth } from '../../src/gateway/registrar/digest-auth';
import { type AuthLimits, type AuthRequest, SipAuthenticator } from '../../src/gateway/registrar/sip-authenticator';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { UnroutedRequestHold } from '../../src/sip/engine/unrouted-request-hold';
import type { HeldRequest } from '../../src/sip/engine/orphan-dialogs';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { Flow } from '../../src/sip/transport/flow';
import { ConnectionGuard } from '../../src/sip/transport/connection-guard';
import { DEFAULT_CONNECTION_LIMITS } from '../../src/sip/transport/connection-limits';

/**
 * The key per-source caps count by (src/common/source-key.ts): IPv4 by address, IPv6 by its /64 (or the
 * configured prefix) in one spelling whatever the spelling of the address; the token bucket of the
 * handshake rate; and the caps that use the key (authentication lockout, unrouted-request hold) counting
 * one /64 as one source while another /64 is a source of its own.
 */

/** a deterministic pseudo-random sequence (the fuzz loop is reproducible) */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Another spelling of the eight groups: leading zeros, case, a `::` over any run of zero groups, a dotted tail, a zone id, brackets. */
function spell(groups: number[], rnd: () => number): string {
  const int = (n: number): number => Math.floor(rnd() * n);
  const hex = (g: number): string => {
    let h = g.toString(16).padStart(int(2) === 0 ? 4 : 1, '0');
    if (int(2) === 0) h = h.toUpperCase();
    return h;
  };
  const dotted = int(3) === 0;
  const parts = dotted ? groups.slice(0, 6).map(hex) : groups.map(hex);
  const tail = dotted ? `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}` : '';
  // candidate zero runs (in group positions before the dotted tail), one of them compressed, or none
  const runs: [number, number][] = [];
  for (let i = 0; i < parts.length; i++) {
    if (groups[i] !== 0) continue;
    for (let j = i; j < parts.length && groups[j] === 0; j++) runs.push([i, j + 1]);
  }
  let text: string;
  if (runs.length > 0 && int(4) !== 0) {
    const [a, b] = runs[int(runs.length)]!;
    const left = parts.slice(0, a).join(':');
    const right = [...parts.slice(b), ...(tail ? [tail] : [])].join(':');
    text = `${left}::${right}`;
  } else text = [...parts, ...(tail ? [tail] : [])].join(':');
  if (int(4) === 0) text += `%${['eth0', 'lo', '3', 'wlan0'][int(4)]}`;
  if (int(5) === 0) text = `[${text}]`;
  return text;
}

/** the key computed another way: BigInt masking and the WHATWG URL parser's canonical IPv6 text */
function expectedKey(groups: number[], prefix: number): string {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  if ((groups[0]! & 0xffc0) === 0xfe80) prefix = 128;
  const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  const masked = value & mask;
  const hex = masked.toString(16).padStart(32, '0').match(/.{4}/g)!.join(':');
  const canonical = new URL(`http://[${hex}]/`).hostname.slice(1, -1);
  return prefix === 128 ? canonical : `${canonical}/${prefix}`;
}

function randomGroups(rnd: () => number): number[] {
  const int = (n: number): number => Math.floor(rnd() * n);
  const kind = int(6);
  const g = Array.from({ length: 8 }, () => (int(3) === 0 ? 0 : int(0x10000)));
  if (kind === 0) return [0, 0, 0, 0, 0, 0xffff, int(0x10000), int(0x10000)]; // IPv4-mapped
  if (kind === 1) return [0xfe80, 0, 0, 0, ...g.slice(4)]; // link-local
  if (kind === 2) return g.map((x, i) => (i > 0 && i < 7 && int(2) === 0 ? 0 : x)); // many zeros
  return g;
}

describe('source key: one key per IPv4 address and per IPv6 prefix', { timeout: 30_000 }, () => {
  test('every spelling of one IPv6 address gives the /64 in RFC 5952 form; addresses of one /64 share it, the next /64 does not', () => {
    const spellings = [
      '2001:db8:0:1::a', '2001:DB8:0:1::A', '2001:0db8:0000:0001:0000:0000:0000:000a', '2001:db8::1:0:0:0:a',
      '2001:db8:0:1:0:0:0:a', '[2001:db8:0:1::a]', '2001:db8:0:1::a%eth0', '2001:db8:0:1::0.0.0.10', '2001:Db8:0:1:0::a%3',
    ];
    for (const s of spellings) assert.equal(sourceKey(s), '2001:db8:0:1::/64', s);
    for (const s of ['2001:db8:0:1::b', '2001:db8:0:1:ffff:ffff:ffff:ffff', '2001:db8:0:1:1234::9']) assert.equal(sourceKey(s), '2001:db8:0:1::/64', s);
    assert.equal(sourceKey('2001:db8:0:2::a'), '2001:db8:0:2::/64');
    assert.equal(sourceKey('2001:db8:1:1::a'), '2001:db8:1:1::/64');
    assert.equal(sourceKey('2001:db8:0:1::a', 128), '2001:db8:0:1::a', 'prefix 128: by address, canonical');
    assert.equal(sourceKey('2001:0DB8:0:1::A', 128), '2001:db8:0:1::a');
    assert.equal(sourceKey('2001:db8:1234:5678:9abc::1', 48), '2001:db8:1234::/48');
    assert.equal(sourceKey('2001:db8:1234:5678:9abc::1', 56), '2001:db8:1234:5600::/56');
    assert.equal(sourceKey('2001:db8:1234:56ff::1', 60), '2001:db8:1234:56f0::/60');
  });

  test('IPv4 and IPv4-mapped IPv6 (dotted or hex) are the IPv4 address; ::1, link-local and non-addresses as documented', () => {
    for (const s of ['192.0.2.7', '::ffff:192.0.2.7', '::FFFF:192.0.2.7', '::ffff:c000:207', '0:0:0:0:0:ffff:c000:0207', '[::ffff:192.0.2.7]']) {
      assert.equal(sourceKey(s), '192.0.2.7', s);
    }
    assert.equal(sourceKey('127.0.0.1'), '127.0.0.1');
    assert.equal(sourceKey('::1'), '::/64', 'loopback: the ::/64 (no other host lives there)');
    assert.equal(sourceKey('::1', 128), '::1');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80::1', 'link-local: by address, without the zone');
    assert.equal(sourceKey('FE80::0001%wlan0'), 'fe80::1');
    assert.notEqual(sourceKey('fe80::1'), sourceKey('fe80::2'));
    for (const s of ['', '?', 'example.com', '2001:db8::g', '1:2:3:4:5:6:7:8:9', '2001:db8:::1', '1.2.3.4.5']) assert.equal(sourceKey(s), s, JSON.stringify(s));
    assert.equal(parseIpv6('1::2::3'), undefined);
  });

  test('fuzz: 20 000 random addresses in random spellings give the key computed by BigInt masking and the URL parser, for prefixes 48..128', () => {
    const rnd = prng(20261205);
    const prefixes = [48, 56, 60, 63, 64, 65, 96, 112, 127, 128];
    for (let i = 0; i < 20_000; i++) {
      const groups = randomGroups(rnd);
      const prefix = prefixes[i % prefixes.length]!;
      const a = spell(groups, rnd);
      const b = spell(groups, rnd);
      const want = expectedKey(groups, prefix);
      assert.deepEqual(parseIpv6(a), groups, `parse ${a}`);
      assert.equal(sourceKey(a, prefix), want, `${a} /${prefix}`);
      assert.equal(sourceKey(b, prefix), want, `${b} /${prefix} (another spelling)`);
      assert.equal(formatIpv6(groups), new URL(`http://[${a.replace(/^\[|\]$/g, '').replace(/%.*$/, '')}]/`).hostname.slice(1, -1), `format ${a}`);
    }
  });

  test('FERRY_SOURCE_IPV6_PREFIX: default 64, 48..128 accepted, anything else refused with the variable named', () => {
    assert.equal(sourceIpv6PrefixFromEnv({}), DEFAULT_SOURCE_IPV6_PREFIX);
    assert.equal(sourceIpv6PrefixFromEnv({ FERRY_SOURCE_IPV6_PREFIX: '48' }), 48);
    assert.equal(sourceIpv6PrefixFromEnv({ FERRY_SOURCE_IPV6_PREFIX: '128' }), 128);
    for (const bad of ['47', '129', '64.5', 'x', '-64']) {
      assert.throws(() => sourceIpv6PrefixFromEnv({ FERRY_SOURCE_IPV6_PREFIX: bad }), /FERRY_SOURCE_IPV6_PREFIX.*use 48\.\.128/, bad);
    }
    assert.throws(() => sourceKeyer(32), /use 48\.\.128/);
    assert.equal(sourceKeyer(56)('2001:db8:1:2ff::1'), '2001:db8:1:200::/56');
  });
});

describe('SourceRateLimiter: a token bucket per source, memory bounded', { timeout: 10_000 }, () => {
  test('a burst, then the rate; another source has its own bucket; a refilled bucket is forgotten', () => {
    const clock = new FakeClock();
    const r = new SourceRateLimiter({ perSecond: 10, burst: 4 }, () => clock.now());
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => r.take('a')), [true, true, true, true, false, false]);
    assert.equal(r.take('b'), true, 'another source is not held back by the first');
    clock.advance(99);
    assert.equal(r.take('a'), false, '99 ms at 10/s: not one token yet');
    clock.advance(1);
    assert.equal(r.take('a'), true, '100 ms at 10/s: one token');
    assert.equal(r.take('a'), false);
    clock.advance(10_000);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => r.take('a')), [true, true, true, true, false], 'refilled to the burst, no more');
    clock.advance(10_000);
    r.take('c'); // retires the refilled buckets of a and b
    assert.equal(r.tracked, 1, 'refilled buckets are dropped');
  });

  test('at most maxSources buckets: 100 000 sources in a loop leave 1000; the newest source still has its own', () => {
    const clock = new FakeClock();
    const r = new SourceRateLimiter({ perSecond: 1, burst: 1 }, () => clock.now(), 1000);
    for (let i = 0; i < 100_000; i++) assert.equal(r.take(`s${i}`), true);
    assert.equal(r.tracked, 1000);
    assert.equal(r.take('s99999'), false, 'the newest bucket is kept (empty)');
    assert.throws(() => new SourceRateLimiter({ perSecond: 0, burst: 1 }, () => 0), /perSecond > 0/);
  });
});

describe('caps that count by source key', { timeout: 20_000 }, () => {
  const LIMITS: AuthLimits = { nonceLifetimeMs: 30_000, maxFailuresPerSource: 3, maxFailuresPerUser: 1000, failureWindowMs: 60_000, lockoutMs: 120_000, backoffBaseMs: 0 };

  test('authentication lockout: 3 wrong passwords from 3 addresses of one /64 lock the /64 out; an address of another /64 is still challenged', async () => {
    const clock = new FakeClock();
    const digest = new DigestAuth('ferry.local', Buffer.alloc(32, 1), LIMITS.nonceLifetimeMs, () => clock.now());
    const auth = new SipAuthenticator(digest, new MemoryStateStore(clock), LIMITS, new AuthCounters(), winston.createLogger({ silent: true }), clock);
    const attempt = async (source: string): Promise<number> => {
      const nonce = digest.makeNonce(source);
      const header = `Digest username="alice", realm="ferry.local", nonce="${nonce}", uri="sip:ferry.local", response="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="c0ffee"`;
      const req: AuthRequest = { method: 'REGISTER', uri: 'sip:ferry.local', header, source, sourcePort: 5060, transport: 'tcp' };
      const o = await auth.authenticate(req, (u) => (u === 'alice' ? { password: 'alice-pw', who: u } : undefined), 401);
      return o.ok ? 200 : o.status;
    };
    assert.equal(await attempt('2001:db8:0:1::a'), 401);
    assert.equal(await attempt('2001:db8:0:1::b'), 401);
    assert.equal(await attempt('2001:DB8:0:1:0:0:0:C'), 403, 'the third failure of the /64 locks it out');
    assert.equal(await attempt('2001:db8:0:1::dead'), 403, 'a fresh address of the /64 is locked out too');
    assert.equal(await attempt('2001:db8:0:2::a'), 401, 'another /64 is challenged, not locked out');
    assert.equal(await attempt('192.0.2.1'), 401);
  });

  test('SIP connection guard: the per-source cap and the handshake bucket count a /64 once; a freed slot is the /64\'s again; ::ffff:a.b.c.d is a.b.c.d', () => {
    const clock = new FakeClock();
    const guard = new ConnectionGuard({ ...DEFAULT_CONNECTION_LIMITS, maxPerSource: 2, tlsHandshakesPerSourcePerSecond: 1, tlsHandshakeBurst: 3, sourceIpv6Prefix: 64 },
      winston.createLogger({ silent: true }), () => false, clock);
    const admit = (address: string, protocol = 'tcp') => guard.admit({ address, port: 5060, protocol }, () => undefined);
    const a = admit('2001:db8:0:1::a');
    const b = admit('2001:DB8:0:1::B');
    assert.ok(a && b);
    assert.equal(admit('2001:db8:0:1:ffff::1'), undefined, 'a third address of the /64 is over the cap');
    assert.ok(admit('2001:db8:0:2::1'), 'another /64 is admitted');
    assert.equal(a.sourceKey, '2001:db8:0:1::/64');
    assert.equal(a.source, '2001:db8:0:1::a');
    b.closed();
    assert.ok(admit('2001:db8:0:1::c'), 'the freed slot is taken by another address of the /64');
    const v4a = admit('::ffff:192.0.2.1');
    const v4b = admit('192.0.2.1');
    assert.ok(v4a && v4b);
    assert.equal(admit('::ffff:c000:201'), undefined, 'IPv4-mapped spellings count as the IPv4 address');
    for (const w of [v4a, v4b]) w.closed();
    assert.deepEqual([0x1a, 0x2b7, 0xfe01, 0x9].map((n) => { const w = admit(`2001:db8:0:3:${n.toString(16)}::${((n * 7) & 0xffff).toString(16)}`, 'tls'); w?.closed(); return w !== undefined; }),
      [true, true, true, false], 'TLS from four addresses of one /64 share one handshake bucket');
    assert.equal(guard.stats().refused['handshake-rate'], 1);
    assert.equal(guard.stats().refused['per-source-cap'], 2);
  });

  test('unrouted-request hold: one /64 holds at most maxPerSource requests; another /64 is still held', () => {
    const clock = new FakeClock();
    const hold = new UnroutedRequestHold(clock, { holdMs: 5000, maxRequests: 100, maxBytes: 1_000_000, maxPerSource: 2 }, () => undefined);
    const request = parseSipMessage(Buffer.from([
      'INVITE sip:service@ferry.local SIP/2.0', 'Via: SIP/2.0/TCP [2001:db8::a];branch=z9hG4bK1', 'From: <sip:a@x>;tag=1', 'To: <sip:service@ferry.local>',
      'Call-ID: c1', 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''].join('\r\n'))) as SipRequest;
    const txn = { finalSent: false, terminated: false, abort: () => undefined } as unknown as HeldRequest['txn'];
    const held = (address: string): HeldRequest => ({ request, key: address, txn, flow: { remoteAddress: address, closed: false } as unknown as Flow });
    assert.equal(hold.hold(held('2001:db8:0:1::a')), undefined);
    assert.equal(hold.hold(held('2001:db8:0:1::b')), undefined);
    assert.equal(hold.hold(held('2001:db8:0:1::c')), 'source', 'a third address of the /64 is over the per-source bound');
    assert.equal(hold.hold(held('2001:db8:0:2::a')), undefined, 'another /64 is held');
    assert.equal(hold.size, 3);
    hold.expireAll();
  });
});
