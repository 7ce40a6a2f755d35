import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgramModule from 'node:dgram';
import type dgram from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { nativeRelay, newRouteState, STATE } from '../../src/media/native/native-relay';
import type { NativeSrtpHandle } from '../../src/media/native/offload-types';
import { pollUntil } from '../helpers/wait-for';
import { collect, ptMapOf, routeConfig, rtp, to, UdpSockets, type Box } from '../helpers/native-route-sockets';
import { rng } from '../helpers/seeded-random';
import { socketFd, startReading, stopReading } from '../../src/media/webrtc/dgram-internals';

/**
 * The native relay addon (src/media/native/addon.c, relay.c, srtp.c) against hostile input and hostile
 * JavaScript: whole datagrams up to the largest UDP payload reach 'message' as on an unwatched socket; a
 * route's payload-type map and the number of watched sockets are bounded; a 'message' listener that
 * unwatches, closes, unroutes or re-routes sockets in the middle of a received batch, or throws, leaves the
 * relay consistent; thousands of random and mutated datagrams (RTP-, RTCP-, STUN-, DTLS-looking, truncated,
 * huge) from the routed peer and from strangers, on plain and SRTP routes, each have exactly one outcome
 * (forwarded, dropped or passed up) while the real packets keep flowing.
 */

const udp = new UdpSockets();
after(udp.closeAll);
const { bound } = udp;

function send(from: dgram.Socket, msg: Buffer, dest: dgram.Socket): void {
  from.send(msg, dest.address().port, '127.0.0.1');
}

