import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import os from 'node:os';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { RtpLeg } from '../../src/media/rtp/rtp-leg';
import { mayLatchFrom } from '../../src/media/rtp/nat-latch-rule';
import { pollUntil } from '../helpers/wait-for';

/**
 * RTP bleed: a stranger who sprays the media port range with plausible RTP before a phone's first packet
 * (a phone that sends nothing while silent) must not be latched — and so sent the call's audio — when
 * the phone's SDP names a public or loopback address (nothing to traverse: the phone is where it said).
 * A packet from the SDP's own IP on another port still latches, and so does the first one from anywhere
 * when the SDP names a private address (a phone behind NAT: the rule, checked by address). Real UDP
 * sockets on loopback only; the stranger sends from 127.0.0.7.
 */

const logger = createLogger('test.media-rtp-stranger-latch');
const sockets: dgram.Socket[] = [];
const legs: RtpLeg[] = [];
after(async () => {
  for (const s of sockets) s.close();
  await Promise.all(legs.map((l) => l.close()));
});

async function socketOn(address: string): Promise<{ socket: dgram.Socket; got: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  sockets.push(socket);
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(Buffer.from(m)));
  return { socket, got };
}

function rtp(seq: number): Buffer {
  const b = Buffer.alloc(172, 0x55);
  b[0] = 0x80;
  b[1] = 0; // PCMU, negotiated
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(0x0a0b0c0d, 8);
  return b;
}

async function legTo(address: string, port: number): Promise<{ leg: RtpLeg; port: number; received: number[] }> {
  const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
  const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', logger);
  legs.push(leg);
  const received: number[] = [];
  leg.on('rtp', (p) => received.push(p.readUInt16BE(2)));
  leg.setRemote({ address, rtpPort: port, rtcpAddress: address, rtcpPort: port, rtcpMux: true }, true, [0]);
  return { leg, port: pair.rtp.address().port, received };
}

