/**
 * ferry sip's target resolution, the parts without a network: RFC 2782 SRV ordering (priorities, weighted
 * random within one), the DNS answer cache (TTL on the engine's clock, bounded size), the DNS wire
 * format, and the FERRY_SIP_DNS_* settings.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { orderSrv } from '../../src/sip/dns/srv-order';
import { DnsCache, MAX_CACHE_TTL } from '../../src/sip/dns/dns-cache';
import { decodeResponse, DnsFormatError, encodeQuery, type SrvData } from '../../src/sip/dns/dns-message';
import { dnsSettingsFromEnv, parseDnsServers } from '../../src/sip/dns/dns-settings';
import { parseHosts } from '../../src/sip/dns/hosts-file';
import { TargetFailover } from '../../src/sip/engine/target-failover';
import type { NextHops } from '../../src/sip/engine/next-hop-resolver';
import type { Flow } from '../../src/sip/transport/flow';
import { rng } from '../helpers/seeded-random';

const srv = (target: string, priority: number, weight: number, port = 5060): SrvData => ({ target, priority, weight, port });

describe('SRV order (RFC 2782)', { timeout: 10_000 }, () => {
  test('lower priority first, whatever the weights and the order received', () => {
    const random = rng(1);
    for (let i = 0; i < 200; i++) {
      const out = orderSrv([srv('c', 30, 100), srv('a', 10, 0), srv('b', 20, 1000), srv('a2', 10, 5)], random);
      assert.deepEqual(out.map((r) => r.priority), [10, 10, 20, 30]);
      assert.equal(out[3]!.target, 'c');
    }
  });

  test('within one priority, each record comes first in proportion to its weight', () => {
    const random = rng(42);
    const firsts = new Map<string, number>();
    const runs = 20_000;
    for (let i = 0; i < runs; i++) {
      const first = orderSrv([srv('light', 10, 10), srv('heavy', 10, 30), srv('backup', 20, 100)], random)[0]!.target;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    assert.equal(firsts.get('backup'), undefined, 'a higher priority number is never first');
    const heavy = firsts.get('heavy')! / runs;
    // the RFC's draw: a number 0..sum inclusive (41 values), the first record whose running sum reaches it:
    // light (running sum 10) for 0..10, heavy (40) for 11..40
    assert.ok(Math.abs(heavy - 30 / 41) < 0.015, `heavy first ${heavy}`);
    assert.ok(Math.abs(firsts.get('light')! / runs - 11 / 41) < 0.015, `light first ${firsts.get('light')! / runs}`);
  });

  test('zero-weight records have a small chance; every record appears exactly once', () => {
    const random = rng(7);
    let zeroFirst = 0;
    for (let i = 0; i < 5000; i++) {
      const out = orderSrv([srv('w', 1, 50), srv('z', 1, 0)], random);
      assert.deepEqual(out.map((r) => r.target).sort(), ['w', 'z']);
      if (out[0]!.target === 'z') zeroFirst++;
    }
    assert.ok(zeroFirst > 0 && zeroFirst < 5000 * 0.05, `zero weight first ${zeroFirst} times of 5000`);
  });

  test('a lone "." target: the service is not offered (no targets)', () => {
    assert.deepEqual(orderSrv([srv('.', 0, 0)]), []);
    assert.deepEqual(orderSrv([srv('', 0, 0)]), []);
    assert.deepEqual(orderSrv([]), []);
  });
});

describe('DNS cache', { timeout: 10_000 }, () => {
  const answer = (ttl: number) => ({ records: [{ name: 'a.test', ttl, type: 'A' as const, address: '192.0.2.1' }], ttl });

  test('an answer is kept for its TTL on the given clock, then gone', () => {
    const clock = new FakeClock();
    const cache = new DnsCache(10, () => clock.now());
    cache.set('A', 'a.test', answer(30));
    clock.advance(29_000);
    assert.equal(cache.get('A', 'A.TEST.')?.records.length, 1, 'names are case-insensitive, the root dot optional');
    assert.equal(cache.get('A', 'a.test')?.ttl, 1, 'the TTL left');
    assert.equal(cache.get('AAAA', 'a.test'), undefined, 'per type');
    clock.advance(1000);
    assert.equal(cache.get('A', 'a.test'), undefined, 'expired at its TTL');
    assert.equal(cache.size, 0);
  });

  test('TTL 0 is not kept; a huge TTL is capped at a day', () => {
    const clock = new FakeClock();
    const cache = new DnsCache(10, () => clock.now());
    cache.set('A', 'zero.test', answer(0));
    assert.equal(cache.get('A', 'zero.test'), undefined);
    cache.set('A', 'long.test', answer(2 ** 31 - 1));
    clock.advance(MAX_CACHE_TTL * 1000 - 1);
    assert.ok(cache.get('A', 'long.test'));
    clock.advance(1);
    assert.equal(cache.get('A', 'long.test'), undefined);
  });

  test('bounded: past maxEntries the least recently used goes', () => {
    const clock = new FakeClock();
    const cache = new DnsCache(3, () => clock.now());
    for (const n of ['1', '2', '3']) cache.set('A', `${n}.test`, answer(60));
    assert.ok(cache.get('A', '1.test'), 'touch 1: 2 is now the least recently used');
    cache.set('A', '4.test', answer(60));
    assert.equal(cache.size, 3);
    assert.equal(cache.get('A', '2.test'), undefined);
    for (const n of ['1', '3', '4']) assert.ok(cache.get('A', `${n}.test`), n);
  });
});

describe('DNS wire format', { timeout: 10_000 }, () => {
  /** a response to `query` with the given answer records (name compressed to the question) */
  function response(query: Buffer, rcode: number, answers: Buffer[]): Buffer {
    const head = Buffer.from(query.subarray(0, 12));
    head.writeUInt16BE(0x8180 | rcode, 2);
    head.writeUInt16BE(answers.length, 6);
    return Buffer.concat([head, query.subarray(12), ...answers]);
  }
  function rr(type: number, ttl: number, data: Buffer): Buffer {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(0xc00c, 0);
    b.writeUInt16BE(type, 2);
    b.writeUInt16BE(1, 4);
    b.writeUInt32BE(ttl, 6);
    b.writeUInt16BE(data.length, 10);
    return Buffer.concat([b, data]);
  }

  test('SRV, NAPTR and AAAA answers decode with their TTLs; compression pointers are followed', () => {
    const q = encodeQuery(0x1234, '_sip._udp.Example.test', 'SRV');
    const srvData = Buffer.concat([Buffer.from([0, 10, 0, 60, 0x13, 0xc4]), Buffer.from([2, 0x68, 0x31]), Buffer.from([0xc0, 0x16])]);
    const naptr = Buffer.concat([Buffer.from([0, 10, 0, 20, 1, 0x53, 7]), Buffer.from('SIP+D2T'), Buffer.from([0]), Buffer.from([4]), Buffer.from('_sip'), Buffer.from([0xc0, 0x11])]);
    const aaaa = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    const res = decodeResponse(response(q, 0, [rr(33, 300, srvData), rr(35, 60, naptr), rr(28, 5, aaaa)]));
    assert.equal(res.id, 0x1234);
    assert.deepEqual(res.question, { name: '_sip._udp.example.test', type: 33 });
    assert.deepEqual(res.answers[0], { name: '_sip._udp.example.test', ttl: 300, type: 'SRV', srv: { priority: 10, weight: 60, port: 5060, target: 'h1.example.test' } });
    assert.deepEqual(res.answers[1], { name: '_sip._udp.example.test', ttl: 60, type: 'NAPTR', naptr: { order: 10, preference: 20, flags: 'S', service: 'SIP+D2T', regexp: '', replacement: '_sip._udp.example.test' } });
    assert.deepEqual(res.answers[2], { name: '_sip._udp.example.test', ttl: 5, type: 'AAAA', address: '::1' });
  });

  test('a truncated or looping message is refused, never read past its end', () => {
    const q = encodeQuery(1, 'a.test', 'A');
    const ok = response(q, 0, [rr(1, 60, Buffer.from([192, 0, 2, 1]))]);
    assert.equal(decodeResponse(ok).answers.length, 1, 'positive control: the whole message decodes');
    for (let cut = 1; cut < ok.length; cut++) assert.throws(() => decodeResponse(ok.subarray(0, cut)), DnsFormatError, `cut at ${cut}`);
    const loop = Buffer.from(ok);
    loop.writeUInt16BE(0xc000 | (ok.length - 16), ok.length - 16); // the answer's name points at itself
    assert.throws(() => decodeResponse(loop), DnsFormatError);
  });

  test('fuzz: 20 000 mutated and random messages either decode into well-formed records or are refused as DnsFormatError; nothing else is thrown', () => {
    const q = encodeQuery(7, '_sip._udp.example.test', 'SRV');
    const srvData = Buffer.concat([Buffer.from([0, 10, 0, 60, 0x13, 0xc4]), Buffer.from([2, 0x68, 0x31]), Buffer.from([0xc0, 0x16])]);
    const naptr = Buffer.concat([Buffer.from([0, 10, 0, 20, 1, 0x53, 7]), Buffer.from('SIP+D2T'), Buffer.from([0]), Buffer.from([4]), Buffer.from('_sip'), Buffer.from([0xc0, 0x11])]);
    const seeds = [
      response(q, 0, [rr(33, 300, srvData), rr(35, 60, naptr), rr(28, 5, Buffer.alloc(16, 1)), rr(1, 9, Buffer.from([192, 0, 2, 1]))]),
      response(q, 3, []),
    ];
    const random = rng(20261206);
    const pick = (n: number): number => Math.floor(random() * n);
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      let msg: Buffer;
      if (i % 10 === 9) {
        msg = Buffer.alloc(pick(600));
        for (let j = 0; j < msg.length; j++) msg[j] = pick(256);
        if (msg.length > 3) msg[2]! |= 0x80; // a response, so the parser reads past the header
      } else {
        msg = Buffer.from(seeds[pick(seeds.length)]!);
        for (let k = 1 + pick(6); k > 0; k--) {
          const at = pick(msg.length);
          switch (pick(4)) {
            case 0: msg[at] = pick(256); break; // any byte
            case 1: msg[at] = 0xc0 | pick(4); break; // a compression pointer
            case 2: msg = msg.subarray(0, at); break; // truncated
            default: msg[at] = [0, 63, 64, 255][pick(4)]!; // label-length edges
          }
        }
      }
      try {
        const res = decodeResponse(msg);
        decoded++;
        for (const a of res.answers) {
          assert.equal(typeof a.name, 'string');
          assert.ok(Number.isInteger(a.ttl) && a.ttl >= 0 && a.ttl <= 0x7fffffff);
          if (a.type === 'SRV') assert.ok(a.srv.port >= 0 && a.srv.port <= 65535);
        }
      } catch (err) {
        if (!(err instanceof DnsFormatError)) throw new Error(`case ${i}: ${(err as Error).message} (${msg.toString('hex')})`);
        refused++;
      }
    }
    assert.ok(decoded > 100 && refused > 100, `both outcomes occur (decoded ${decoded}, refused ${refused})`);
  });
});

