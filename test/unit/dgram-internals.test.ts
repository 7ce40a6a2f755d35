import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { socketFd, startReading, stopReading, useSynchronousIpLookup } from '../../src/media/webrtc/dgram-internals';
import { pollUntil } from '../helpers/wait-for';

/**
 * Pins the node:dgram internals src/media/webrtc/dgram-internals.ts relies on (the socket's state under
 * the 'state symbol' symbol, its handle's `lookup(address, callback)` used by every unconnected send) and
 * what the change does: a send to an IP literal resolves its address within `send()` instead of on a later
 * tick, and the datagram still arrives.
 */

type Lookup = (address: string, cb: (err: Error | null, ip?: string, family?: number) => void) => unknown;

function handleOf(s: dgram.Socket): { lookup: Lookup } {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  assert.ok(sym, "node:dgram socket has no 'state symbol' own property");
  const state = (s as unknown as Record<symbol, { handle: { lookup: Lookup } }>)[sym];
  assert.equal(typeof state.handle.lookup, 'function', 'state.handle.lookup is a function');
  return state.handle;
}

/** Sends one datagram to `to` and reports whether the address lookup answered before send() returned. */
function sendAndWatchLookup(s: dgram.Socket, port: number, address: string): { answeredInsideSend: boolean; called: boolean } {
  const handle = handleOf(s);
  const inner = handle.lookup;
  const seen = { answeredInsideSend: false, called: false };
  let inside = false;
  handle.lookup = function (this: unknown, a, cb) {
    seen.called = true;
    return inner.call(this, a, (err, ip, family) => {
      if (inside) seen.answeredInsideSend = true;
      cb(err, ip, family);
    });
  };
  inside = true;
  s.send(Buffer.from('x'), port, address);
  inside = false;
  handle.lookup = inner;
  return seen;
}

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

describe('useSynchronousIpLookup (dgram-internals.ts)', { timeout: 10_000 }, () => {
  test("node:dgram has the shape: a send to an IP literal goes through state.handle.lookup, answered on a later tick (control)", async () => {
    const rx = await bound();
    const tx = await bound();
    try {
      const got = once(rx, 'message');
      const seen = sendAndWatchLookup(tx, rx.address().port, '127.0.0.1');
      assert.equal(seen.called, true, 'the unconnected send asked state.handle.lookup');
      assert.equal(seen.answeredInsideSend, false, 'dns.lookup answers an IP literal on a later tick');
      const [msg] = await got;
      assert.equal(String(msg), 'x');
    } finally {
      tx.close();
      rx.close();
    }
  });

  test('after it, the IP literal is resolved inside send() and the datagram arrives; a host name still goes through the original lookup', async () => {
    const rx = await bound();
    const tx = await bound();
    try {
      assert.equal(useSynchronousIpLookup(tx), true);
      assert.equal(useSynchronousIpLookup(tx), true, 'idempotent');
      const got = once(rx, 'message');
      const seen = sendAndWatchLookup(tx, rx.address().port, '127.0.0.1');
      assert.equal(seen.answeredInsideSend, true);
      const [msg] = await got;
      assert.equal(String(msg), 'x');
      const byName = once(rx, 'message');
      tx.send(Buffer.from('y'), rx.address().port, 'localhost');
      const [msg2] = await byName;
      assert.equal(String(msg2), 'y');
    } finally {
      tx.close();
      rx.close();
    }
  });
});

describe('socketFd / stopReading / startReading (dgram-internals.ts, for the native relay)', { timeout: 10_000 }, () => {
  test("a bound socket's UDP handle has fd, recvStop and recvStart: Node stops and resumes reading, sends keep working meanwhile", async () => {
    const rx = await bound();
    const tx = await bound();
    try {
      const fd = socketFd(rx);
      assert.equal(typeof fd, 'number');
      assert.ok(fd! > 2, 'a real file descriptor');
      const seen: string[] = [];
      rx.on('message', (m) => seen.push(String(m)));
      // control: Node reads
      tx.send(Buffer.from('a'), rx.address().port, '127.0.0.1');
      await pollUntil(() => seen.includes('a'), { timeoutMs: 5000, what: 'a read by Node' });
      assert.equal(stopReading(rx), true);
      tx.send(Buffer.from('b'), rx.address().port, '127.0.0.1');
      // the stopped socket still sends: tx gets its datagram (the positive marker that b was delivered to rx's queue first)
      const back = once(tx, 'message');
      rx.send(Buffer.from('from rx'), tx.address().port, '127.0.0.1');
      assert.equal(String((await back)[0]), 'from rx');
      assert.deepEqual(seen, ['a'], 'b waits in the kernel while Node does not read');
      assert.equal(startReading(rx), true);
      await pollUntil(() => seen.includes('b'), { timeoutMs: 5000, what: 'b read once Node reads again' });
    } finally {
      tx.close();
      rx.close();
    }
  });

  test('an unbound or closed socket has no fd', async () => {
    const s = dgram.createSocket('udp4');
    assert.equal(socketFd(s), undefined);
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    assert.equal(typeof socketFd(s), 'number');
    s.close();
    assert.equal(socketFd(s), undefined);
  });
});
