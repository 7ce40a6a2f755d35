import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowBindings } from '../../src/sip/registrar/flow-bindings';
import type { Flow } from '../../src/sip/transport/flow';

function flow(id: string, remoteAddress: string): Flow & { closed: boolean } {
  return { id, protocol: 'tcp', reliable: true, remoteAddress, remotePort: 40000, localAddress: '127.0.0.1', localPort: 5060, closed: false, send: () => undefined };
}

/**
 * Which registered Contacts a connection may hold, and who may take a binding away: a connection is bound
 * only to Contacts that name it (a `.invalid` host) or its own address, and a REGISTER over another
 * connection (another user naming the same Contact with expires=0) cannot unbind it.
 */
describe('FlowBindings: a connection holds only its own Contacts', { timeout: 10_000 }, () => {
  test('mayBind: a .invalid host or the connection\'s own address; another address, a name or garbage is not', () => {
    const b = new FlowBindings();
    const f = flow('tcp#1', '10.0.0.9');
    assert.equal(b.mayBind('sip:k7m2@df7jal23ls0d.invalid;transport=ws', f, 0), true);
    assert.equal(b.mayBind('sip:alice@10.0.0.9:5080;transport=tcp', f, 0), true);
    assert.equal(b.mayBind('sip:1001@10.0.0.5:5060', f, 0), false, 'a desk phone\'s Contact at another address of the same network');
    assert.equal(b.mayBind('sip:1001@192.0.2.50:5060', flow('tcp#4', '198.51.100.9'), 0), false, 'a public Contact at another address');
    assert.equal(b.mayBind('sip:1001@pbx.example.org', f, 0), false);
    assert.equal(b.mayBind('not a uri', f, 0), false);
    assert.equal(b.mayBind('sip:a@10.0.0.9', flow('tcp#2', '::ffff:10.0.0.9'), 0), true, 'an IPv4-mapped remote address is that IPv4 address');
    assert.equal(b.mayBind('sip:a@[2001:DB8::1]:5060', flow('tcp#3', '2001:db8::1'), 0), true);
  });

  test('mayBind: a phone behind NAT (private Contact, connection from a public address) is bound; another address cannot take its Contact while it holds it', () => {
    const b = new FlowBindings();
    const contact = 'sip:1001@192.168.1.10:5060;transport=tcp';
    const phone = flow('tcp#1', '203.0.113.7');
    assert.equal(b.mayBind(contact, phone, 0), true, 'the NAT\'d phone over its own connection');
    assert.equal(b.mayBind('sip:1002@100.64.3.4;transport=tls', phone, 0), true, 'a carrier NAT\'s shared address too');
    b.bind(contact, phone, 60_000);
    const other = flow('tcp#2', '198.51.100.9');
    assert.equal(b.mayBind(contact, other, 1_000), false, 'held by a live connection from another address');
    assert.equal(b.mayBind(contact, flow('tcp#3', '203.0.113.7'), 1_000), true, 'the same phone reconnecting (its NAT\'s address, a new port)');
    assert.equal(b.mayBind(contact, other, 61_000), true, 'once the holder\'s registration has lapsed');
    phone.closed = true;
    assert.equal(b.mayBind(contact, other, 1_000), true, 'once the holder\'s connection has closed');
  });

  test('a UDP desk phone on the LAN (private Contact, no transport) is not captured by a user connecting from a public address', () => {
    const b = new FlowBindings();
    const outsider = flow('tcp#7', '203.0.113.9');
    const desk = 'sip:1001@192.168.1.50:5060';
    assert.equal(b.mayBind(desk, outsider, 0), false, 'the desk phone\'s very Contact: it names UDP, no connection');
    // the same user@host spelled with a connection transport is bound (a NAT'd TCP phone would write it) ...
    const spelled = 'sip:1001@192.168.1.50:5060;transport=tcp';
    assert.equal(b.mayBind(spelled, outsider, 0), true);
    b.bind(spelled, outsider, 60_000);
    assert.equal(b.lookup(spelled), outsider, 'positive control: requests to the bound Contact go over its connection');
    // ... but serves only requests naming that transport: the desk phone's own URI is not routed to it
    assert.equal(b.lookup(desk), undefined, 'a request to the UDP desk phone is not sent over the outsider\'s connection');
    assert.equal(FlowBindings.transportOf('sips:a@b'), 'tls');
    assert.equal(FlowBindings.transportOf('sip:a@b;transport=WSS'), 'ws');
    assert.equal(FlowBindings.transportOf('sip:a@b;transport=tls'), 'tls');
    assert.equal(FlowBindings.transportOf('sip:a@b'), 'udp');
  });

  test('unbind with a connection removes only a binding held by that connection', () => {
    const b = new FlowBindings();
    const owner = flow('ws#1', '10.0.0.7');
    const stranger = flow('tcp#9', '10.0.0.9');
    const contact = 'sip:k7m2@df7jal23ls0d.invalid;transport=ws';
    b.bind(contact, owner, 60_000);
    b.unbind(contact, stranger);
    assert.equal(b.lookup(contact), owner, 'another connection\'s expires=0 leaves the binding');
    b.unbind(contact, owner);
    assert.equal(b.lookup(contact), undefined, 'positive control: its own connection unbinds it');
  });

  test('keepOnly: the Contacts a registrar no longer lists for an address of record are forgotten on that connection only', () => {
    const b = new FlowBindings();
    const conn = flow('ws#1', '10.0.0.7');
    const other = flow('ws#2', '10.0.0.8');
    const c = (i: number): string => `sip:c${i}@x${i}.invalid;transport=ws`;
    for (let i = 0; i < 50; i++) b.bind(c(i), conn, 60_000, 'sip:alice@ferry.local');
    b.bind('sip:pbx@y.invalid;transport=ws', conn, 60_000, 'sip:bob@ferry.local');
    b.bind('sip:phone@z.invalid;transport=ws', other, 60_000, 'sip:alice@ferry.local');
    assert.equal(b.size, 52);
    b.keepOnly(conn, 'sip:alice@ferry.local', [c(48), c(49), 'sip:phone@z.invalid;transport=ws']);
    assert.equal(b.size, 4, 'alice keeps the two it lists on this connection; bob\'s binding and alice\'s other connection stay');
    assert.equal(b.lookup(c(49)), conn);
    assert.equal(b.lookup(c(0)), undefined);
    assert.equal(b.lookup('sip:pbx@y.invalid;transport=ws'), conn);
    assert.equal(b.lookup('sip:phone@z.invalid;transport=ws'), other);
  });
});
