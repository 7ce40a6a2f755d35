/**
 * ferry sip's RFC 3263 target resolution against a real DNS server (dnsmasq on loopback): which records
 * are asked for, in which order the targets come, what is cached and for how long (the TTL counted on a
 * fake clock), and the bounds (lookups per resolution, a server that does not answer).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { FakeClock } from '../../src/common/clock';
import { CachedDns } from '../../src/sip/dns/cached-dns';
import { NoTargetError, type SipTarget, SipTargetResolver, type TargetProtocol } from '../../src/sip/dns/sip-targets';
import { Dnsmasq } from '../helpers/dnsmasq';
import { rng } from '../helpers/seeded-random';
import { freePort } from '../helpers/free-port';

const D = `t${process.pid}.test`;

describe('ferry sip: RFC 3263 targets from a real DNS server (dnsmasq)', { timeout: 60_000 }, () => {
  let dns: Dnsmasq;
  before(async () => {
    dns = await Dnsmasq.start({
      localDomains: ['test'],
      localTtl: 60,
      records: [
        // NAPTR: TCP preferred over UDP; an ENUM record and a service ferry sip lacks are skipped
        `--naptr-record=n.${D},10,50,U,E2U+sip,!^.*$!sip:x@y!,`,
        `--naptr-record=n.${D},20,10,S,SIP+D2U,,_sip._udp.n.${D}`,
        `--naptr-record=n.${D},10,10,S,SIP+D2T,,_sip._tcp.n.${D}`,
        `--naptr-record=n.${D},5,10,S,SIPS+D2T,,_sips._tcp.n.${D}`,
        `--srv-host=_sip._tcp.n.${D},tcp1.${D},5070,10,0`,
        `--srv-host=_sip._udp.n.${D},udp1.${D},5080,10,0`,
        `--srv-host=_sips._tcp.n.${D},tls1.${D},5090,10,0`,
        // no NAPTR: SRV for UDP and TCP, two priorities for UDP
        `--srv-host=_sip._udp.s.${D},b.${D},6002,20,0`,
        `--srv-host=_sip._udp.s.${D},a.${D},6001,10,0`,
        `--srv-host=_sip._tcp.s.${D},a.${D},6003,10,0`,
        // addresses
        `--host-record=tcp1.${D},127.0.0.11`, `--host-record=udp1.${D},127.0.0.12`, `--host-record=tls1.${D},127.0.0.13`,
        `--host-record=a.${D},127.0.0.2`, `--host-record=b.${D},127.0.0.3`,
        `--host-record=dual.${D},127.0.0.4,::1`, `--host-record=v6.${D},::1`,
        `--host-record=s.${D},127.0.0.99`,
        // many NAPTR records each needing lookups: the per-resolution bound
        ...Array.from({ length: 12 }, (_, i) => `--naptr-record=many.${D},${i},0,S,SIP+D2U,,_sip._udp.m${i}.${D}`),
      ],
    });
  });
  after(async () => { await dns?.stop(); });

  function resolver(options: { tls?: boolean; udpV6?: boolean; clock?: FakeClock; maxLookups?: number; servers?: { address: string; port: number }[]; timeoutMs?: number;
    hosts?: Record<string, string[]> } = {}) {
    const clock = options.clock ?? new FakeClock();
    const cached = new CachedDns({ servers: options.servers ?? [{ address: '127.0.0.1', port: dns.port }], timeoutMs: options.timeoutMs ?? 1000, cacheEntries: 100 }, () => clock.now());
    const transports = new Set<TargetProtocol>(options.tls ? ['udp', 'tcp', 'tls'] : ['udp', 'tcp']);
    const r = new SipTargetResolver(cached.lookup, {
      transports, maxTargets: 5, maxLookups: options.maxLookups ?? 24, random: rng(3),
      families: (p) => (p === 'udp' ? { v4: true, v6: options.udpV6 ?? false } : { v4: true, v6: true }),
      ...(options.hosts ? { hosts: async (name: string) => options.hosts![name] ?? [] } : {}),
    });
    return { r, cached, clock };
  }
  const show = (ts: SipTarget[]) => ts.map((t) => `${t.protocol}/${t.address}:${t.port}`);

  test('NAPTR: supported services by order then preference (TLS only when ferry sip has it), each one\'s SRV, its addresses', async () => {
    assert.deepEqual(show(await resolver().r.resolve({ host: `n.${D}`, secure: false })), ['tcp/127.0.0.11:5070', 'udp/127.0.0.12:5080']);
    assert.deepEqual(show(await resolver({ tls: true }).r.resolve({ host: `n.${D}`, secure: false })), ['tls/127.0.0.13:5090', 'tcp/127.0.0.11:5070', 'udp/127.0.0.12:5080']);
    assert.deepEqual(show(await resolver({ tls: true }).r.resolve({ host: `n.${D}`, secure: true })), ['tls/127.0.0.13:5090'], 'sips: TLS only');
  });

  test('no NAPTR: SRV of _sip._udp then _sip._tcp, by priority; a transport parameter asks only its SRV; an explicit port only A/AAAA', async () => {
    const { r } = resolver();
    assert.deepEqual(show(await r.resolve({ host: `s.${D}`, secure: false })), ['udp/127.0.0.2:6001', 'udp/127.0.0.3:6002', 'tcp/127.0.0.2:6003']);
    assert.deepEqual(show(await r.resolve({ host: `s.${D}`, secure: false, transport: 'tcp' })), ['tcp/127.0.0.2:6003']);
    assert.deepEqual(show(await r.resolve({ host: `s.${D}`, secure: false, port: 7000 })), ['udp/127.0.0.99:7000']);
    assert.deepEqual(show(await r.resolve({ host: `s.${D}`, secure: false, port: 7000, transport: 'tcp' })), ['tcp/127.0.0.99:7000']);
  });

  test('no SRV: A then AAAA with the default port; UDP only to the family of its socket', async () => {
    assert.deepEqual(show(await resolver().r.resolve({ host: `dual.${D}`, secure: false })), ['udp/127.0.0.4:5060']);
    assert.deepEqual(show(await resolver({ udpV6: true }).r.resolve({ host: `dual.${D}`, secure: false })), ['udp/127.0.0.4:5060', 'udp/::1:5060']);
    assert.deepEqual(show(await resolver().r.resolve({ host: `v6.${D}`, secure: false, transport: 'tcp' })), ['tcp/::1:5060'], 'AAAA only, over TCP');
    await assert.rejects(resolver().r.resolve({ host: `v6.${D}`, secure: false }), NoTargetError, 'an IPv6-only name is no UDP target for an IPv4 socket');
    assert.deepEqual(show(await resolver({ tls: true }).r.resolve({ host: `dual.${D}`, secure: true })), ['tls/127.0.0.4:5061', 'tls/::1:5061']);
  });

  test('IP addresses and localhost are not looked up', async () => {
    const { r, cached } = resolver();
    assert.deepEqual(show(await r.resolve({ host: '[::1]', secure: false, transport: 'tcp' })), ['tcp/::1:5060']);
    assert.deepEqual(show(await r.resolve({ host: 'localhost', secure: false, port: 5070 })), ['udp/127.0.0.1:5070']);
    assert.equal(cached.queries, 0);
  });

  test('a name the hosts file lists is those addresses, without DNS (as getaddrinfo finds it first); other names still go to DNS', async () => {
    const { r, cached } = resolver({ hosts: { [`s.${D}`]: ['192.0.2.5', '2001:db8::5'], 'sbc.lan': ['::1'] } });
    assert.deepEqual(show(await r.resolve({ host: `s.${D}`, secure: false })), ['udp/192.0.2.5:5060']);
    assert.deepEqual(show(await r.resolve({ host: 'sbc.lan', secure: false, port: 5070, transport: 'tcp' })), ['tcp/::1:5070']);
    assert.equal(cached.queries, 0, 'no DNS query for listed names');
    assert.deepEqual(show(await r.resolve({ host: `a.${D}`, secure: false, port: 5070 })), ['udp/127.0.0.2:5070'], 'positive control: an unlisted name goes to DNS');
    assert.ok(cached.queries > 0);
  });

  test('a name with no records: NoTargetError "does not resolve"', async () => {
    await assert.rejects(resolver().r.resolve({ host: `none.${D}`, secure: false }), (err: Error) => err instanceof NoTargetError && /none\..* does not resolve/.test(err.message));
  });

  test('answers are cached for their TTL (60 s here) on the engine\'s clock, then asked again', async () => {
    const { r, cached, clock } = resolver();
    await r.resolve({ host: `s.${D}`, secure: false });
    const first = cached.queries;
    assert.equal(first, 6, 'NAPTR, SRV of UDP and TCP, A of a and b, AAAA of a (for TCP)');
    clock.advance(59_000);
    await r.resolve({ host: `s.${D}`, secure: false });
    // the two "none" answers (NAPTR, AAAA) come without an SOA from dnsmasq: not cached (RFC 2308 §5), asked each time
    assert.equal(cached.queries, first + 2, 'within the TTL only the uncacheable negative answers are asked again');
    clock.advance(1000);
    await r.resolve({ host: `s.${D}`, secure: false });
    assert.equal(cached.queries, first * 2 + 2, 'after the TTL everything is asked again');
  });

  test('at most maxLookups DNS lookups per resolution; what was found so far is used', async () => {
    const { r, cached } = resolver({ maxLookups: 6 });
    await assert.rejects(r.resolve({ host: `many.${D}`, secure: false }), /more than 6 DNS lookups/);
    assert.ok(cached.queries <= 6, `${cached.queries} queries`);
  });

  test('no DNS server on the port (ICMP port unreachable): the try ends at once, not after the timeout', async () => {
    const { r } = resolver({ servers: [{ address: '127.0.0.1', port: await freePort({ protocols: ['udp'] }) }], timeoutMs: 5000 });
    const t0 = Date.now();
    await assert.rejects(r.resolve({ host: `s.${D}`, secure: false, port: 5060 }), /does not resolve \(DNS server 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 2000, `gave up after ${Date.now() - t0} ms (the timeout is 5000 ms)`);
  });

  test('a DNS server that never answers: each try waits the timeout, then "does not resolve" naming it; that failure is kept 30 s', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    let asked = 0;
    silent.on('message', () => { asked++; });
    try {
      const { r, clock } = resolver({ servers: [{ address: '127.0.0.1', port: silent.address().port }], timeoutMs: 150 });
      const t0 = Date.now();
      await assert.rejects(r.resolve({ host: `s.${D}`, secure: false, port: 5060 }), /does not resolve \(no answer from 127\.0\.0\.1:\d+ within 150 ms/);
      const ms = Date.now() - t0;
      assert.ok(ms >= 2 * 150 - 20 && ms < 2000, `gave up after ${ms} ms (2 tries of 150 ms)`);
      assert.equal(asked, 2, 'two tries of the one A query (AAAA is not asked for UDP over IPv4)');
      const t1 = Date.now();
      await assert.rejects(r.resolve({ host: `s.${D}`, secure: false, port: 5060 }), /no answer from/);
      assert.ok(Date.now() - t1 < 100 && asked === 2, 'a second resolution within 30 s fails at once, nothing asked');
      clock.advance(30_000);
      await assert.rejects(r.resolve({ host: `s.${D}`, secure: false, port: 5060 }), /no answer from/);
      assert.equal(asked, 4, '30 s later the server is asked again');
    } finally {
      silent.close();
    }
  });
});
