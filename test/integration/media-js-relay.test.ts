import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunningMediaServer } from '../../src/media/server/media-server';
import { currentOffloadController } from '../../src/media/native/offload-controller';
import { NativeBuildError, nativeCacheRoot } from '../../src/media/native/build-native';
import type { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import type { SrtpContext } from '../../src/media/srtp/srtp-context';
import { RemoteElement } from '../../src/media/workers/remote-element';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike, type MediaStatsReport } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { WebRtcTestPeer, rtpPacket, waitFor } from '../helpers/media-webrtc-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import { MediaServerProcess } from '../helpers/media-server-process';
import { pollUntil } from '../helpers/wait-for';
import { assertFlowing, elementStats, portsFreed, RelayTestServers, relay, relayBothWays, routedBoth, sendBothWaysFor, mediaTimedOut, srtpAndPlainCall, exchangeSrtp, subscribe, type Events } from '../helpers/media-relay-servers';

/**
 * The JavaScript relay (FERRY_MEDIA_RELAY=js: src/media/relay/, rtp-leg.ts, werift-leg.ts) end to end through
 * real ferry media (in-process server, kurento-client, real UDP peers): what runs on a machine where the native
 * relay cannot be built. Each test proves the JavaScript path carried the packets: /stats has no `nativeRelay`
 * field, no offload controller exists in this process, and Node's own 'message' events on the leg's RTP socket
 * (which the native relay would swallow for a routed packet) count every packet; for a WebRTC leg, ferry's
 * JavaScript SRTP context decrypted every packet from the browser. J1 RTP <-> RTP (rewrite, getStats, /stats,
 * flow events, release -> zero), J2 media-timeout, J3 hold/resume, J4 SDES SRTP, J5 browser (werift) <-> phone,
 * J6 relay workers. J7: `bin/ferry media` with FERRY_MEDIA_RELAY=auto and no way to build the addon (an empty
 * FERRY_NATIVE_CACHE_DIR, CC a missing compiler) says `native relay unavailable` once, with the reason, and
 * relays in JavaScript; control: with the compiler, no such line and the call is routed natively. J8 the
 * FERRY_NATIVE_CACHE_DIR setting itself.
 */

const world = new RelayTestServers('js');
const { peers } = world;
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.splice(0)) await Promise.resolve(c()).catch(() => undefined);
  await world.close();
});

/** The JavaScript relay reports no `nativeRelay` per element (the native one reports 'routed' or 'js'). */
function assertNoNativeField(stats: MediaStatsReport, ...ids: string[]): void {
  for (const id of ids) assert.equal('nativeRelay' in elementStats(stats, id), false, `no nativeRelay field on ${id} (/stats)`);
}

/**
 * Counts the PCMU RTP datagrams Node itself reads on the element's RTP socket ('message' events): every packet
 * on the JavaScript path; a packet a native route forwards never shows here.
 */
function jsReads(s: RunningMediaServer, id: string): () => number {
  const element = s.mediaSet.lookup(id) as unknown as { leg?: { rtp?: { socket: dgram.Socket } } } | undefined;
  const socket = element?.leg?.rtp?.socket;
  if (!socket) throw new Error(`no RTP socket on ${id}`);
  let n = 0;
  socket.on('message', (msg: Buffer) => {
    if (msg.length >= 12 && (msg[1]! & 0x7f) === 0) n++;
  });
  return () => n;
}

