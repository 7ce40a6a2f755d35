import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CallRouter } from '../../src/gateway/calls/call-router';
import { parseSipConfig } from '../../src/gateway/config/sip-config-loader';
import { natNextHop } from '../../src/gateway/registrar/nat-next-hop';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { SipRequest, SipResponse } from '../../src/sip/message/sip-message';
import { uacDialog, uasDialog } from '../../src/sip/dialog/dialog-factory';
import { dialogFlow, followNatMapping, followsNatPeer } from '../../src/sip/dialog/dialog-flow';
import type { Flow } from '../../src/sip/transport/flow';

/**
 * A desk phone registered over UDP from behind a NAT router writes its private address in Contact; only
 * the router's mapping (the REGISTER's source address and port) reaches it. The gateway sends the INVITE
 * there (the UAC's outbound proxy, the Request-URI stays the Contact), and ferry sip keeps that address for
 * the dialog's ACK, BYE and re-INVITEs. Found by test/e2e/nat-desk-phone.test.ts: the INVITE and the BYE
 * went to the private address and never arrived.
 */
describe('NAT: a UDP phone behind a router is reached through the mapping its REGISTER came from', () => {
  test('natNextHop: a private Contact registered over UDP from a public source goes to that source', { timeout: 5000 }, () => {
    const reg = (contact: string, source: string, transport = 'udp') => natNextHop({ contact, source, transport });
    assert.equal(reg('sip:1001@192.168.1.20:5060', '198.51.100.7:40312'), 'sip:198.51.100.7:40312');
    assert.equal(reg('sip:1001-0x55@10.1.2.3:16414;transport=udp', '198.51.100.7:5060'), 'sip:198.51.100.7:5060', 'another private range, Contact parameters');
    assert.equal(reg('sip:1001@100.64.0.9', '203.0.113.4:1024'), 'sip:203.0.113.4:1024', 'a carrier NAT address');
    assert.equal(reg('sip:1001@[fd00::20]:5060', '[2001:db8::7]:5062'), 'sip:[2001:db8::7]:5062', 'IPv6');
    // none: the Contact is where the phone is
    assert.equal(reg('sip:1001@198.51.100.7:5060', '198.51.100.7:40312'), undefined, 'a public Contact at the source\'s own address is reached where it says');
    assert.equal(reg('sip:1001@[2001:db8:0:1::99]:5060', '[2001:db8:0:1::5]:5062'), undefined, 'an IPv6 Contact in the source\'s /64');
    assert.equal(reg('sip:1001@203.0.113.9:5060', '127.0.0.1:40312'), undefined, 'this host may name any');
    assert.equal(reg('sip:1001@192.168.1.20:5060', '192.168.1.20:5060'), undefined, 'no NAT: the source is the Contact');
    assert.equal(reg('sip:1001@192.168.1.20:5060', '192.168.7.1:5060'), undefined, 'a private source: ferry\'s own network');
    // a connection: the phone's own, found by its remote address; never a new one to the private Contact
    assert.equal(reg('sip:1001@192.168.1.20:5060;transport=tcp', '198.51.100.7:40312', 'tcp'), 'sip:198.51.100.7:40312;transport=tcp');
    assert.equal(reg('sips:1001@10.0.0.5:5061', '198.51.100.7:40313', 'tls'), 'sip:198.51.100.7:40313;transport=tls');
    assert.equal(reg('sip:1001@10.0.0.5:5060;transport=tcp', '::ffff:198.51.100.7:40314', 'tcp'), 'sip:[::ffff:198.51.100.7]:40314;transport=tcp', 'the remote address as ferry sip reported it');
    assert.equal(reg('sip:1001@192.168.1.20:5060;transport=tcp', '192.168.1.20:40312', 'tcp'), undefined, 'a private source: ferry sip binds it to its connection');
    assert.equal(reg('sip:1001@203.0.113.9:5060;transport=tcp', '203.0.113.9:40312', 'tcp'), undefined, 'a public Contact');
    assert.equal(reg('sip:1001@10.0.0.5:5060;transport=ws', '198.51.100.7:40312', 'ws'), undefined, 'WebSocket: never dialled');
    assert.equal(reg('sip:alice@abc.invalid;transport=ws', '198.51.100.7:40312', 'wss'), undefined);
    assert.equal(reg('sip:1001@phone.example.org', '198.51.100.7:40312'), undefined, 'a name');
    assert.equal(natNextHop({ contact: 'sip:1001@192.168.1.20', transport: 'udp' }), undefined, 'no source known');
    assert.equal(reg('sip:1001@192.168.1.20', 'garbage'), undefined);
  });

  test('natNextHop: a Contact naming a public address other than the source (a STUN phone on ferry\'s network, or a third party) goes to the source', { timeout: 5000 }, () => {
    const reg = (contact: string, source: string, transport = 'udp') => natNextHop({ contact, source, transport });
    assert.equal(reg('sip:1001@203.0.113.9:5060', '192.168.1.50:5060'), 'sip:192.168.1.50:5060', 'STUN: the NAT\'s public address from the private one');
    assert.equal(reg('sip:1001@203.0.113.9:31000', '10.0.0.8:5062'), 'sip:10.0.0.8:5062');
    assert.equal(reg('sip:1001@203.0.113.9:5060', '198.51.100.7:40312'), 'sip:198.51.100.7:40312', 'another public address');
    assert.equal(reg('sip:1001@[2001:db8:0:2::1]:5060', '[2001:db8:0:1::5]:5062'), 'sip:[2001:db8:0:1::5]:5062', 'IPv6 outside the source\'s /64');
    assert.equal(reg('sip:1001@203.0.113.9:5060;transport=tcp', '192.168.1.50:40312', 'tcp'), 'sip:192.168.1.50:40312;transport=tcp', 'a connection: the phone\'s own');
    assert.equal(reg('sips:1001@203.0.113.9:5061', '192.168.1.50:40313', 'tls'), 'sip:192.168.1.50:40313;transport=tls');
    assert.equal(reg('sip:1001@203.0.113.9:5060;transport=ws', '192.168.1.50:40312', 'ws'), undefined, 'WebSocket: the registrar refuses it');
  });

  test('the router hands the gateway the next hop with the Contact as the Request-URI', { timeout: 5000 }, async () => {
    const config = parseSipConfig(JSON.stringify({ domain: 'ferry.local', users: [{ user: '1001', password: 'p' }, { user: '1002', password: 'p' }, { user: '1003', password: 'p' }] }), 'f.json');
    const store = new MemoryStateStore();
    const now = Date.now();
    const base = { aor: 'sip:x@ferry.local', webrtc: false, registeredAt: now, expiresAt: now + 60_000 };
    await store.putRegistration({ ...base, user: '1001', contact: 'sip:1001@192.168.1.20:5060', transport: 'udp', source: '198.51.100.7:40312' });
    await store.putRegistration({ ...base, user: '1002', contact: 'sip:1002@203.0.113.9:5060', transport: 'udp', source: '203.0.113.9:5060' });
    await store.putRegistration({ ...base, user: '1003', contact: 'sip:1003@203.0.113.77:5060', transport: 'udp', source: '192.168.1.50:5062' });
    const router = new CallRouter(config, store);
    const natd = await router.route('1001');
    assert.ok(natd.ok);
    assert.equal(natd.uri, 'sip:1001@192.168.1.20:5060');
    assert.equal(natd.nextHop, 'sip:198.51.100.7:40312');
    const direct = await router.route('1002');
    assert.ok(direct.ok);
    assert.equal(direct.nextHop, undefined, 'a public phone: no next hop (positive control of the field)');
    const stun = await router.route('1003');
    assert.ok(stun.ok);
    assert.equal(stun.uri, 'sip:1003@203.0.113.77:5060');
    assert.equal(stun.nextHop, 'sip:192.168.1.50:5062', 'a STUN phone on ferry\'s network: its REGISTER\'s source');
  });

  const udpFlow = (remoteAddress: string, remotePort = 40312): Flow => ({
    id: `udp/${remoteAddress}:${remotePort}`, protocol: 'udp', reliable: false, remoteAddress, remotePort, localAddress: '198.51.100.1', localPort: 5060, closed: false, send: () => undefined,
  });
  const tcpFlow: Flow = { ...udpFlow('198.51.100.7'), id: 'tcp#1', protocol: 'tcp', reliable: true };

  test('dialogFlow: a UDP dialog whose remote target is private and whose peer is public keeps the peer\'s address', { timeout: 5000 }, () => {
    const nat = udpFlow('198.51.100.7');
    assert.equal(dialogFlow('sip:1001@192.168.1.20:5060', nat), nat);
    assert.equal(dialogFlow('sip:1001@192.168.1.20:5060', udpFlow('192.168.1.20', 5060)), undefined, 'no NAT');
    assert.equal(dialogFlow('sip:1001@203.0.113.9:5060', nat), undefined, 'a public target is reached where it says');
    assert.equal(dialogFlow('sip:1001@192.168.1.20:5060', tcpFlow), tcpFlow, 'a connection is always kept');
    // a STUN phone on ferry's own network: its Contact names its NAT's public address, it sends from its private one
    const lan = udpFlow('192.168.1.50', 5060);
    assert.equal(dialogFlow('sip:1001@203.0.113.9:5060', lan), lan, 'a public target, a private peer');
    const lan6 = udpFlow('fd00::50', 5060);
    assert.equal(dialogFlow('sip:1001@[2001:db8::9]:5060', lan6), lan6, 'IPv6: a global target, a ULA peer');
    assert.equal(dialogFlow('sip:1001@127.0.0.1:5060', lan), undefined, 'a loopback target');
    assert.equal(dialogFlow('sip:1001@phone.example.org', lan), undefined, 'a name');
    assert.equal(dialogFlow('sip:1001@203.0.113.9:5060', udpFlow('198.51.100.7')), undefined, 'two public addresses: the target, as RFC 3261 says');
    assert.equal(dialogFlow('sip:1001@203.0.113.9:5060;transport=tcp', tcpFlow), tcpFlow);
  });

  const invite = (contact: string): SipRequest => parseSipMessage(Buffer.from([
    'INVITE sip:1001@192.168.1.20:5060 SIP/2.0', 'Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1', 'From: <sip:alice@ferry.local>;tag=a1',
    'To: <sip:1001@ferry.local>', 'Call-ID: nat-1', 'CSeq: 1 INVITE', `Contact: <${contact}>`, 'Content-Length: 0', '', ''].join('\r\n'))) as SipRequest;
  const ok = (contact: string): SipResponse => parseSipMessage(Buffer.from([
    'SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1', 'From: <sip:alice@ferry.local>;tag=a1',
    'To: <sip:1001@ferry.local>;tag=b1', 'Call-ID: nat-1', 'CSeq: 1 INVITE', `Contact: <${contact}>`, 'Content-Length: 0', '', ''].join('\r\n'))) as SipResponse;

  test('the dialogs ferry sip makes keep the NAT mapping: the UAC dialog from the phone\'s 2xx, the UAS dialog from its INVITE', { timeout: 5000 }, () => {
    const nat = udpFlow('198.51.100.7');
    const uac = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1001@192.168.1.20:5060'), nat, 'app');
    assert.equal(uac.remoteTarget, 'sip:1001@192.168.1.20:5060');
    assert.equal(uac.flow, nat, 'ACK and BYE go back through the router');
    const uas = uasDialog(invite('sip:1001@192.168.1.20:5060'), ok('sip:ferry@198.51.100.1:5060'), 'b1', nat, 'sip:ferry@198.51.100.1:5060', 'app');
    assert.equal(uas.flow, nat);
    const stun = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1001@203.0.113.9:5060'), udpFlow('192.168.1.50', 5060), 'app');
    assert.equal(stun.flow?.remoteAddress, '192.168.1.50', 'a STUN phone on ferry\'s network: ACK and BYE go where its 2xx came from');
    const direct = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1001@203.0.113.9:5060'), udpFlow('203.0.113.9', 5060), 'app');
    assert.equal(direct.flow, undefined, 'a public phone: its Contact, as before');
  });

  test('followNatMapping: the phone re-registers from a new port of its router\'s address: its NAT dialogs follow it; others stay', { timeout: 5000 }, () => {
    const old = udpFlow('198.51.100.7', 40312);
    const fresh = udpFlow('198.51.100.7', 51515);
    const phone = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1001@192.168.1.20:5060'), old, 'app');
    const neighbour = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1002@192.168.1.21:5060'), udpFlow('198.51.100.7', 40400), 'app');
    const elsewhere = uacDialog(invite('sip:ferry@198.51.100.1:5060'), ok('sip:1001@192.168.1.20:5060'), udpFlow('203.0.113.50', 40312), 'app');
    const dialogs = [phone, neighbour, elsewhere];
    assert.equal(followNatMapping(dialogs, fresh, ['sip:1001@192.168.1.20:5060']), 1);
    assert.equal(phone.flow, fresh, 'the phone\'s dialog follows it');
    assert.notEqual(neighbour.flow, fresh, 'another phone behind the same router (another Contact) stays');
    assert.notEqual(elsewhere.flow, fresh, 'the same Contact behind another router stays');
    assert.equal(followNatMapping(dialogs, fresh, ['sip:1001@192.168.1.20:5062']), 0, 'another port of the Contact is another phone');
    assert.equal(followNatMapping([neighbour], { ...fresh, id: 'tcp#2', protocol: 'tcp', reliable: true }, ['sip:1002@192.168.1.21:5060']), 0, 'a connection does not move UDP dialogs');
  });

  test('followsNatPeer: a request in the dialog from another port of the same router moves it there; another address or a public phone does not', { timeout: 5000 }, () => {
    const old = udpFlow('198.51.100.7', 40312);
    const phone = uasDialog(invite('sip:1001@192.168.1.20:5060'), ok('sip:ferry@198.51.100.1:5060'), 'b1', old, 'sip:ferry@198.51.100.1:5060', 'app');
    assert.equal(followsNatPeer(phone, udpFlow('198.51.100.7', 51515)), true);
    assert.equal(followsNatPeer(phone, old), false, 'the same mapping');
    assert.equal(followsNatPeer(phone, udpFlow('203.0.113.50', 40312)), false, 'another address');
    const direct = uasDialog(invite('sip:1002@203.0.113.9:5060'), ok('sip:ferry@198.51.100.1:5060'), 'b2', udpFlow('203.0.113.9', 5060), 'sip:ferry@198.51.100.1:5060', 'app');
    assert.equal(followsNatPeer(direct, udpFlow('203.0.113.9', 5062)), false, 'a public phone keeps its Contact');
  });
});