describe('native relay addon against hostile input', () => {
  test('H1 whole datagrams up to 65 507 bytes reach message on a watched socket as on an unwatched one; a long RTP packet is forwarded whole', { timeout: 30_000 }, async () => {
    const relay = nativeRelay();
    const [peer, stranger, inS, outS, far, plain] = await Promise.all([bound(), bound(), bound(), bound(), bound(), bound()]);
    const sizes = [0, 1, 8191, 8192, 8193, 9000, 30_000, 65_507];
    const datagrams = sizes.map((n) => randomBytes(n).fill(0x00, 0, Math.min(n, 1))); // first byte 0: never RTP
    // positive control: an unwatched socket gets them whole
    // one at a time: a few 64 KiB datagrams would fill a default receive buffer
    const sendEach = async (from: dgram.Socket, dest: dgram.Socket, box: Box): Promise<void> => {
      for (const d of datagrams) {
        const n = box.msgs.length;
        send(from, d, dest);
        await pollUntil(() => box.msgs.length > n, { timeoutMs: 5000, what: `a datagram of ${d.length} bytes` });
      }
    };
    const atPlain = collect(plain);
    await sendEach(stranger, plain, atPlain);
    const atIn = collect(inS);
    const atFar = collect(far);
    relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
    assert.equal(relay.isWatched(inS), true);
    await sendEach(stranger, inS, atIn);
    await sendEach(peer, inS, atIn);
    const long = rtp(0, 7, 160, 0xabc, randomBytes(60_000));
    send(peer, long, inS);
    await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the long RTP forwarded' });
    const expect = (box: Box, from: dgram.Socket, start: number): void => {
      for (let i = 0; i < sizes.length; i++) {
        const got = box.msgs[start + i]!;
        assert.equal(got.from, `127.0.0.1:${from.address().port}`);
        assert.equal(got.msg.length, sizes[i], `datagram of ${sizes[i]} bytes arrives with its length`);
        assert.equal(got.size, sizes[i], 'rinfo.size');
        assert.ok(got.msg.equals(datagrams[i]!), `datagram of ${sizes[i]} bytes arrives byte for byte`);
      }
    };
    expect(atPlain, stranger, 0);
    expect(atIn, stranger, 0);
    expect(atIn, peer, sizes.length);
    assert.equal(atFar.msgs[0]!.msg.length, long.length, 'the 60 012-byte RTP packet is forwarded whole');
    assert.ok(atFar.msgs[0]!.msg.subarray(12).equals(long.subarray(12)), 'its payload byte for byte');
    assert.ok(relay.counters().passedUp >= 2 * sizes.length);
    relay.unwatch(inS);
  });

  test('H2 a route refuses payload-type map values outside 0..127/254/255 and a bad out fd; watching beyond the cap throws naming it', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [inS, outS, a, b, c] = await Promise.all([bound(), bound(), bound(), bound(), bound()]);
    const routes0 = relay.counters().routes;
    const bad = ptMapOf([[0, 0]]);
    bad[5] = 200; // would index clockRates[200]
    assert.throws(() => relay.route(inS, routeConfig({ out: outS, ptMap: bad })), /ptMap values must be payload types 0\.\.127/);
    assert.equal(relay.counters().routes, routes0, 'nothing installed');
    const fd = (s: dgram.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;
    assert.throws(() => relay.addon.route(fd(inS), -1, null, 0, null, 0, 1, ptMapOf([]), new Uint32Array(128), 8000, null, null, newRouteState()), /bad out fd/);
    relay.route(inS, routeConfig({ out: outS })); // positive control: a good map is taken
    assert.equal(relay.counters().routes, routes0 + 1);
    relay.unroute(inS, newRouteState());
    const base = relay.counters().watched;
    const limits = relay.addon.limits(base + 2);
    assert.equal(limits.maxWatched, base + 2);
    assert.equal(limits.datagram, 65_535);
    try {
      relay.watch(a);
      relay.watch(b);
      assert.throws(() => relay.watch(c), new RegExp(`at most ${base + 2} watched sockets per environment`));
      assert.equal(relay.isWatched(c), false, 'the refused socket is still read by Node');
      const atC = collect(c);
      send(a, Buffer.from('still node'), c);
      await pollUntil(() => atC.msgs.length >= 1, { timeoutMs: 5000, what: 'Node reads the refused socket' });
    } finally {
      relay.unwatch(a);
      relay.unwatch(b);
      relay.unwatch(inS);
      relay.addon.limits(16_384);
    }
    assert.equal(relay.counters().watched, base - 1);
  });

  test('H3 a message listener that unwatches, closes, unroutes another route or re-routes its own in the middle of a batch', { timeout: 30_000 }, async () => {
    const relay = nativeRelay();
    const before = relay.counters();
    // (a) unwatch mid-batch: the rest of the batch already read goes up as message, then Node reads
    {
      const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
      const atFar = collect(far);
      let rtpUp = 0;
      inS.on('message', (m) => {
        if (m[0] === 0x00) relay.unwatch(inS);
        else rtpUp++;
      });
      relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
      send(peer, Buffer.from([0, 1, 2, 3]), inS);
      for (let i = 0; i < 20; i++) send(peer, rtp(0, i, i * 160, 0xa), inS);
      await pollUntil(() => atFar.msgs.length + rtpUp >= 20, { timeoutMs: 5000, what: 'every RTP packet forwarded or passed up' });
      assert.equal(relay.isWatched(inS), false);
      assert.ok(rtpUp > 0, 'the batch after the unwatch went up');
      send(peer, rtp(0, 99, 0, 0xa), inS);
      await pollUntil(() => rtpUp + atFar.msgs.length >= 21, { timeoutMs: 5000, what: 'Node reads the socket again' });
      assert.equal(atFar.msgs.length + rtpUp, 21, 'none lost, none twice');
    }
    // (b) close mid-batch: nothing is emitted on the closed socket
    {
      const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
      let afterClose = 0;
      let closed = false;
      inS.on('message', () => {
        if (closed) afterClose++;
        else {
          closed = true;
          inS.close();
        }
      });
      relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far), ptMap: ptMapOf([]) }));
      for (let i = 0; i < 20; i++) send(peer, Buffer.from([0, i]), inS);
      await pollUntil(() => closed, { timeoutMs: 5000, what: 'the listener closed the socket' });
      // positive control for "nothing after close": another watched socket still gets its datagrams
      const other = await bound();
      const atOther = collect(other);
      relay.watch(other);
      send(peer, Buffer.from([0, 42]), other);
      await pollUntil(() => atOther.msgs.length >= 1, { timeoutMs: 5000, what: 'the relay reads on' });
      assert.equal(afterClose, 0, 'no message on the closed socket');
      relay.unwatch(other);
    }
    // (c) one route's listener unroutes and unwatches another route's socket, and replaces its own route
    {
      const [peerA, inA, outA, farA, peerB, inB, outB, farB] = await Promise.all([bound(), bound(), bound(), bound(), bound(), bound(), bound(), bound()]);
      const atFarA = collect(farA);
      const atFarB = collect(farB);
      const upB = collect(inB);
      let upA = 0;
      const stA = newRouteState();
      inA.on('message', (m) => {
        if (m[0] === 0x00) {
          relay.unroute(inB, newRouteState());
          relay.unwatch(inB);
          relay.route(inA, routeConfig({ peer: to(peerA), out: outA, dest: to(farA), outSsrc: 0x5555, state: newRouteState() }));
        } else upA++;
      });
      relay.route(inA, routeConfig({ peer: to(peerA), out: outA, dest: to(farA), state: stA }));
      relay.route(inB, routeConfig({ peer: to(peerB), out: outB, dest: to(farB) }));
      for (let i = 0; i < 10; i++) send(peerA, rtp(0, i, i, 0xa), inA);
      send(peerA, Buffer.from([0, 0, 0]), inA);
      for (let i = 10; i < 30; i++) send(peerA, rtp(0, i, i, 0xa), inA);
      for (let i = 0; i < 30; i++) send(peerB, rtp(0, i, i, 0xb), inB);
      await pollUntil(() => atFarA.msgs.length + upA >= 30 && atFarB.msgs.length + upB.msgs.length >= 30, {
        timeoutMs: 5000,
        what: 'every packet of both routes forwarded or passed up',
      });
      assert.equal(upA, 0, 'A stays routed throughout');
      assert.ok(atFarA.msgs.slice(10).every((m) => m.msg.readUInt32BE(8) === 0x5555), 'after the listener, the new route of A forwards');
      assert.equal(atFarB.msgs.length + upB.msgs.length, 30, 'B: forwarded before, passed up after');
      relay.unwatch(inA);
    }
    const now = relay.counters();
    assert.equal(now.watched, before.watched, 'every socket given back');
    assert.equal(now.routes, before.routes, 'every route gone');
  });

  test('H4 a throwing message listener: each throw goes to uncaughtException, the relay forwards and passes up on', { timeout: 60_000 }, () => {
    const script = `
      const dgram = require('node:dgram');
      const { nativeRelay, newRouteState } = require(process.argv[1]);
      const { pollUntil } = require(process.argv[2]);
      let uncaught = 0;
      process.on('uncaughtException', (err) => { if (err.message === 'listener bug') uncaught++; else throw err; });
      const bound = () => new Promise((res) => { const s = dgram.createSocket('udp4'); s.bind(0, '127.0.0.1', () => res(s)); });
      (async () => {
        const [peer, stranger, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound(), bound()]);
        let heard = 0;
        inS.on('message', () => { heard++; throw new Error('listener bug'); });
        let atFar = 0;
        far.on('message', () => atFar++);
        const relay = nativeRelay();
        const ptMap = new Uint8Array(128).fill(255); ptMap[0] = 0;
        relay.route(inS, { peer: { address: '127.0.0.1', port: peer.address().port }, out: outS, dest: { address: '127.0.0.1', port: far.address().port },
          outSsrc: 1, ptMap, clockRates: new Uint32Array(128).fill(8000), receiveClockRate: 8000, srtpIn: null, srtpOut: null, state: newRouteState() });
        const port = inS.address().port;
        for (let i = 0; i < 100; i++) {
          stranger.send(Buffer.from([0, i]), port, '127.0.0.1');
          const p = Buffer.alloc(20); p[0] = 0x80; p.writeUInt16BE(i, 2); p.writeUInt32BE(7, 8);
          peer.send(p, port, '127.0.0.1');
          if (i % 10 === 9) await new Promise((r) => setImmediate(r));
        }
        await pollUntil(() => atFar >= 100 && uncaught >= 100, { timeoutMs: 20000, what: 'all forwarded, every throw reported' }).catch(() => {});
        const c = relay.counters();
        console.log(JSON.stringify({ heard, uncaught, atFar, passedUp: c.passedUp, forwarded: c.forwarded }));
        process.exit(0);
      })();
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script, path.resolve('src/media/native/native-relay.ts'), path.resolve('test/helpers/wait-for.ts')], { encoding: 'utf8', timeout: 50_000 });
    assert.deepEqual(JSON.parse(out), { heard: 100, uncaught: 100, atFar: 100, passedUp: 100, forwarded: 100 });
  });

  test('H6 a send that fails (ICMP unreachable on a connected out socket: partial sendmmsg, then ECONNREFUSED) drops that packet only, counted on the relay and on its route', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, gone] = await Promise.all([bound(), bound(), bound(), bound()]);
    const gonePort = gone.address().port;
    gone.close(); // nobody listens there any more: each datagram sent there comes back as ICMP port unreachable
    outS.connect(gonePort, '127.0.0.1');
    await once(outS, 'connect');
    assert.equal(stopReading(outS), true); // the socket's pending error is left for its sends (no receive side takes it)
    const before = relay.counters();
    relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: null }));
    for (let i = 0; i < 20; i++) {
      send(peer, rtp(0, i, i * 160, 0xa), inS);
      await pollUntil(() => relay.counters().forwarded - before.forwarded >= i + 1, { timeoutMs: 5000, what: `packet ${i} through the route` });
    }
    const st = newRouteState();
    assert.equal(relay.unroute(inS, st), true);
    const errors = relay.counters().sendErrors - before.sendErrors;
    assert.ok(errors > 0 && errors < 20, `some sends refused, not all (${errors})`);
    assert.equal(st[STATE.sendErrors], errors, 'each refused send counted on its route');
    assert.equal(st[STATE.forwarded], 20);
    relay.unwatch(inS);
    startReading(outS);
  });

  test('H7 worker threads with a native relay of their own, terminated while datagrams flow, in a process whose main thread never loaded the addon: the process lives on', { timeout: 120_000 }, () => {
    // the last environment that loaded the addon is gone when its worker's loop closes the relay's poll handle
    const script = `
      const { Worker } = require('node:worker_threads');
      const dgram = require('node:dgram');
      const bound = () => new Promise((res) => { const s = dgram.createSocket('udp4'); s.bind(0, '127.0.0.1', () => res(s)); });
      const boot = "const { workerData } = require('node:worker_threads'); require(workerData.tsxApi).require(workerData.module, workerData.module);";
      (async () => {
        const [far, sender] = await Promise.all([bound(), bound()]);
        let forwarded = 0;
        far.on('message', () => forwarded++);
        const rounds = 12;
        for (let round = 0; round < rounds; round++) {
          const w = new Worker(boot, { eval: true, workerData: { far: far.address().port, module: process.argv[1], tsxApi: require.resolve('tsx/cjs/api') } });
          const port = await new Promise((res) => w.once('message', res));
          const p = Buffer.alloc(40); p[0] = 0x80;
          const q = Buffer.alloc(40);
          for (let i = 0; i < 400; i++) sender.send(i % 2 ? p : q, port, '127.0.0.1');
          await new Promise((res) => setImmediate(res));
          await w.terminate();
        }
        console.log(JSON.stringify({ rounds, forwarded: forwarded > 0, mainLoaded: Object.keys(require.cache).some((f) => f.includes('native-relay')) }));
        process.exit(0);
      })();
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script, path.resolve('test/helpers/native-relay-worker.ts')], { encoding: 'utf8', timeout: 100_000 });
    assert.deepEqual(JSON.parse(out), { rounds: 12, forwarded: true, mainLoaded: false });
  });

  test('H8 closing the out socket of a route removes the route first: nothing is sent from a closed (or reused) fd, the in socket passes up', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const up = collect(inS);
    const before = relay.counters();
    relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
    send(peer, rtp(0, 1, 160, 0xa), inS);
    await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the route forwards (positive control)' });
    outS.close();
    assert.equal(relay.counters().routes, before.routes, 'the route went with its out socket');
    for (let i = 2; i < 12; i++) send(peer, rtp(0, i, i * 160, 0xa), inS);
    await pollUntil(() => up.msgs.length >= 10, { timeoutMs: 5000, what: 'the packets passed up' });
    assert.equal(relay.counters().sendErrors, before.sendErrors, 'no send from the closed fd');
    assert.equal(relay.isWatched(inS), true, 'the in socket stays watched');
    assert.equal(relay.sync(inS, newRouteState()), false, 'a later sync finds no route');
    relay.unwatch(inS);
  });

  test('H9 a route state array holding NaN, infinities and out-of-range numbers is taken without undefined behaviour (SSRCs none, counts 0)', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const state = newRouteState();
    const odd = [NaN, Infinity, -Infinity, 1e300, -1e300, 2 ** 53, -0.5];
    for (let i = 0; i < 18; i++) state[i] = odd[i % odd.length]!;
    relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far), state }));
    for (let i = 0; i < 5; i++) send(peer, rtp(0, 100 + i, 1000 + 160 * i, 0xabc), inS);
    await pollUntil(() => atFar.msgs.length >= 5, { timeoutMs: 5000, what: '5 packets forwarded' });
    const st = newRouteState();
    assert.equal(relay.unroute(inS, st), true);
    assert.equal(st[STATE.rsSsrc], 0xabc, 'the reception statistics follow the real source');
    assert.equal(st[STATE.rwLastInSsrc], 0xabc);
    assert.ok(Number.isFinite(st[STATE.rsReceived]!) && Number.isFinite(st[STATE.rsJitter]!), 'finite figures out');
    // the same through the test entry points
    const s2 = newRouteState();
    s2.fill(NaN);
    relay.addon.reception(s2, 8000, 1, 1, 1, NaN);
    relay.addon.rewrite(s2, rtp(0, 1, 1, 1), 0, 8000, 1, Infinity);
    relay.unwatch(inS);
  });

  /** dgram's state of a socket (its UDP handle): what a close behind the relay's back goes through. */
  const handleOf = (s: dgram.Socket): { close(): void } => {
    const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol')!;
    return (s as unknown as Record<symbol, { handle: { close(): void } }>)[sym].handle;
  };
  /** New bound sockets until one has fd number `fd` (the kernel hands out the lowest free number). */
  async function socketWithFd(fd: number): Promise<dgram.Socket> {
    for (let i = 0; i < 64; i++) {
      const s = await bound();
      if (socketFd(s) === fd) return s;
    }
    throw new Error(`fd ${fd} not reused by 64 new sockets`);
  }
  const closeWays = {
    "dgram's own close, not the socket's": (s: dgram.Socket) => dgramModule.Socket.prototype.close.call(s),
    'its UDP handle closed (no close event)': (s: dgram.Socket) => handleOf(s).close(),
  };

  for (const [way, closeBehind] of Object.entries(closeWays)) {
    test(`H10 the out socket of a route closed behind the relay's back (${way}), its fd number taken by a new socket: no packet of the route leaves through the new socket, the route goes with its figures`, { timeout: 20_000 }, async () => {
      const relay = nativeRelay();
      const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
      const atFar = collect(far);
      const up = collect(inS);
      const base = relay.counters();
      const figures: Float64Array[] = [];
      const off = relay.onSocketGone((s) => {
        const st = newRouteState();
        if (s === outS && relay.unroute(inS, st)) figures.push(st);
      });
      try {
        relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
        send(peer, rtp(0, 1, 160, 0xa), inS);
        await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the route forwards (positive control)' });
        assert.equal(atFar.msgs[0]!.from, `127.0.0.1:${outS.address().port}`, 'from the out socket');
        const fd = socketFd(outS)!;
        closeBehind(outS);
        const stranger = await socketWithFd(fd);
        const atStranger = collect(stranger);
        for (let i = 2; i < 12; i++) send(peer, rtp(0, i, i * 160, 0xa), inS);
        await pollUntil(() => up.msgs.length >= 10, { timeoutMs: 5000, what: 'the packets passed up to the in socket' });
        send(peer, Buffer.from('to the stranger'), stranger);
        await pollUntil(() => atStranger.msgs.length >= 1, { timeoutMs: 5000, what: 'the new socket is read by Node (positive control)' });
        assert.equal(atFar.msgs.length, 1, 'nothing more reached the destination: not through the new socket either');
        assert.equal(relay.counters().routes, base.routes, 'the route is gone');
        assert.equal(relay.counters().forwarded - base.forwarded, 1);
        assert.equal(figures.length, 1, 'the gone listener took the route');
        assert.equal(figures[0]![STATE.forwarded], 1, "the route's figures written back");
        assert.equal(figures[0]![STATE.inPackets], 1);
        assert.equal(relay.isWatched(inS), true, 'the in socket stays watched');
        assert.ok(relay.socketsLost > 0);
      } finally {
        off();
        relay.unwatch(inS);
      }
      assert.equal(relay.counters().watched, base.watched);
    });
  }

  test("H11 a watched, routed in socket closed behind the relay's back, its fd number taken by a new socket: the route goes with its figures, the new socket is Node's and can be watched and routed", { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const base = relay.counters();
    const figures: Float64Array[] = [];
    const off = relay.onSocketGone((s) => {
      const st = newRouteState();
      if (s === inS && relay.unroute(inS, st)) figures.push(st);
    });
    try {
      relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
      send(peer, rtp(0, 1, 160, 0xa), inS);
      await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the route forwards (positive control)' });
      const fd = socketFd(inS)!;
      dgramModule.Socket.prototype.close.call(inS);
      const stranger = await socketWithFd(fd);
      assert.equal(figures.length, 1, 'the gone listener took the route');
      assert.equal(figures[0]![STATE.forwarded], 1, "the route's figures written back");
      assert.equal(relay.isWatched(inS), false);
      assert.equal(relay.counters().watched, base.watched, 'the closed socket is no longer watched');
      // the new socket with the same number: Node reads it, and the relay takes it like any other
      const atStranger = collect(stranger);
      send(peer, rtp(0, 2, 320, 0xa), stranger);
      await pollUntil(() => atStranger.msgs.length >= 1, { timeoutMs: 5000, what: 'Node reads the new socket' });
      assert.equal(atFar.msgs.length, 1, 'not forwarded by the old route');
      relay.route(stranger, routeConfig({ peer: to(peer), out: outS, dest: to(far) }));
      send(peer, rtp(0, 3, 480, 0xa), stranger);
      await pollUntil(() => atFar.msgs.length >= 2, { timeoutMs: 5000, what: 'a route on the new socket forwards' });
      relay.unwatch(stranger);
    } finally {
      off();
    }
    assert.equal(relay.counters().watched, base.watched);
    assert.equal(relay.counters().routes, base.routes);
  });

  for (const kind of ['plain', 'AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'] as const) {
    test(`H5 fuzz (${kind}): 4000 random and mutated datagrams from the routed peer and strangers; real packets all arrive, every datagram has one outcome`, { timeout: 120_000 }, async () => {
      const relay = nativeRelay();
      const addon = relay.addon;
      const [peer, stranger, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound(), bound()]);
      const r = rng(kind === 'plain' ? 11 : kind.length);
      const srtp = kind !== 'plain';
      const profile = kind === 'AEAD_AES_128_GCM' ? 7 : 1;
      const keys = (): [Uint8Array, Uint8Array, Uint8Array] =>
        profile === 7 ? [randomBytes(16), new Uint8Array(0), randomBytes(12)] : [randomBytes(16), randomBytes(20), randomBytes(14)];
      const inKeys = keys();
      const outKeys = keys();
      const make = (k: [Uint8Array, Uint8Array, Uint8Array]): NativeSrtpHandle => addon.srtpCreate(profile, k[0], k[1], k[2]);
      const tx = srtp ? make(inKeys) : null; // the peer's sender
      const rx = srtp ? make(outKeys) : null; // the far side's receiver
      const overhead = tx ? addon.srtpOverhead(tx) : 0;
      const protect = (p: Buffer): Buffer => {
        if (!tx) return p;
        const b = Buffer.alloc(p.length + overhead);
        p.copy(b);
        const n = addon.srtpProtectRtp(tx, b, p.length);
        assert.ok(n > 0);
        return b.subarray(0, n);
      };
      const atFar = collect(far);
      const atIn = collect(inS);
      const state = newRouteState();
      relay.route(inS, routeConfig({ peer: to(peer), out: outS, dest: to(far), ptMap: ptMapOf([[0, 0], [8, 8], [101, 101]]), srtpIn: srtp ? make(inKeys) : null, srtpOut: srtp ? make(outKeys) : null, state }));
      const c0 = relay.counters();
      const sentReal: Buffer[] = [];
      let seq = 1000;
      let sent = 0;
      let pendingBytes = 0;
      const realPayload = (n: number): Buffer => Buffer.from(`real-${n}-`.padEnd(40, '.'));
      const fuzz = (): Buffer => {
        const t = r();
        const len = Math.floor(r() * 300);
        const b = Buffer.alloc(len);
        for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
        if (t < 0.3 && len > 0) {
          b[0] = 0x80 | (b[0]! & 0x3f); // RTP-looking: CSRC count, extension, padding bits random
          if (len > 1) b[1] = r() < 0.5 ? b[1]! & 0x7f : [0, 8, 101][Math.floor(r() * 3)]!;
        } else if (t < 0.45 && len > 1) {
          b[0] = 0x80 | (b[0]! & 0x1f);
          b[1] = 192 + Math.floor(r() * 32); // RTCP-looking
        } else if (t < 0.55 && len > 0) {
          b[0] = Math.floor(r() * 2); // STUN-looking
        } else if (t < 0.65 && len > 0) {
          b[0] = 20 + Math.floor(r() * 44); // DTLS-looking
        } else if (t < 0.85 && sentReal.length > 0) {
          // a real packet mutated, truncated, extended, or replayed as is
          const base = Buffer.from(sentReal[Math.floor(r() * sentReal.length)]!);
          const m = r();
          if (m < 0.3) return base.subarray(0, Math.floor(r() * base.length));
          if (m < 0.4) return base; // replay
          if (m < 0.5) return Buffer.concat([base, randomBytes(Math.floor(r() * 64))]);
          const flips = 1 + Math.floor(r() * 4);
          for (let f = 0; f < flips; f++) base[Math.floor(r() * base.length)] ^= 1 << Math.floor(r() * 8);
          if (r() < 0.3) base[0] = (base[0]! & 0xc0) | Math.floor(r() * 64); // CSRC count / extension / padding
          return base;
        } else if (t < 0.87) {
          return randomBytes(1000 + Math.floor(r() * 64_000)); // huge
        }
        return b;
      };
      const settle = async (): Promise<void> => {
        // each datagram has exactly one outcome; wait for them all before sending more (no kernel buffer overflow)
        await pollUntil(
          () => {
            const c = relay.counters();
            return c.passedUp - c0.passedUp + (c.forwarded - c0.forwarded) + (c.dropped - c0.dropped) >= sent;
          },
          { timeoutMs: 10_000, what: `outcomes for ${sent} datagrams` },
        );
        pendingBytes = 0;
      };
      let real = 0;
      for (let i = 0; i < 4000; i++) {
        const fromPeer = r() < 0.6;
        const d = fuzz();
        send(fromPeer ? peer : stranger, d, inS);
        sent++;
        pendingBytes += d.length + 600;
        if (i % 10 === 0) {
          const p = protect(rtp(0, seq++, seq * 160, 0xfeed, realPayload(real++)));
          sentReal.push(p);
          send(peer, p, inS);
          sent++;
          pendingBytes += p.length + 600;
        }
        if (pendingBytes > 100_000 || i % 64 === 63) await settle();
      }
      await settle();
      const c = relay.counters();
      const passedUp = c.passedUp - c0.passedUp;
      const forwarded = c.forwarded - c0.forwarded;
      const dropped = c.dropped - c0.dropped;
      assert.equal(passedUp + forwarded + dropped, sent, 'one outcome each');
      await pollUntil(() => atFar.msgs.length >= forwarded, { timeoutMs: 10_000, what: `${forwarded} forwarded datagrams at the far side` });
      assert.equal(c.sendErrors - c0.sendErrors, 0);
      await pollUntil(() => atIn.msgs.length >= passedUp, { timeoutMs: 10_000, what: `${passedUp} passed up as message` });
      assert.equal(atIn.msgs.length, passedUp, 'message once per passed-up datagram');
      // the real packets, decrypted at the far side when SRTP
      const seen = new Set<string>();
      for (const { msg } of atFar.msgs) {
        let clear = msg;
        if (rx) {
          const b = Buffer.from(msg);
          const n = addon.srtpUnprotectRtp(rx, b);
          if (n < 0) continue;
          clear = b.subarray(0, n);
        }
        const text = clear.subarray(12).toString('latin1');
        if (text.startsWith('real-')) seen.add(text.split('-')[1]!);
      }
      const missing = Array.from({ length: real }, (_, k) => String(k)).filter((k) => !seen.has(k));
      assert.deepEqual(missing, [], `all ${real} real packets arrived`);
      const st = newRouteState();
      assert.equal(relay.unroute(inS, st), true);
      assert.equal(st[STATE.forwarded], forwarded, "the route's own count is the relay's");
      if (srtp) assert.ok(st[STATE.srtpRefused]! > 0, 'mutated and replayed SRTP refused and counted');
      relay.unwatch(inS);
    });
  }
});
