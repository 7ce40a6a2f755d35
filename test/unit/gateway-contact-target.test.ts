import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { contactTargetProblem } from '../../src/gateway/registrar/contact-target';

/**
 * Which Contacts a REGISTER may bind: calls to the user go to them, so none may name this host's own
 * services (loopback, unless the REGISTER itself came from loopback), a link-local (metadata service),
 * multicast, unspecified or reserved address, nor a host name (from another machine). Every spelling of
 * those addresses is judged by its value.
 */
describe('registered Contact targets', { timeout: 10_000 }, () => {
  test('loopback from another machine is refused, from this host accepted', () => {
    for (const uri of ['sip:alice@127.0.0.1:6379;transport=tcp', 'sip:alice@127.9.9.9', 'sip:alice@localhost:8888;transport=tcp', 'sip:alice@[::1]:5060', 'sip:alice@[::ffff:7f00:1]', 'sips:127.0.0.1']) {
      assert.match(contactTargetProblem(uri, '192.0.2.7') ?? '', /loopback/, uri);
      assert.equal(contactTargetProblem(uri, '127.0.0.1'), undefined, `${uri} from loopback`);
    }
  });

  test('link-local, multicast, unspecified and reserved are refused from anywhere', () => {
    const cases: Array<[string, RegExp]> = [
      ['sip:a@169.254.169.254:80;transport=tcp', /link-local/],
      ['sip:a@[fe80::1]', /link-local/],
      ['sip:a@224.0.0.1', /multicast/],
      ['sip:a@[ff02::1]', /multicast/],
      ['sip:a@0.0.0.0', /names no host/],
      ['sip:a@240.0.0.1', /reserved/],
    ];
    for (const [uri, want] of cases) {
      assert.match(contactTargetProblem(uri, '127.0.0.1') ?? '', want, uri);
      assert.match(contactTargetProblem(uri, '192.0.2.7') ?? '', want, uri);
    }
  });

  test('phones and webphones: public, private and .invalid hosts, and garbage pass (garbage is not a target)', () => {
    for (const uri of ['sip:1001@192.168.1.50:5060', 'sip:1001@10.0.0.5;transport=tcp', 'sip:bob@192.0.2.7:5062', 'sip:k7m2@df7jal23ls0d.invalid;transport=ws', 'sip:x@[::ffff:192.0.2.7]', 'not-a-uri']) {
      assert.equal(contactTargetProblem(uri, '192.0.2.7'), undefined, uri);
    }
    // a public IPv6 Contact in the source's /64 (a phone's privacy addresses), and any Contact from loopback
    assert.equal(contactTargetProblem('sip:x@[2001:db8:0:1::99]:5060', '2001:db8:0:1::5'), undefined);
    assert.equal(contactTargetProblem('sip:bob@203.0.113.9', '127.0.0.1'), undefined);
  });

  test('a public address other than the REGISTER\'s source: accepted over UDP, TCP and TLS (sent to the source), refused over WebSocket or without a source port', () => {
    const cases: Array<[string, string]> = [
      ['sip:bob@203.0.113.9', '192.0.2.7'],
      ['sip:x@198.51.100.4:5060;transport=tcp', '192.0.2.7'],
      ['sip:x@[2001:db8::1]:5060', '192.0.2.7'],
      ['sip:x@[2001:db8:0:2::1]', '2001:db8:0:1::5'],
      // a desk phone on ferry's own network configured with a STUN server: its NAT's public address, from its private one
      ['sip:x@203.0.113.9', '10.0.0.8'],
      ['sip:1001@198.51.100.20:5060', '192.168.1.50'],
    ];
    for (const [uri, source] of cases) {
      for (const transport of ['udp', 'tcp', 'tls']) {
        assert.equal(contactTargetProblem(uri, source, { transport, port: 5062 }), undefined, `${uri} from ${source} over ${transport}`);
      }
      // where requests cannot be sent to the source instead, the third party would get them: refused
      for (const flow of [{ transport: 'ws', port: 5062 }, { transport: 'wss', port: 5062 }, { transport: 'udp', port: 0 }, undefined]) {
        assert.match(contactTargetProblem(uri, source, flow) ?? '', /is not the address the REGISTER came from/, `${uri} from ${source} over ${JSON.stringify(flow)}`);
      }
    }
    // controls: the source's own address (its /64) and a webphone's .invalid host over WebSocket are fine
    assert.equal(contactTargetProblem('sip:x@192.0.2.7:5060', '192.0.2.7', { transport: 'ws', port: 5062 }), undefined);
    assert.equal(contactTargetProblem('sip:x@[2001:db8:0:1::99]', '2001:db8:0:1::5', { transport: 'wss', port: 5062 }), undefined);
    assert.equal(contactTargetProblem('sip:k7m2@df7jal23ls0d.invalid;transport=ws', '192.0.2.7', { transport: 'wss', port: 5062 }), undefined);
  });

  test('a host name is refused from another machine (its DNS records choose the address and port at call time), accepted from this host', () => {
    for (const uri of ['sip:x@pbx.example.org', 'sip:x@rebind.example.net:6379;transport=tcp', 'sips:x@internal', 'sip:x@PBX.Example.ORG;transport=tls']) {
      assert.match(contactTargetProblem(uri, '192.0.2.7') ?? '', /is a name/, uri);
      assert.equal(contactTargetProblem(uri, '127.0.0.1'), undefined, `${uri} from loopback`);
    }
    // controls: a webphone's .invalid name and an address are not names
    assert.equal(contactTargetProblem('sip:k7m2@df7jal23ls0d.invalid;transport=ws', '192.0.2.7'), undefined);
    assert.equal(contactTargetProblem('sip:x@192.0.2.7', '192.0.2.7'), undefined);
  });
});