describe('FERRY_SIP_DNS_* settings', { timeout: 10_000 }, () => {
  test('defaults: the system resolver, 2 s per try, 1000 answers kept', () => {
    assert.deepEqual(dnsSettingsFromEnv({}), { timeoutMs: 2000, cacheEntries: 1000 });
    assert.deepEqual(dnsSettingsFromEnv({ FERRY_SIP_DNS_SERVERS: ' ' }), { timeoutMs: 2000, cacheEntries: 1000 });
  });

  test('servers: IPv4 and IPv6 addresses, each with an optional port, comma- or space-separated', () => {
    assert.deepEqual(parseDnsServers('10.0.0.2, 10.0.0.3:5353 [2001:db8::53]:5300 ::1'), [
      { address: '10.0.0.2', port: 53 }, { address: '10.0.0.3', port: 5353 }, { address: '2001:db8::53', port: 5300 }, { address: '::1', port: 53 },
    ]);
    assert.deepEqual(dnsSettingsFromEnv({ FERRY_SIP_DNS_SERVERS: '127.0.0.1:5353', FERRY_SIP_DNS_TIMEOUT_MS: '300', FERRY_SIP_DNS_CACHE_ENTRIES: '0' }),
      { servers: [{ address: '127.0.0.1', port: 5353 }], timeoutMs: 300, cacheEntries: 0 });
  });

  test('bad values name the variable', () => {
    for (const bad of ['dns.example', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:x', '[::1', '300.1.1.1', '10.0.0.1;53']) {
      assert.throws(() => dnsSettingsFromEnv({ FERRY_SIP_DNS_SERVERS: bad }), /FERRY_SIP_DNS_SERVERS=.* is not a DNS server/, bad);
    }
    assert.throws(() => dnsSettingsFromEnv({ FERRY_SIP_DNS_TIMEOUT_MS: '0' }), /FERRY_SIP_DNS_TIMEOUT_MS="0" is not a whole number of milliseconds of at least 1/);
    assert.throws(() => dnsSettingsFromEnv({ FERRY_SIP_DNS_TIMEOUT_MS: '1.5' }), /FERRY_SIP_DNS_TIMEOUT_MS/);
    assert.throws(() => dnsSettingsFromEnv({ FERRY_SIP_DNS_CACHE_ENTRIES: '-1' }), /FERRY_SIP_DNS_CACHE_ENTRIES="-1" is not a whole number of entries/);
  });
});

describe('hosts file', { timeout: 10_000 }, () => {
  test('address, name and aliases; comments, blank and bad lines skipped; names case-insensitive, in file order', () => {
    const hosts = parseHosts('# comment\n127.0.0.1\tlocalhost\n\n192.0.2.7 trunk.lan Trunk2 # the SBC\n2001:db8::7 trunk.lan\nnot-an-ip name\nfe80::1%eth0 linklocal\n');
    assert.deepEqual(hosts.get('trunk.lan'), ['192.0.2.7', '2001:db8::7']);
    assert.deepEqual(hosts.get('trunk2'), ['192.0.2.7']);
    assert.deepEqual(hosts.get('localhost'), ['127.0.0.1']);
    assert.equal(hosts.get('name'), undefined);
    assert.equal(hosts.get('linklocal'), undefined, 'a scoped address cannot be a SIP target here');
  });
});

describe('failover bounds of one request', { timeout: 10_000 }, () => {
  function hops(n: number): NextHops {
    const flows = Array.from({ length: n }, (_, i) => ({ id: `udp/127.0.0.1:${5060 + i}` }) as Flow);
    let i = 1;
    return { flow: flows[0]!, next: () => flows[i++], get left() { return Math.max(0, n - i); } };
  }

  test('each further target once, in order; nothing after the last', () => {
    const f = new TargetFailover(hops(3), 0, 1000);
    assert.equal(TargetFailover.worthKeeping(hops(3)), true);
    assert.equal(TargetFailover.worthKeeping(hops(1)), false, 'a single target needs no failover');
    assert.equal(f.next(10)?.id, 'udp/127.0.0.1:5061');
    assert.equal(f.next(20)?.id, 'udp/127.0.0.1:5062');
    assert.equal(f.tried, 3);
    assert.equal(f.next(30), undefined);
  });

  test('no further target once the window since the first sending is over', () => {
    const f = new TargetFailover(hops(3), 1000, 500);
    assert.equal(f.next(1499)?.id, 'udp/127.0.0.1:5061', 'positive control: inside the window');
    assert.equal(f.next(1500), undefined);
    assert.equal(f.tried, 2);
  });
});
