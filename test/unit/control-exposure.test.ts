import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectHost, isLoopbackHost } from '../../src/common/listen-address';
import { LogThrottle } from '../../src/common/log-throttle';
import { controlExposureProblem } from '../../src/sip/control/control-exposure';
import { exampleCredentialsWarning } from '../../src/cli/example-credentials';
import { publishedPasswords } from '../../src/gateway/registrar/published-passwords';
import { defaultSipConfigFile } from '../../src/gateway/config/gateway-config';
import { loadSipConfig } from '../../src/gateway/config/sip-config-loader';

describe('listen addresses by trust', { timeout: 10_000 }, () => {
  test('loopback: 127.0.0.0/8, ::1, localhost and IPv4-mapped loopback are this host only; wildcards and LAN addresses are not', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'pbx.example.org', '::ffff:10.0.0.1', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  });

  test('control exposure: the default secret is refused on any non-loopback control address, accepted on loopback; an own secret is accepted anywhere', () => {
    assert.match(controlExposureProblem('0.0.0.0', 'cymru') ?? '', /0\.0\.0\.0.*default secret 'cymru'.*FERRY_SIP_SECRET/);
    assert.ok(controlExposureProblem('10.0.0.5', 'cymru'));
    assert.equal(controlExposureProblem('127.0.0.1', 'cymru'), undefined);
    assert.equal(controlExposureProblem('0.0.0.0', 'a-site-secret'), undefined);
  });

  test('example credentials: ferry start warns when SIP is reachable from other hosts and a user or trunk still has a password of the shipped sip-config (printed in README.md); not on loopback, not for passwords of its own', () => {
    const shipped = loadSipConfig(defaultSipConfigFile());
    assert.deepEqual([...publishedPasswords()].sort(), ['alice-secret', 'bob-secret', 'desk-1001-secret'], 'the passwords README.md prints');
    const warning = exampleCredentialsWarning(shipped, '0.0.0.0', 'sip-config/ferry.json') ?? '';
    assert.match(warning, /^ferry start: WARNING: SIP listens on 0\.0\.0\.0, reachable from other hosts, and sip-config\/ferry\.json gives alice, bob, 1001 the example passwords printed in README\.md, which the gateway accepts from this host only/);
    assert.match(warning, /FERRY_SIP_CONFIG/);
    assert.ok(exampleCredentialsWarning(shipped, '10.0.0.5', 'f'), 'a LAN address is reachable from other hosts');
    assert.ok(exampleCredentialsWarning(shipped, '::', 'f'), 'the IPv6 wildcard too');
    for (const h of ['127.0.0.1', '::1', 'localhost']) assert.equal(exampleCredentialsWarning(shipped, h, 'f'), undefined, h);
    const own = (password: (user: string) => string) => ({ ...shipped, users: shipped.users.map((u) => ({ ...u, password: password(u.user) })) });
    assert.match(exampleCredentialsWarning(own((u) => (u === 'bob' ? 'bob-secret' : `${u}-a-password-of-its-own`)), '0.0.0.0', 'f') ?? '', /gives bob the example passwords/);
    assert.match(exampleCredentialsWarning(own((u) => (u === '1001' ? 'alice-secret' : `${u}-a-password-of-its-own`)), '0.0.0.0', 'f') ?? '', /gives 1001 the example/, 'any user with a published password');
    const none = own((u) => `${u}-a-password-of-its-own`);
    assert.equal(exampleCredentialsWarning(none, '0.0.0.0', 'f'), undefined);
    const trunk = { ...none, trunks: [{ name: 'carrier', address: '203.0.113.5:5060', transport: 'udp' as const, acceptFrom: [], inboundAuth: { username: 'carrier-in', password: 'desk-1001-secret' } }] };
    assert.match(exampleCredentialsWarning(trunk as typeof none, '0.0.0.0', 'f') ?? '', /gives trunk carrier the example/);
  });

  test('a wildcard listener is reached on loopback', () => {
    assert.equal(connectHost('0.0.0.0'), '127.0.0.1');
    assert.equal(connectHost('::'), '::1');
    assert.equal(connectHost('10.0.0.5'), '10.0.0.5');
  });
});

describe('log throttle', { timeout: 10_000 }, () => {
  test('one line per key per interval; the next line reports how many were suppressed; other keys are independent', () => {
    let now = 1000;
    const t = new LogThrottle(10_000, () => now);
    assert.deepEqual(t.admit('a'), { suppressed: 0 });
    for (let i = 0; i < 500; i++) assert.equal(t.admit('a'), undefined);
    assert.deepEqual(t.admit('b'), { suppressed: 0 });
    now += 10_000;
    assert.deepEqual(t.admit('a'), { suppressed: 500 });
    assert.equal(t.admit('a'), undefined);
  });

  test('keys are bounded: a flood of distinct keys cannot grow it without limit', () => {
    let now = 0;
    const t = new LogThrottle(10_000, () => now, 10);
    for (let i = 0; i < 10; i++) assert.ok(t.admit(`k${i}`));
    assert.equal(t.admit('k-new'), undefined, 'full: no new key within the interval');
    now += 10_000;
    assert.ok(t.admit('k-new'), 'expired keys make room');
  });
});
