import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';
import { ReceptionStatistics } from '../../src/media/rtcp/reception-statistics';
import { nativeRelay, newRouteState, readReceptionState, STATE, writeRewriterState } from '../../src/media/native/native-relay';
import { PT_NOT_NEGOTIATED } from '../../src/media/native/offload-types';
import { pollUntil } from '../helpers/wait-for';
import { collect, ptMapOf, routeConfig, rtp, UdpSockets } from '../helpers/native-route-sockets';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { buildNative, nativeAddonPath, NativeBuildError } from '../../src/media/native/build-native';
import { chooseRelay } from '../../src/media/native/relay-choice';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rng as seededRandom } from '../helpers/seeded-random';

/**
 * The native relay addon (src/media/native/addon.c, relay.c) on real sockets: a route forwards from its
 * peer only, rewrites as RtpStreamRewriter does, counts as ReceptionStatistics does (the same code the
 * forwarder runs, fed the same sequences as the JavaScript), passes everything else up as 'message'
 * (RTCP, strangers, STUN-like bytes), reports ECONNREFUSED as 'error', and gives sockets back on unwatch
 * and on close.
 */

const udp = new UdpSockets();
after(udp.closeAll);
const { bound } = udp;

describe('native relay addon', () => {
  test('a route forwards its peer RTP rewritten (PT map, SSRC) and passes up a stranger, RTCP and STUN-like bytes as message', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, stranger, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const up = collect(inS);
    const state = newRouteState();
    relay.route(inS, routeConfig({ peer: { address: '127.0.0.1', port: peer.address().port }, out: outS, dest: { address: '127.0.0.1', port: far.address().port }, ptMap: ptMapOf([[0, 8]]), state }));
    const inPort = inS.address().port;
    for (let i = 0; i < 5; i++) peer.send(rtp(0, 100 + i, 1000 + 160 * i, 0xabc), inPort, '127.0.0.1');
    await pollUntil(() => atFar.msgs.length >= 5, { timeoutMs: 5000, what: '5 packets forwarded' });
    assert.ok(atFar.msgs.every((m) => m.from === `127.0.0.1:${outS.address().port}`), 'sent from the out socket');
    assert.ok(atFar.msgs.every((m) => (m.msg[1]! & 0x7f) === 8 && m.msg.readUInt32BE(8) === 0x11223344), 'PT mapped 0 -> 8, out SSRC stamped');
    assert.equal(up.msgs.length, 0, 'nothing passed up so far');
    // a stranger's RTP, the peer's RTCP and STUN-like bytes go up to the socket's listeners
    stranger.send(rtp(0, 1, 1, 0xdead), inPort, '127.0.0.1');
    peer.send(Buffer.from([0x80, 201, 0, 1, 0, 0, 0, 7]), inPort, '127.0.0.1');
    const stun = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 9)]);
    peer.send(stun, inPort, '127.0.0.1');
    await pollUntil(() => up.msgs.length >= 3, { timeoutMs: 5000, what: 'three datagrams passed up' });
    assert.equal(up.msgs[0]!.from, `127.0.0.1:${stranger.address().port}`);
    assert.equal(up.msgs[0]!.msg.readUInt32BE(8), 0xdead, 'the stranger packet as it came');
    assert.equal(up.msgs[1]!.msg[1], 201, 'RTCP');
    assert.deepEqual(up.msgs[2]!.msg, stun, 'STUN-like bytes intact');
    assert.equal(atFar.msgs.length, 5, 'none of them forwarded');
    assert.ok(relay.sync(inS, state));
    assert.deepEqual([state[STATE.inPackets], state[STATE.outPackets], state[STATE.forwarded], state[STATE.rsReceived], state[STATE.rsMaxSeq]], [5, 5, 5, 5, 104]);
    assert.equal(state[STATE.inBytes], 5 * 172);
    assert.equal(state[STATE.outPayload], 5 * 160);
    assert.ok(relay.unroute(inS, state));
    assert.equal(state[STATE.inPackets], 0, 'sync reset the increments');
    relay.unwatch(inS);
    // given back: Node reads the socket again
    peer.send(rtp(0, 200, 1, 0xabc), inPort, '127.0.0.1');
    await pollUntil(() => up.msgs.length >= 4, { timeoutMs: 5000, what: 'Node reads the socket after unwatch' });
    assert.equal(atFar.msgs.length, 5);
  });

  test('payload types: unknown ones dropped, not-negotiated ones counted as the sink drops them', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const [peer, inS, outS, far] = await Promise.all([bound(), bound(), bound(), bound()]);
    const atFar = collect(far);
    const state = newRouteState();
    relay.route(inS, routeConfig({ out: outS, dest: { address: '127.0.0.1', port: far.address().port }, ptMap: ptMapOf([[0, 0], [8, PT_NOT_NEGOTIATED]]), state }));
    const port = inS.address().port;
    peer.send(rtp(8, 1, 1, 5), port, '127.0.0.1');
    peer.send(rtp(9, 2, 2, 5), port, '127.0.0.1');
    peer.send(rtp(0, 3, 3, 5), port, '127.0.0.1'); // the positive control
    await pollUntil(() => atFar.msgs.length >= 1, { timeoutMs: 5000, what: 'the PCMU packet' });
    const seen = { in: 0, flowOut: 0, flowIn: 0, droppedNoCodec: 0 };
    await pollUntil(
      () => {
        relay.sync(inS, state);
        seen.in += state[STATE.inPackets]!;
        seen.flowOut += state[STATE.flowOut]!;
        seen.flowIn += state[STATE.flowIn]!;
        seen.droppedNoCodec += state[STATE.droppedNoCodec]!;
        return seen.in >= 3;
      },
      { timeoutMs: 5000, what: 'all three counted' },
    );
    relay.unroute(inS, state);
    relay.unwatch(inS);
    // as the JavaScript relay: all three counted in, all three left the source element, two reached the sink, one not negotiated there
    assert.deepEqual(seen, { in: 3, flowOut: 3, flowIn: 2, droppedNoCodec: 1 });
    assert.equal(atFar.msgs.length, 1);
    assert.equal(atFar.msgs[0]!.msg.readUInt16BE(2), 3);
  });

  test('the rewriter gives what RtpStreamRewriter gives on the same input, across SSRC changes (continuity + marker)', { timeout: 20_000 }, () => {
    const relay = nativeRelay();
    const random = seededRandom(7);
    const js = new RtpStreamRewriter(0xcafebabe);
    const state = newRouteState();
    writeRewriterState(js.exportState(), state);
    let now = 1_700_000_000_000;
    let ssrc = 1;
    let seq = 65530;
    let ts = 0xfffffe00;
    for (let i = 0; i < 400; i++) {
      if (random() < 0.03) {
        ssrc = (random() * 0xffffffff) >>> 0;
        seq = (random() * 0x10000) & 0xffff;
        ts = (random() * 0x100000000) >>> 0;
      }
      now += Math.floor(random() * 40);
      const pt = random() < 0.1 ? 101 : 0;
      const rate = pt === 101 ? 8000 : 8000;
      const a = rtp(pt, seq, ts, ssrc, 20, random() < 0.05);
      const b = Buffer.from(a);
      js.rewrite(a, pt, rate, now);
      relay.addon.rewrite(state, b, pt, rate, 0xcafebabe, now);
      assert.deepEqual(b, a, `packet ${i}`);
      seq = (seq + 1) & 0xffff;
      ts = (ts + 160) >>> 0;
    }
    const exported = js.exportState();
    assert.deepEqual(
      [state[STATE.rwLastInSsrc], state[STATE.rwSeqDelta], state[STATE.rwTsDelta], state[STATE.rwLastOutSeq], state[STATE.rwLastOutTs], state[STATE.rwLastOutAt], state[STATE.rwStarted] === 1],
      [exported.lastInSsrc, exported.seqDelta, exported.tsDelta, exported.lastOutSeq, exported.lastOutTs, exported.lastOutAtMs, exported.started],
    );
    // a stream JavaScript started continues natively: the state handed over gives the same next packet
    const handed = new RtpStreamRewriter(0x1);
    handed.rewrite(rtp(0, 10, 10, 42), 0, 8000, now);
    const st2 = newRouteState();
    writeRewriterState(handed.exportState(), st2);
    const x = rtp(0, 500, 9999, 43);
    const y = Buffer.from(x);
    handed.rewrite(x, 0, 8000, now + 100);
    relay.addon.rewrite(st2, y, 0, 8000, 0x1, now + 100);
    assert.deepEqual(y, x);
    assert.equal(y[1]! & 0x80, 0x80, 'marker on the new source');
  });

  test('reception statistics equal ReceptionStatistics on the same sequence: loss, reorder, duplicates, wrap, restart, new SSRC', { timeout: 20_000 }, () => {
    const relay = nativeRelay();
    const random = seededRandom(11);
    const js = new ReceptionStatistics(8000);
    const state = newRouteState();
    let arrival = 1_700_000_000_000;
    let seq = 65000;
    let ts = 0xffff0000;
    let ssrc = 77;
    const seqs: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = random();
      let s = seq;
      if (r < 0.05) s = (seq + 2 + Math.floor(random() * 5)) & 0xffff; // loss
      else if (r < 0.08) s = (seq - 1 - Math.floor(random() * 3)) & 0xffff; // reorder / duplicate
      else if (r < 0.085) s = (seq + 20000) & 0xffff; // a stray far jump (then maybe a restart)
      else if (r < 0.087) ssrc = (random() * 0xffffffff) >>> 0;
      seqs.push(s);
      if (s !== seq && r < 0.05) seq = s;
      seq = (seq + 1) & 0xffff;
      ts = (ts + 160 + Math.floor(random() * 9) - 4) >>> 0;
      arrival += 20 + Math.floor(random() * 7) - 3;
      js.onPacket(ssrc, s, ts, arrival);
      relay.addon.reception(state, 8000, ssrc, s, ts, arrival);
      if (i % 50 === 0 || i > 2990) assert.deepEqual(readReceptionState(state), js.exportState(), `after packet ${i}`);
    }
    // the far jump twice in a row restarts (A.1), also natively
    for (const s of [30000, 30001, 30002]) {
      js.onPacket(ssrc, s, ts, arrival);
      relay.addon.reception(state, 8000, ssrc, s, ts, arrival);
    }
    assert.deepEqual(readReceptionState(state), js.exportState(), 'after a restart');
    assert.ok(seqs.some((s, i) => i > 0 && s < seqs[i - 1]! - 60000), 'the sequence wrapped');
    // the imported state gives the same report figures
    const back = new ReceptionStatistics(8000);
    back.importState(readReceptionState(state), false);
    assert.deepEqual(back.block(arrival), js.block(arrival));
  });

  test('ECONNREFUSED on a watched connected socket surfaces as error with the code Node gives', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const gone = await bound();
    const port = gone.address().port;
    gone.close();
    const s = await bound();
    s.connect(port, '127.0.0.1');
    await once(s, 'connect');
    relay.watch(s);
    const errors: NodeJS.ErrnoException[] = [];
    s.on('error', (e) => errors.push(e));
    s.send(Buffer.from('x'));
    await pollUntil(() => errors.length > 0, { timeoutMs: 5000, what: "the socket's error event" });
    assert.equal(errors[0]!.code, 'ECONNREFUSED');
    assert.equal(errors[0]!.syscall, 'recvmsg');
    relay.unwatch(s);
  });

  test('closing a watched socket unwatches it first; unwatch then close frees everything', { timeout: 20_000 }, async () => {
    const relay = nativeRelay();
    const base = relay.counters().watched;
    const [a, b] = await Promise.all([bound(), bound()]);
    relay.watch(a);
    relay.watch(b);
    assert.equal(relay.counters().watched, base + 2);
    relay.unwatch(b);
    b.close();
    const closed = once(a, 'close');
    a.close();
    await closed;
    assert.equal(relay.counters().watched, base, 'both given back');
    assert.equal(relay.isWatched(a), false);
  });
});

