import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { RtpLeg } from '../../src/media/rtp/rtp-leg';
import { pollUntil } from '../helpers/wait-for';

/**
 * The RTP leg's per-packet shortcuts on real sockets (src/media/rtp/rtp-leg.ts): the socket is
 * connect()ed as soon as the SDP-named peer latches it (the kernel then filters strangers), a re-INVITE
 * moving the peer disconnects and the new peer's first packet connects again, and 'rtp' listeners are
 * called directly (added, once() and removed listeners behave as with emit, plus setRtpHandler).
 */

const logger = createLogger('test.media-relay-rtp-leg-connect');
const sockets: dgram.Socket[] = [];
const legs: RtpLeg[] = [];
after(async () => {
  for (const s of sockets) s.close();
  await Promise.all(legs.map((l) => l.close()));
});

async function phone(): Promise<{ socket: dgram.Socket; got: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  sockets.push(socket);
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(Buffer.from(m)));
  return { socket, got };
}

function rtp(seq: number, pt = 0): Buffer {
  const b = Buffer.alloc(172, 0x55);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(0x0a0b0c0d, 8);
  return b;
}

function remoteOf(s: dgram.Socket) {
  const port = s.address().port;
  return { address: '127.0.0.1', rtpPort: port, rtcpAddress: '127.0.0.1', rtcpPort: port, rtcpMux: true };
}

async function newLeg(): Promise<{ leg: RtpLeg; socket: dgram.Socket; port: number }> {
  const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
  const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', logger);
  legs.push(leg);
  return { leg, socket: pair.rtp, port: pair.rtp.address().port };
}

function connectedTo(s: dgram.Socket): number | undefined {
  try {
    return s.remoteAddress().port;
  } catch {
    return undefined;
  }
}

