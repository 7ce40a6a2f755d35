import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalAddress } from '../../src/sip/engine/local-address';
import { ipv6AddressFor } from '../../src/sip/engine/ipv6-address-for';
import type { Flow } from '../../src/sip/transport/flow';

/**
 * What ferry sip writes about itself in Via and Contact on IPv6 (docs/deploy.md, "IPv6"): an IPv6
 * literal in brackets (RFC 3261 §25.1), and, listening dual-stack on `::` with no advertised host, an
 * IPv6 address for a peer on IPv6 and the IPv4 one for a peer on IPv4 (mapped into the dual-stack socket).
 */
const flow = (remoteAddress: string, localAddress: string): Flow => ({
  id: `udp/${remoteAddress}:5062`, protocol: 'udp', reliable: false, remoteAddress, remotePort: 5062,
  localAddress, localPort: 5060, closed: false, send: () => undefined,
});

describe('ferry sip addresses itself on IPv6', () => {
  test('a listen address ::1: Contact and Via carry [::1]; control: an IPv4 listen address is written as it is', { timeout: 5000 }, () => {
    const v6 = new LocalAddress({ host: '::1', sipPort: () => 5060, wsPort: () => 8088 });
    assert.equal(v6.contact(flow('::1', '::1')), '<sip:[::1]:5060>');
    assert.match(v6.via(flow('::1', '::1')), /^SIP\/2\.0\/UDP \[::1\]:5060;rport;branch=z9hG4bK/);
    const v4 = new LocalAddress({ host: '127.0.0.1', sipPort: () => 5060, wsPort: () => 8088 });
    assert.equal(v4.contact(flow('127.0.0.1', '127.0.0.1')), '<sip:127.0.0.1:5060>');
  });

  test('dual-stack: a peer on IPv6 is told the IPv6 address, a peer on IPv4 (mapped) the IPv4 one', { timeout: 5000 }, () => {
    const own = ['::1', 'fd00::2', '2001:db8:1::10'];
    const local = new LocalAddress({ host: '192.0.2.2', ipv6HostFor: (peer) => ipv6AddressFor(peer, own), sipPort: () => 5060, wsPort: () => 8088 });
    assert.equal(local.contact(flow('fd00::9', '::')), '<sip:[fd00::2]:5060>');
    assert.equal(local.contact(flow('::1', '::')), '<sip:[::1]:5060>');
    assert.equal(local.contact(flow('2001:db8:1::77', '::')), '<sip:[2001:db8:1::10]:5060>');
    assert.equal(local.contact(flow('::ffff:198.51.100.7', '::')), '<sip:192.0.2.2:5060>');
    assert.equal(local.contact(flow('198.51.100.7', '0.0.0.0')), '<sip:192.0.2.2:5060>');
  });

  test('a wildcard advertised host writes the flow\'s own local address, in brackets when IPv6', { timeout: 5000 }, () => {
    const local = new LocalAddress({ host: '::', sipPort: () => 5060, wsPort: () => 8088 });
    assert.equal(local.contact(flow('fd00::9', 'fd00::2')), '<sip:[fd00::2]:5060>');
  });

  test('which IPv6 address of the host a peer is told: loopback for loopback, the same /64, else the same kind (unique local or global)', { timeout: 5000 }, () => {
    const own = ['::1', 'fd00::2', 'fd00:17::1', '2001:db8:1::10', '2001:db8:2::10'];
    assert.equal(ipv6AddressFor('::1', own), '::1');
    assert.equal(ipv6AddressFor('fd00:17::2', own), 'fd00:17::1', 'a phone on the fd00:17::/64 link');
    assert.equal(ipv6AddressFor('2001:db8:2::99', own), '2001:db8:2::10', 'a phone on the 2001:db8:2::/64 link');
    assert.equal(ipv6AddressFor('fd99::5', own), 'fd00::2', 'a routed unique local peer: the first unique local address');
    assert.equal(ipv6AddressFor('2a00:1450::1', own), '2001:db8:1::10', 'a routed global peer: the first global address');
    assert.equal(ipv6AddressFor('2a00:1450::1', ['::1', 'fd00::2']), 'fd00::2', 'no global address: the first external one');
    assert.equal(ipv6AddressFor('2a00:1450::1', ['::1']), '::1', 'no external address at all');
  });
});