describe('media: FERRY_MEDIA_RELAY=js (the JavaScript relay)', () => {
  test('J1 two RtpEndpoints: both directions relayed in JavaScript with SSRC/sequence rewrite, getStats, /stats, flow events, release -> zero', { timeout: 30_000 }, async () => {
    const { s, c } = await world.server();
    const events: Events = [];
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers, { beforeOffers: subscribe(events) });
    const readA = jsReads(s, a.id);
    const readB = jsReads(s, b.id);
    await relayBothWays(pa, pb, 100);
    assert.equal(readA(), 100, "Node read every one of A's packets (JavaScript path)");
    assert.equal(readB(), 100, "Node read every one of B's packets (JavaScript path)");
    assert.equal(currentOffloadController(), undefined, 'no native offload controller in this process');
    for (const [p, from] of [[pa, pb], [pb, pa]] as const) {
      assert.equal(p.received.length, 100);
      assert.equal(new Set(p.received.map((r) => r.ssrc)).size, 1, 'one SSRC per leg');
      assert.notEqual(p.received[0]!.ssrc, from.ssrc, 'the SSRC rewritten to the leg\'s own');
      p.received.forEach((r, i) => i > 0 && assert.equal(r.seq, (p.received[i - 1]!.seq + 1) & 0xffff, 'consecutive sequence numbers'));
      assert.ok(p.received.every((r) => r.pt === 0 && r.payload.equals(Buffer.alloc(160, 0x55))));
    }
    const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number; bytesReceived?: number; ssrc?: string }>>(a, 'getStats', 'AUDIO');
    const inbound = Object.values(st).find((x) => x.type === 'inboundrtp')!;
    const outbound = Object.values(st).find((x) => x.type === 'outboundrtp')!;
    assert.equal(inbound.packetsReceived, 100);
    assert.equal(inbound.bytesReceived, 100 * 172);
    assert.equal(inbound.ssrc, String(pa.ssrc));
    assert.equal(outbound.packetsSent, 100);
    assert.equal(outbound.ssrc, String(pa.received[0]!.ssrc), 'the SSRC on the wire');
    const stats = await fetchStats(s.port);
    assert.equal(elementStats(stats, a.id).packetsFromPeer, 100);
    assert.equal(elementStats(stats, a.id).packetsToPeer, 100);
    assert.equal(elementStats(stats, b.id).packetsFromPeer, 100);
    assert.equal(elementStats(stats, b.id).packetsToPeer, 100);
    assertNoNativeField(stats, a.id, b.id);
    assert.equal(stats.boundPorts, 2);
    assertFlowing(events, [a.id, b.id]);
    assert.equal(await call(b, 'isMediaFlowingIn', 'AUDIO'), true);
    await pipeline.release();
    const after = await fetchStats(s.port);
    assert.deepEqual([after.pipelines, after.elements, after.boundPorts], [0, 0, 0]);
    assert.equal(currentOffloadController(), undefined);
  });

  test('J2 media-timeout ends a silent call; packets flowing keep it alive past DEAD_MS (control)', { timeout: 30_000 }, async () => {
    const deadMs = 800;
    const { s, c } = await world.server({ deadMs, rtcpIntervalMs: 200 });
    const events: Events = [];
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers, { beforeOffers: subscribe(events) });
    const readA = jsReads(s, a.id);
    await sendBothWaysFor(pa, pb, 2 * deadMs, 10 * deadMs, 'packets for 2 x DEAD_MS');
    assert.equal(events.filter((e) => e.type === 'MediaSessionTerminated').length, 0, 'no end while packets flow');
    assert.ok(pb.received.length > 20 && pa.received.length > 20, 'packets did flow');
    assert.ok(readA() > 20, 'read in JavaScript');
    assertNoNativeField(await fetchStats(s.port), a.id, b.id);
    await mediaTimedOut(events, 10 * deadMs);
    await pipeline.release().catch(() => undefined);
    await portsFreed(s.port);
  });

  test('J3 hold: nothing reaches the held phone while its own packets still go through; resume brings the other direction back', { timeout: 30_000 }, async () => {
    const { s, c } = await world.server();
    const { pipeline, a, b, pa, pb } = await bridgedRtpPair(c, peers);
    const readB = jsReads(s, b.id);
    await relayBothWays(pa, pb, 10);
    await call(a, 'processOffer', pa.sdp({ direction: 'sendonly' }));
    const heldAt = pa.received.length;
    // positive control: A's packets still reach B, and B's are read and counted but not sent to A
    await relay(pa, pb, 20, 'A->B during hold');
    const bFromPeerBefore = elementStats(await fetchStats(s.port), b.id).packetsFromPeer as number;
    for (let i = 0; i < 20; i++) pb.send(0, Buffer.alloc(160, 3));
    await pollUntil(async () => (elementStats(await fetchStats(s.port), b.id).packetsFromPeer as number) >= bFromPeerBefore + 20 || undefined, {
      timeoutMs: 5000,
      what: "B's 20 packets counted during the hold",
    });
    assert.equal(pa.received.length, heldAt, 'nothing reaches the held phone');
    await call(a, 'processOffer', pa.sdp({ direction: 'sendrecv' }));
    await relay(pb, pa, 20, 'B->A after resume');
    assert.equal(readB(), 50, "all of B's packets read in JavaScript");
    const seqs = pa.received.map((r) => r.seq);
    // the 20 packets relayed while A was held were numbered and not sent
    seqs.forEach((q, i) => i > 0 && assert.equal(q, (seqs[i - 1]! + 1 + (i === heldAt ? 20 : 0)) & 0xffff, `sequence numbers at A (${i})`));
    assertNoNativeField(await fetchStats(s.port), a.id, b.id);
    await pipeline.release();
    await portsFreed(s.port);
  });

  test('J4 SDES SRTP phone <-> plain phone: decrypted and encrypted in JavaScript both ways, nothing refused', { timeout: 30_000 }, async () => {
    const { s, c } = await world.server();
    const { pipeline, a, b, phone, plain } = await srtpAndPlainCall(c, peers);
    closers.push(() => phone.close());
    const readA = jsReads(s, a.id);
    await exchangeSrtp(phone, plain, 50, 'SRTP <-> plain');
    assert.equal(readA(), 50, 'the SRTP datagrams read by Node (JavaScript path)');
    assert.ok(plain.received.every((r) => r.payload.equals(Buffer.alloc(160, 0x42))), 'decrypted before relaying');
    assert.ok(phone.rtp.every((r) => r.clear !== undefined), 'every packet to the SRTP phone authenticates');
    assert.ok(phone.rtp.every((r) => !r.wire.subarray(12, 172).equals(Buffer.alloc(160, 0x24))), 'encrypted on the wire');
    const seqs = phone.rtp.map((r) => r.clear!.readUInt16BE(2));
    seqs.forEach((q, i) => i > 0 && assert.equal(q, (seqs[i - 1]! + 1) & 0xffff, 'consecutive sequence numbers to the SRTP phone'));
    const st = await fetchStats(s.port);
    assert.equal(elementStats(st, a.id).srtpRefusedPackets, 0, 'nothing refused');
    assert.equal(elementStats(st, a.id).packetsFromPeer, 50);
    assertNoNativeField(st, a.id, b.id);
    await pipeline.release();
    await portsFreed(s.port);
  });

  test('J5 browser (werift peer) <-> phone: SRTP decrypted by the JavaScript context, packets both ways, nothing refused', { timeout: 30_000 }, async () => {
    const { s, c } = await world.server({ rtcpIntervalMs: 300 });
    const pipeline = await c.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const browser = new WebRtcTestPeer();
    const phone = await RtpTestPeer.open();
    peers.push(phone);
    closers.push(() => browser.close(), () => pipeline.release());
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);
    await call(webrtc, 'processAnswer', await browser.answer(await call<string>(webrtc, 'generateOffer')));
    await browser.connected;
    const leg = (s.mediaSet.lookup(webrtc.id) as unknown as { leg?: WeriftLeg }).leg!;
    await waitFor(() => leg.dtlsState() === 'CONNECTED', 10_000, "ferry's WebRTC leg connected");
    const jsSrtp = (leg as unknown as { srtp: { inbound: SrtpContext } }).srtp.inbound;
    const decryptedBefore = jsSrtp.counters.unprotected;
    const readPhone = jsReads(s, rtp.id);
    const atPhone = (): RtpTestPeer['received'] => phone.received.filter((r) => r.pt === 0);
    for (let i = 0; i < 50; i += 10) {
      for (let j = 0; j < 10; j++) {
        const q = i + j;
        browser.sendRtp(rtpPacket(0, 65_500 + q, 160 * q, 0, Buffer.alloc(160, 0xb0))); // across the wrap
        phone.send(0, Buffer.alloc(160, 0x24));
      }
      await phone.waitFor(() => atPhone().length >= i + 10, 5000, `${i + 10} at the phone`);
      await waitFor(() => browser.rtpIn.length >= i + 10, 5000, `${i + 10} at the browser`);
    }
    assert.ok(jsSrtp.counters.unprotected - decryptedBefore >= 50, "ferry's JavaScript SRTP context decrypted the browser's 50 packets");
    assert.equal(readPhone(), 50, "the phone's packets read by Node (JavaScript path)");
    assert.ok(atPhone().every((r) => r.payload.equals(Buffer.alloc(160, 0xb0))), 'the browser audio at the phone');
    atPhone().forEach((r, i, all) => i > 0 && assert.equal(r.seq, (all[i - 1]!.seq + 1) & 0xffff, 'consecutive at the phone'));
    assert.ok(browser.rtpIn.every((p) => p.subarray(12).equals(Buffer.alloc(160, 0x24))), 'the phone audio decrypted by the browser');
    assert.equal(new Set(browser.rtpIn.map((p) => p.readUInt32BE(8))).size, 1, 'one SSRC to the browser');
    assert.equal(leg.counters.srtpOut, 50);
    assert.equal(leg.counters.srtpRefused, 0, 'nothing refused');
    const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(webrtc, 'getStats', 'AUDIO');
    assert.equal(Object.values(st).find((x) => x.type === 'inboundrtp')?.packetsReceived, 50);
    assert.equal(Object.values(st).find((x) => x.type === 'outboundrtp')?.packetsSent, 50);
    const stats = await fetchStats(s.port);
    assert.equal(elementStats(stats, webrtc.id).packetsFromPeer, 50);
    assertNoNativeField(stats, webrtc.id, rtp.id);
    assert.equal(currentOffloadController(), undefined);
    await pipeline.release();
    await waitFor(() => browser.dtlsStates.some((d) => d.state === 'closed'), 5000, 'the browser told (DTLS closed)');
    await portsFreed(s.port);
  });

  test('J6 FERRY_MEDIA_WORKERS=2: calls in relay workers relayed in JavaScript, getStats and /stats right', { timeout: 30_000 }, async () => {
    const { s, c } = await world.server({ workers: 2 });
    const calls = [];
    for (let i = 0; i < 2; i++) calls.push(await bridgedRtpPair(c, peers));
    for (const k of calls) {
      await relayBothWays(k.pa, k.pb, 50);
      const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(k.b, 'getStats', 'AUDIO');
      assert.equal(Object.values(st).find((x) => x.type === 'inboundrtp')?.packetsReceived, 50);
      assert.equal(Object.values(st).find((x) => x.type === 'outboundrtp')?.packetsSent, 50);
      const seqs = k.pb.received.map((r) => r.seq);
      seqs.forEach((q, i) => i > 0 && assert.equal(q, (seqs[i - 1]! + 1) & 0xffff, 'consecutive'));
    }
    const stats = await fetchStats(s.port);
    for (const k of calls) {
      assertNoNativeField(stats, k.a.id, k.b.id);
      assert.equal(elementStats(stats, k.a.id).packetsFromPeer, 50);
    }
    for (const k of calls) {
      assert.ok(s.mediaSet.lookup(k.a.id) instanceof RemoteElement, 'the elements live in a relay worker, not on the main thread');
    }
    for (const k of calls) await k.pipeline.release();
    await portsFreed(s.port);
  });

  test('J8 FERRY_NATIVE_CACHE_DIR: an absolute path is the cache, a relative one is refused naming it, unset is node_modules/.cache', { timeout: 5_000 }, () => {
    assert.equal(nativeCacheRoot({ FERRY_NATIVE_CACHE_DIR: '/var/cache/ferry' }), '/var/cache/ferry');
    assert.match(nativeCacheRoot({}), /node_modules\/\.cache\/ferry-native$/);
    assert.match(nativeCacheRoot({ FERRY_NATIVE_CACHE_DIR: '' }), /node_modules\/\.cache\/ferry-native$/);
    assert.throws(() => nativeCacheRoot({ FERRY_NATIVE_CACHE_DIR: 'cache' }), (err: Error) => err instanceof NativeBuildError && err.message === 'FERRY_NATIVE_CACHE_DIR="cache" must be an absolute path');
  });

  describe('J7 bin/ferry media with FERRY_MEDIA_RELAY=auto', () => {
    const dirs: string[] = [];
    const procs: MediaServerProcess[] = [];
    /** this block's kurento clients: closed before their servers stop (a client left open retries a stopped server, and its refused connection is thrown outside any test) */
    const ownClients: KurentoClientLike[] = [];
    after(async () => {
      for (const c of ownClients.splice(0)) c.close();
      await Promise.all(procs.map((p) => p.stop()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    /** Starts `bin/ferry media` with an empty addon cache and `cc` as the compiler, makes a call (routed first when `native`), relays 20 each way. */
    async function runAuto(cc: string, native: boolean): Promise<{ proc: MediaServerProcess; cache: string; stats: MediaStatsReport; a: string; b: string }> {
      const cache = mkdtempSync(path.join(os.tmpdir(), 'ferry-native-cache-'));
      dirs.push(cache);
      const proc = await MediaServerProcess.start({ FERRY_MEDIA_RELAY: 'auto', FERRY_NATIVE_CACHE_DIR: cache, CC: cc, FERRY_MEDIA_WORKERS: '1' });
      procs.push(proc);
      const c = await connectKurento(proc.url);
      ownClients.push(c);
      const { a, b, pa, pb } = await bridgedRtpPair(c, peers);
      await relayBothWays(pa, pb, 1, ' first');
      // with the native relay the routes follow the first packets
      if (native) await routedBoth(proc.port, a.id, b.id, 'both directions routed natively');
      const stats = await fetchStats(proc.port);
      await relayBothWays(pa, pb, 20);
      for (const p of [pa, pb]) {
        assert.equal(p.received.length, 21);
        p.received.forEach((r, i) => i > 0 && assert.equal(r.seq, (p.received[i - 1]!.seq + 1) & 0xffff, 'consecutive'));
      }
      return { proc, cache, stats, a: a.id, b: b.id };
    }

    const MISSING_CC = '/nonexistent/ferry-test-cc';

    test('J7a no compiler and no cached addon: one `native relay unavailable` warning with the reason, the call relayed in JavaScript', { timeout: 30_000 }, async () => {
      const { proc, cache, stats, a, b } = await runAuto(MISSING_CC, false);
      const warnings = proc.logsMatching('native relay unavailable');
      assert.equal(warnings.length, 1, `one warning line; log:\n${proc.log()}`);
      const line = JSON.parse(warnings[0]!) as { level: string; reason: string };
      assert.equal(line.level, 'warn');
      assert.equal(line.reason, `cannot build the native relay: no C compiler (${MISSING_CC} not found; install gcc)`);
      assertNoNativeField(stats, a, b);
      const after = await fetchStats(proc.port);
      assertNoNativeField(after, a, b);
      assert.equal(elementStats(after, a).packetsFromPeer, 21);
      assert.equal(elementStats(after, b).packetsToPeer, 21);
      assert.deepEqual(readdirSync(cache).flatMap((d) => readdirSync(path.join(cache, d))), [], 'nothing built');
    });

    test('J7b control: with the compiler the addon is built into FERRY_NATIVE_CACHE_DIR, nothing is said, the call is routed natively', { timeout: 30_000 }, async () => {
      const { proc, cache, stats, a, b } = await runAuto(process.env.CC ?? 'cc', true);
      assert.deepEqual(proc.logsMatching('native relay unavailable'), [], `no fallback warning; log:\n${proc.log()}`);
      assert.equal(elementStats(stats, a).nativeRelay, 'routed');
      assert.equal(elementStats(stats, b).nativeRelay, 'routed');
      const built = readdirSync(cache).map((d) => path.join(cache, d, 'ferry_native.node'));
      assert.equal(built.length, 1);
      assert.ok(existsSync(built[0]!), 'the addon built into FERRY_NATIVE_CACHE_DIR');
      assert.equal(elementStats(await fetchStats(proc.port), a).packetsFromPeer, 21);
    });
  });
});
