import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { RtpLeg } from '../../src/media/rtp/rtp-leg';
import { captureLog } from '../helpers/captured-log';
import { pollUntil } from '../helpers/wait-for';

/**
 * A phone behind NAT whose router forgot its mapping (an idle timeout, a reboot) comes back from the same
 * public address on another port, and only that new mapping reaches it: the leg follows it. Before, the leg
 * stayed latched to the dead port: the phone's audio was dropped as a stranger's and the call's audio went
 * nowhere until the leg was declared dead (found by test/e2e/nat-desk-phone.test.ts). A source on another
 * address is still a stranger. Real UDP sockets on loopback; the SDP names a private address (a phone behind
 * NAT), the "NAT" is 127.0.0.1, the stranger sends from 127.0.0.7.
 */

const logger = createLogger('test.media-rtp-nat-relatch');
const sockets: dgram.Socket[] = [];
const legs: RtpLeg[] = [];
after(async () => {
  for (const s of sockets) s.close();
  await Promise.all(legs.map((l) => l.close()));
});

async function socketOn(address: string): Promise<{ socket: dgram.Socket; got: number[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  sockets.push(socket);
  const got: number[] = [];
  socket.on('message', (m) => got.push(m.readUInt16BE(2)));
  return { socket, got };
}

function rtp(seq: number, pt = 0, ssrc = 0x0a0b0c0d): Buffer {
  const b = Buffer.alloc(172, 0x55);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

describe('NAT: a phone leg latched to a NAT follows the phone to a new port of the same address', { timeout: 30_000 }, () => {
  test('latched to 127.0.0.1:A, the phone comes back from 127.0.0.1:B: its packets are taken and the call\'s audio goes to B; 127.0.0.7 stays a stranger', async () => {
    const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
    const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', logger);
    legs.push(leg);
    const received: number[] = [];
    leg.on('rtp', (p: Buffer) => received.push(p.readUInt16BE(2)));
    leg.setRemote({ address: '192.168.1.20', rtpPort: 16414, rtcpAddress: '192.168.1.20', rtcpPort: 16414, rtcpMux: true }, true, [0]);
    const port = pair.rtp.address().port;

    const first = await socketOn('127.0.0.1');
    first.socket.send(rtp(1), port, '127.0.0.1');
    await pollUntil(() => received.includes(1), { timeoutMs: 5000, what: 'the first mapping latched' });
    leg.sendRtp(rtp(100));
    await pollUntil(() => first.got.includes(100), { timeoutMs: 5000, what: 'the call\'s audio at the first mapping' });

    // the router forgot: the same phone, the same public address, another port
    const second = await socketOn('127.0.0.1');
    second.socket.send(rtp(2), port, '127.0.0.1');
    await pollUntil(() => received.includes(2), { timeoutMs: 5000, what: 'the phone\'s packet from its new mapping taken' });
    leg.sendRtp(rtp(101));
    await pollUntil(() => second.got.includes(101), { timeoutMs: 5000, what: 'the call\'s audio at the new mapping' });
    assert.ok(!first.got.includes(101), 'the dead mapping is no longer sent to');

    // another address is a stranger; an implausible packet (a payload type not negotiated) from the NAT moves nothing
    const stranger = await socketOn('127.0.0.7');
    const third = await socketOn('127.0.0.1');
    const dropped0 = leg.strangerPackets;
    stranger.socket.send(rtp(3), port, '127.0.0.1');
    third.socket.send(rtp(4, 96), port, '127.0.0.1');
    await pollUntil(() => leg.strangerPackets >= dropped0 + 2, { timeoutMs: 5000, what: 'the stranger\'s and the implausible packet counted as strangers' });
    leg.sendRtp(rtp(102));
    await pollUntil(() => second.got.includes(102), { timeoutMs: 5000, what: 'the call\'s audio still at the new mapping' });
    assert.deepEqual(received, [1, 2], 'only the phone\'s packets were relayed');
    assert.ok(!stranger.got.includes(102) && !third.got.includes(102));
  });

  test('another port of the same NAT address with another stream (another subscriber of a carrier NAT) is a stranger, logged once with its source; the phone\'s own stream from a new port still moves the latch (control)', async () => {
    const captured = captureLog();
    const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
    const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', captured.logger);
    legs.push(leg);
    const received: number[] = [];
    leg.on('rtp', (p: Buffer) => received.push(p.readUInt16BE(2)));
    leg.setRemote({ address: '192.168.1.20', rtpPort: 16414, rtcpAddress: '192.168.1.20', rtcpPort: 16414, rtcpMux: true }, true, [0]);
    const port = pair.rtp.address().port;
    const phone = await socketOn('127.0.0.1');
    phone.socket.send(rtp(1), port, '127.0.0.1');
    await pollUntil(() => received.includes(1), { timeoutMs: 5000, what: 'the phone latched' });

    const neighbour = await socketOn('127.0.0.1');
    for (const seq of [2, 3]) neighbour.socket.send(rtp(seq, 0, 0x99999999), port, '127.0.0.1');
    await pollUntil(() => leg.strangerPackets >= 2, { timeoutMs: 5000, what: 'the neighbour\'s packets counted as a stranger\'s' });
    leg.sendRtp(rtp(100));
    await pollUntil(() => phone.got.includes(100), { timeoutMs: 5000, what: 'the call\'s audio still at the phone' });
    assert.ok(!neighbour.got.includes(100), 'the neighbour is not sent the call\'s audio');
    const logged = captured.lines.filter((l) => l.message === 'phone leg dropped a packet from an address its SDP did not name');
    assert.equal(logged.length, 1, 'the first stranger of the leg is logged, once');
    assert.equal(logged[0]!.source, `127.0.0.1:${neighbour.socket.address().port}`);
    assert.equal(logged[0]!.sdp, '192.168.1.20:16414');

    // control: the phone's own stream (its SSRC) from a new port moves the latch
    const moved = await socketOn('127.0.0.1');
    moved.socket.send(rtp(4), port, '127.0.0.1');
    await pollUntil(() => received.includes(4), { timeoutMs: 5000, what: 'the phone\'s stream from its new mapping taken' });
    leg.sendRtp(rtp(101));
    await pollUntil(() => moved.got.includes(101), { timeoutMs: 5000, what: 'the call\'s audio at the new mapping' });
    assert.deepEqual(received, [1, 4]);
  });

  test('a leg whose SDP names a public address is never moved by another port (no NAT there: positive control of the rule)', async () => {
    const phone = await socketOn('127.0.0.1');
    const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
    const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', logger);
    legs.push(leg);
    const received: number[] = [];
    leg.on('rtp', (p: Buffer) => received.push(p.readUInt16BE(2)));
    leg.setRemote({ address: '127.0.0.1', rtpPort: phone.socket.address().port, rtcpAddress: '127.0.0.1', rtcpPort: phone.socket.address().port, rtcpMux: true }, true, [0]);
    const port = pair.rtp.address().port;
    phone.socket.send(rtp(1), port, '127.0.0.1');
    await pollUntil(() => received.includes(1), { timeoutMs: 5000, what: 'latched to the SDP address' });
    const other = await socketOn('127.0.0.1');
    other.socket.send(rtp(2), port, '127.0.0.1');
    leg.sendRtp(rtp(100));
    await pollUntil(() => phone.got.includes(100), { timeoutMs: 5000, what: 'the audio at the SDP address' });
    assert.ok(!other.got.includes(100));
    assert.deepEqual(received, [1]);
  });
});