describe('media relay: RtpLeg connect() and direct dispatch (real sockets)', () => {
  test('RTP from the peer in a payload type not negotiated is dropped and said once in the log; the agreed type then flows', { timeout: 20_000 }, async () => {
    const lines: Array<{ message: string; meta: Record<string, unknown> }> = [];
    const base = createLogger('test.media-relay-rtp-leg-connect.pt');
    const recording = Object.create(base) as typeof base;
    recording.info = ((message: string, meta: Record<string, unknown>) => {
      lines.push({ message, meta });
      return recording;
    }) as typeof base.info;
    const pair = await new PortAllocator('127.0.0.1', 0, 0).bindPair(false);
    const leg = new RtpLeg(pair, systemClock, 60_000, 'ferry-test', recording);
    legs.push(leg);
    const port = pair.rtp.address().port;
    const a = await phone();
    const received: number[] = [];
    leg.on('rtp', (p) => received.push(p.readUInt16BE(2)));
    leg.setRemote(remoteOf(a.socket), true, [0]); // PCMU agreed
    a.socket.send(rtp(1, 8), port, '127.0.0.1'); // the peer plays PCMA
    a.socket.send(rtp(2, 8), port, '127.0.0.1');
    a.socket.send(rtp(3, 0), port, '127.0.0.1'); // positive control: the agreed type is relayed
    await pollUntil(() => received.includes(3), { timeoutMs: 5000, what: 'the PCMU packet after the PCMA ones' });
    assert.deepEqual(received, [3], 'the PCMA packets were dropped');
    const said = lines.filter((l) => l.message === 'RTP from the peer dropped: payload type not negotiated');
    assert.equal(said.length, 1, 'said once, not per packet');
    assert.deepEqual(said[0]!.meta, { payloadType: 8, negotiated: [0] });
  });

  test('the SDP peer latches and connects at once; strangers are filtered; a re-INVITE reconnects to the new peer', { timeout: 20_000 }, async () => {
    const { leg, socket, port } = await newLeg();
    const a = await phone();
    const stranger = await phone();
    const b = await phone();
    const received: number[] = [];
    leg.on('rtp', (p) => received.push(p.readUInt16BE(2)));
    leg.setRemote(remoteOf(a.socket), true, [0]);
    assert.equal(connectedTo(socket), undefined, 'not connected before the peer is heard');

    a.socket.send(rtp(1), port, '127.0.0.1');
    await pollUntil(() => received.includes(1), { timeoutMs: 5000, what: "the SDP peer's first packet" });
    assert.equal(connectedTo(socket), a.socket.address().port, 'connected to the SDP peer on its first packet');
    leg.sendRtp(rtp(100));
    await pollUntil(() => a.got.some((m) => m.readUInt16BE(2) === 100), { timeoutMs: 5000, what: 'a send on the connected socket' });

    // A stranger's packets never reach the leg; the peer's, sent after them, do (positive control).
    stranger.socket.send(rtp(2), port, '127.0.0.1');
    a.socket.send(rtp(3), port, '127.0.0.1');
    await pollUntil(() => received.includes(3), { timeoutMs: 5000, what: "the peer's packet after the stranger's" });
    assert.ok(!received.includes(2), "the stranger's packet was filtered");

    // Re-INVITE: the media moves to phone B.
    leg.setRemote(remoteOf(b.socket), true, [0]);
    assert.equal(connectedTo(socket), undefined, 'disconnected by the re-INVITE');
    leg.sendRtp(rtp(101));
    await pollUntil(() => b.got.some((m) => m.readUInt16BE(2) === 101), { timeoutMs: 5000, what: 'an unconnected send to the new SDP address' });
    b.socket.send(rtp(4), port, '127.0.0.1');
    await pollUntil(() => received.includes(4), { timeoutMs: 5000, what: "the new peer's first packet" });
    assert.equal(connectedTo(socket), b.socket.address().port, 'connected to the new peer');
    leg.sendRtp(rtp(102));
    a.socket.send(rtp(5), port, '127.0.0.1');
    b.socket.send(rtp(6), port, '127.0.0.1');
    await pollUntil(() => received.includes(6) && b.got.some((m) => m.readUInt16BE(2) === 102), { timeoutMs: 5000, what: 'the new peer in both directions' });
    assert.ok(!received.includes(5), 'the old peer is now a stranger');
    assert.ok(!a.got.some((m) => m.readUInt16BE(2) >= 101), 'nothing went to the old peer after the re-INVITE');
  });

  test("'rtp' listeners are called directly: in order, once() once, removed ones no more; setRtpHandler first", { timeout: 20_000 }, async () => {
    const { leg, port } = await newLeg();
    const a = await phone();
    leg.setRemote(remoteOf(a.socket), true, [0]);
    const calls: string[] = [];
    const first = (p: Buffer): void => void calls.push(`first:${p.readUInt16BE(2)}`);
    leg.on('rtp', first);
    leg.once('rtp', (p) => calls.push(`once:${p.readUInt16BE(2)}`));
    leg.on('rtp', function (this: unknown, p) {
      calls.push(`this-is-leg:${this === leg}:${p.readUInt16BE(2)}`);
    });
    leg.setRtpHandler((p) => calls.push(`handler:${p.readUInt16BE(2)}`));
    a.socket.send(rtp(1), port, '127.0.0.1');
    await pollUntil(() => calls.length >= 4, { timeoutMs: 5000, what: 'packet 1 at every listener' });
    assert.deepEqual(calls, ['handler:1', 'first:1', 'once:1', 'this-is-leg:true:1']);

    calls.length = 0;
    leg.removeListener('rtp', first);
    leg.setRtpHandler(undefined);
    const late: number[] = [];
    leg.prependListener('rtp', (p) => late.push(p.readUInt16BE(2)));
    a.socket.send(rtp(2), port, '127.0.0.1');
    await pollUntil(() => calls.length >= 1 && late.length >= 1, { timeoutMs: 5000, what: 'packet 2' });
    assert.deepEqual(calls, ['this-is-leg:true:2'], 'removed and once() listeners and the cleared handler are not called');
    assert.deepEqual(late, [2], 'a listener added later is called');
    assert.equal(leg.activity().packetsIn, 2);
  });
});
