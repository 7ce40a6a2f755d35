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
  test('bindable: a .invalid host or the connection\'s own address; another address, a name or garbage is not', () => {
    const f = flow('tcp#1', '10.0.0.9');
    assert.equal(FlowBindings.bindable('sip:k7m2@df7jal23ls0d.invalid;transport=ws', f), true);
    assert.equal(FlowBindings.bindable('sip:alice@10.0.0.9:5080;transport=tcp', f), true);
    assert.equal(FlowBindings.bindable('sip:1001@10.0.0.5:5060', f), false, 'a desk phone\'s Contact at another address');
    assert.equal(FlowBindings.bindable('sip:1001@pbx.example.org', f), false);
    assert.equal(FlowBindings.bindable('not a uri', f), false);
    assert.equal(FlowBindings.bindable('sip:a@10.0.0.9', flow('tcp#2', '::ffff:10.0.0.9')), true, 'an IPv4-mapped remote address is that IPv4 address');
    assert.equal(FlowBindings.bindable('sip:a@[2001:DB8::1]:5060', flow('tcp#3', '2001:db8::1')), true);
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
});
