import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgramModule from 'node:dgram';
import type dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { nativeRelay } from '../../src/media/native/native-relay';
import { pollUntil } from '../helpers/wait-for';
import { collect, routeConfig, rtp, to, UdpSockets } from '../helpers/native-route-sockets';
import { socketFd } from '../../src/media/webrtc/dgram-internals';

/**
 * The native relay and TCP connections that take the fd number of a UDP socket closed behind its back
 * (docs/native-relay.md, "Sockets closed behind the relay's back"): ferry media's control WebSocket and
 * /stats connections are TCP sockets of the same process, and the kernel gives a new connection the lowest
 * free number, often one a closed WebRTC candidate socket just freed. Neither a route's out socket nor a
 * watched in socket closed that way may make the relay write RTP into such a connection or read (steal)
 * its bytes: the stream stays whole both ways, and Node keeps reading it.
 */

const udp = new UdpSockets();
after(udp.closeAll);
const { bound } = udp;

interface TcpPair {
  /** the accepted side (this process's server socket, as ferry media's control connection is) */
  accepted: net.Socket;
  client: net.Socket;
  received: Buffer[];
}

const opened: net.Socket[] = [];
const server = net.createServer();
const accepted: net.Socket[] = [];
server.on('connection', (s) => accepted.push(s));
after(() => {
  for (const s of opened) s.destroy();
  for (const s of accepted) s.destroy();
  server.close();
});

function fdOf(s: net.Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** New TCP connections to this process's own listener until one of its two ends has fd number `fd`. */
async function tcpWithFd(fd: number): Promise<{ pair: TcpPair; side: 'accepted' | 'client' }> {
  if (!server.listening) {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  }
  const port = (server.address() as net.AddressInfo).port;
  for (let i = 0; i < 64; i++) {
    const before = accepted.length;
    const client = net.connect(port, '127.0.0.1');
    opened.push(client);
    await once(client, 'connect');
    await pollUntil(() => accepted.length > before, { timeoutMs: 5000, what: 'the connection accepted' });
    const acc = accepted[accepted.length - 1]!;
    const pair: TcpPair = { accepted: acc, client, received: [] };
    if (fdOf(acc) === fd) return { pair, side: 'accepted' };
    if (fdOf(client) === fd) return { pair, side: 'client' };
  }
  throw new Error(`fd ${fd} not reused by 64 new TCP connections`);
}

function send(from: dgram.Socket, msg: Buffer, dest: dgram.Socket): void {
  from.send(msg, dest.address().port, '127.0.0.1');
}

describe('native relay: a TCP connection on the fd number of a UDP socket closed behind its back', () => {
  test("N1 a route's out socket closed behind the relay's back, its number taken by a TCP connection: no RTP is written into the stream, which stays whole", { timeout: 30_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const up = collect(inS);
    try {
      relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
      send(peer, rtp(0, 1, 160, 0xa), inS);
      await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the route forwards (positive control)' });
      const fd = socketFd(outS)!;
      dgramModule.Socket.prototype.close.call(outS); // dgram's own close, not the socket's wrapper
      const { pair, side } = await tcpWithFd(fd);
      const onFd = side === 'accepted' ? pair.accepted : pair.client;
      const other = side === 'accepted' ? pair.client : pair.accepted;
      const atOther: Buffer[] = [];
      other.on('data', (b: Buffer) => atOther.push(b));
      for (let i = 2; i < 22; i++) send(peer, rtp(0, i, i * 160, 0xa), inS);
      await pollUntil(() => up.msgs.length >= 20, { timeoutMs: 5000, what: 'the packets passed up to the in socket' });
      // positive control: the stream carries what is written into it, and only that
      onFd.write('whole\n');
      await pollUntil(() => Buffer.concat(atOther).includes('whole\n'), { timeoutMs: 5000, what: 'the stream carries its own bytes' });
      assert.equal(Buffer.concat(atOther).toString(), 'whole\n', 'no RTP written into the TCP connection');
      assert.equal(atFar.msgs.length, 1, 'nothing more forwarded');
    } finally {
      relay.unwatch(inS);
    }
  });

  test("N2 a watched, routed in socket closed behind the relay's back, its number taken by a TCP connection: Node reads every byte of the stream, the relay none", { timeout: 30_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const base = relay.counters();
    relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
    send(peer, rtp(0, 1, 160, 0xa), inS);
    await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the route forwards (positive control)' });
    const fd = socketFd(inS)!;
    dgramModule.Socket.prototype.close.call(inS);
    const { pair, side } = await tcpWithFd(fd);
    const onFd = side === 'accepted' ? pair.accepted : pair.client;
    const other = side === 'accepted' ? pair.client : pair.accepted;
    const got: Buffer[] = [];
    onFd.on('data', (b: Buffer) => got.push(b));
    const payload = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 4; i++) other.write(payload);
    other.write('end\n');
    await pollUntil(() => Buffer.concat(got).length >= 4 * payload.length + 4, { timeoutMs: 10_000, what: 'Node read the whole stream on the reused number' });
    assert.equal(Buffer.concat(got).length, 4 * payload.length + 4, 'not a byte missing');
    assert.equal(relay.counters().watched, base.watched, 'the closed socket is no longer watched');
    assert.equal(relay.counters().routes, base.routes, 'its route is gone');
    assert.equal(atFar.msgs.length, 1, 'nothing of the stream forwarded');
  });
});