describe('a stranger\'s RTP does not latch a leg whose SDP names a public or loopback address', { timeout: 30_000 }, () => {
  test('SDP 127.0.0.1 (a silent phone): the stranger\'s packets from 127.0.0.7 are dropped and the call\'s audio still goes to the phone; a leg whose SDP names 127.0.0.7 (another port) is latched by the same packets', async () => {
    const phone = await socketOn('127.0.0.1');
    const stranger = await socketOn('127.0.0.7');
    const sprayed = await legTo('127.0.0.1', phone.socket.address().port);
    const control = await legTo('127.0.0.7', stranger.socket.address().port === 40_000 ? 40_001 : 40_000);
    for (let seq = 1; seq <= 5; seq++) {
      stranger.socket.send(rtp(seq), sprayed.port, '127.0.0.1');
      stranger.socket.send(rtp(seq), control.port, '127.0.0.1');
    }
    // positive control: the packets are plausible, and latch a leg whose SDP names their own IP (a NAT that changed the port)
    await pollUntil(() => control.received.includes(5), { timeoutMs: 5000, what: 'the packets on the leg whose SDP names 127.0.0.7' });
    control.leg.sendRtp(rtp(900));
    await pollUntil(() => stranger.got.some((m) => m.readUInt16BE(2) === 900), { timeoutMs: 5000, what: 'that leg\'s audio at the latched source' });
    // the sprayed leg: the call's audio goes where its SDP said, not to the stranger
    sprayed.leg.sendRtp(rtp(901));
    await pollUntil(() => phone.got.some((m) => m.readUInt16BE(2) === 901) || stranger.got.some((m) => m.readUInt16BE(2) === 901), { timeoutMs: 5000, what: 'the sprayed leg\'s audio, at the phone or at the stranger' });
    assert.ok(!stranger.got.some((m) => m.readUInt16BE(2) === 901), 'the stranger was sent the call\'s audio');
    assert.ok(phone.got.some((m) => m.readUInt16BE(2) === 901), 'the phone named in the SDP gets the audio');
    assert.deepEqual(sprayed.received, [], 'the stranger\'s RTP was relayed into the call');
    assert.ok(sprayed.leg.strangerPackets >= 5, `counted as strangers: ${sprayed.leg.strangerPackets}`);
  });

  test('SDP 127.0.0.1 on one port: a packet from 127.0.0.1 on another port (a NAT that kept the address) latches', async () => {
    const phone = await socketOn('127.0.0.1');
    const leg = await legTo('127.0.0.1', phone.socket.address().port === 40_000 ? 40_001 : 40_000);
    phone.socket.send(rtp(1), leg.port, '127.0.0.1');
    await pollUntil(() => leg.received.includes(1), { timeoutMs: 5000, what: 'the packet from the SDP\'s own address' });
    leg.leg.sendRtp(rtp(902));
    await pollUntil(() => phone.got.some((m) => m.readUInt16BE(2) === 902), { timeoutMs: 5000, what: 'the audio at the latched port' });
  });

  test('mayLatchFrom: the rule by address', () => {
    assert.equal(mayLatchFrom('203.0.113.5', '198.51.100.9'), false, 'public SDP, another source');
    assert.equal(mayLatchFrom('127.0.0.1', '127.0.0.7'), false, 'loopback SDP, another source');
    assert.equal(mayLatchFrom('203.0.113.5', '203.0.113.5'), true, 'the SDP\'s own IP');
    assert.equal(mayLatchFrom('203.0.113.5', '::ffff:203.0.113.5'), true, 'the same IP, IPv4-mapped');
    for (const priv of ['10.1.2.3', '172.16.0.9', '172.31.255.1', '192.168.1.50', '100.64.0.1', '169.254.1.1', 'fd00::1', 'fe80::1']) {
      assert.equal(mayLatchFrom(priv, '198.51.100.9'), true, `${priv} is written by phones behind NAT`);
    }
    assert.equal(mayLatchFrom('172.32.0.1', '198.51.100.9'), false, '172.32/16 is public');
    assert.equal(mayLatchFrom('2001:db8::5', '2001:db8::6'), false, 'a global IPv6 address');
    assert.equal(mayLatchFrom(undefined, '198.51.100.9'), false, 'no SDP yet');
    // a phone on ferry's own network configured with a STUN server: its SDP names its NAT's public address, its RTP comes from its private one
    for (const priv of ['192.168.1.50', '10.0.0.8', '100.64.0.1', '::ffff:192.168.1.50']) {
      assert.equal(mayLatchFrom('203.0.113.5', priv), true, `public SDP, source ${priv} behind NAT`);
    }
    assert.equal(mayLatchFrom('2001:db8::5', 'fd00::50'), true, 'a global IPv6 SDP, a ULA source');
    assert.equal(mayLatchFrom('127.0.0.1', '192.168.1.50'), false, 'a loopback SDP is not a STUN address');
  });

  test('mayLatchFrom: a phone on this host that writes one of the host\'s own addresses and sends over loopback', () => {
    const own = Object.values(os.networkInterfaces()).flat().find((a) => a && !a.internal && a.family === 'IPv4')?.address;
    assert.ok(own, 'this host has a non-loopback IPv4 address');
    assert.equal(mayLatchFrom(own, '127.0.0.1'), true, `SDP ${own} (this host), source 127.0.0.1 (this host)`);
    assert.equal(mayLatchFrom('127.0.0.1', own), true, `SDP 127.0.0.1, source ${own}: both this host`);
    // controls: another host's public address still latches by itself alone; two loopback addresses stay apart
    assert.equal(mayLatchFrom('203.0.113.5', '127.0.0.1'), false, 'SDP of another host, source on this one');
    assert.equal(mayLatchFrom('127.0.0.1', '127.0.0.7'), false, 'two loopback addresses');
  });
});