describe('FERRY_MEDIA_RELAY', () => {
  test('auto by default; js and native when set; anything else is refused naming the variable', { timeout: 10_000 }, () => {
    assert.equal(loadMediaConfig({}, {}).relay, 'auto');
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_RELAY: 'native' }).relay, 'native');
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_RELAY: 'js' }).relay, 'js');
    assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_RELAY: 'kernel' }), /FERRY_MEDIA_RELAY="kernel" must be auto, js or native/);
  });

  test('auto: native when the addon loads, js with the one-line reason when it cannot; native: refuses naming the setting; js: never loads it', { timeout: 10_000 }, () => {
    let loads = 0;
    const works = (): void => {
      loads++;
    };
    const noCompiler = (): void => {
      loads++;
      throw new NativeBuildError('cannot build the native relay: no C compiler (cc not found; install gcc)');
    };
    assert.deepEqual(chooseRelay('auto', works), { relay: 'native' });
    assert.deepEqual(chooseRelay('auto', noCompiler), { relay: 'js', fallbackReason: 'cannot build the native relay: no C compiler (cc not found; install gcc)' });
    assert.throws(() => chooseRelay('native', noCompiler), /^Error: FERRY_MEDIA_RELAY=native: cannot build the native relay: no C compiler/);
    assert.deepEqual(chooseRelay('native', works), { relay: 'native' });
    const before = loads;
    assert.deepEqual(chooseRelay('js', noCompiler), { relay: 'js' });
    assert.equal(loads, before, 'js does not try to load the addon');
  });

  test('the addon is cached under node_modules/.cache/ferry-native/<hash of sources, ABI, arch>', { timeout: 10_000 }, () => {
    nativeRelay();
    assert.match(nativeAddonPath(), /node_modules\/\.cache\/ferry-native\/[0-9a-f]{16}\/ferry_native\.node$/);
  });

  test('no compiler: one line naming it (what makes ferry media refuse to start with FERRY_MEDIA_RELAY=native); a compiler: a fresh build loads', { timeout: 120_000 }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-native-build-'));
    try {
      assert.throws(
        () => buildNative({ cc: '/nonexistent/ferry-cc', cacheRoot: dir }),
        (err: Error) => err instanceof NativeBuildError && /no C compiler \(\/nonexistent\/ferry-cc not found; install gcc\)/.test(err.message) && !err.message.includes('\n'),
      );
      // positive control: the same call with the real compiler builds into that directory
      const built = buildNative({ cacheRoot: dir });
      assert.ok(built.startsWith(dir));
      const mod = { exports: {} as Record<string, unknown> };
      process.dlopen(mod, built);
      assert.equal(typeof mod.exports.route, 'function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
