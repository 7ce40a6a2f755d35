import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createHmac, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { runInNewContext } from 'node:vm';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import type { MediaConfig } from '../../src/media/server/media-config';
import { currentOffloadController } from '../../src/media/native/offload-controller';
import { loadNativeAddon, nativeRelay } from '../../src/media/native/native-relay';
import type { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { observeNomination, type IceConnectionInternals } from '../../src/media/webrtc/werift-internals';
import type { SrtpContext } from '../../src/media/srtp/srtp-context';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { SrtpTestPeer } from '../helpers/srtp-test-peer';
import { WebRtcTestPeer, rtpPacket, waitFor } from '../helpers/media-webrtc-peer';
import { emptyReceiverReport } from '../helpers/rtcp-samples';
import { pollUntil } from '../helpers/wait-for';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurentoClient = require('kurento-client') as { getComplexType(name: string): (v: Record<string, unknown>) => unknown };
const IceCandidate = kurentoClient.getComplexType('IceCandidate');

/**
 * FERRY_MEDIA_RELAY=native with a WebRTC leg: the gateway's call, browser <-> phone, through real ferry media
 * (in-process server, kurento-client). The browser is a werift peer in its own process (media-webrtc-peer.ts:
 * werift's own ICE, DTLS-SRTP and SRTCP), the phone a UDP peer (plain RTP, or SDES SRTP). Once the call is
 * simple, both directions go through native routes: SRTP from the browser on the nominated pair's ICE socket is
 * decrypted natively with the leg's keys and forwarded to the phone, the phone's RTP is protected natively and
 * sent to the browser's address from the ICE socket. Proven by the relay's forwarded counter and the leg's
 * JavaScript SRTP context standing still; the figures (getStats, the leg's counters, ferry's SR to the browser)
 * stay right; STUN, DTLS and SRTCP still reach werift and ferry (consent keeps the call, the browser's RTCP is
 * counted); a hold on the phone side takes the routes down and up again with the SRTP streams handed over (the
 * browser's SRTP keeps accepting, ferry refuses nothing); release frees every port, route, watch and native
 * SRTP context. Both SRTP profiles: the browser offering makes it the DTLS server (werift picks
 * AEAD_AES_128_GCM), ferry offering makes ferry the server (AES_CM_128_HMAC_SHA1_80 first) (W1, W2). Also: an
 * SDES SRTP phone (W3), the browser closing DTLS or losing consent while routed (W4, W5: nothing more is sent to
 * it), a call in a relay worker (W6), browser <-> browser (W7), werift's nomination moving while the browser keeps
 * sending from its address (W8: the route's source filter follows the media), and the browser nominating a pair
 * from another address while media flows only natively (W9: the routes follow werift's nomination at once).
 */

const servers: RunningMediaServer[] = [];
const clients: KurentoClientLike[] = [];
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.splice(0)) await Promise.resolve(c()).catch(() => undefined);
  clients.forEach((c) => c.close());
  await Promise.all(servers.map((s) => s.close()));
});

async function server(config: Partial<MediaConfig> = {}): Promise<{ s: RunningMediaServer; c: KurentoClientLike }> {
  const s = await startMediaServer({ config: { port: 0, host: '127.0.0.1', relay: 'native', workers: 1, rtcpIntervalMs: 300, ...config } });
  servers.push(s);
  const c = await connectKurento(s.url);
  clients.push(c);
  return { s, c };
}

function elementStats(stats: Awaited<ReturnType<typeof fetchStats>>, id: string): Record<string, unknown> {
  for (const p of stats.pipelinesDetail) for (const e of p.elements) if (e.id === id) return e;
  throw new Error(`element ${id} not in /stats`);
}

async function routedBoth(port: number, a: string, b: string): Promise<void> {
  await pollUntil(
    async () => {
      const st = await fetchStats(port);
      return elementStats(st, a).nativeRelay === 'routed' && elementStats(st, b).nativeRelay === 'routed';
    },
    { timeoutMs: 5000, what: 'both directions routed natively (/stats nativeRelay)' },
  );
}

/** The WebRTC element's leg, in this process (FERRY_MEDIA_WORKERS=1). */
function weriftLeg(s: RunningMediaServer, id: string): WeriftLeg {
  const element = s.mediaSet.lookup(id) as unknown as { leg?: WeriftLeg } | undefined;
  if (!element?.leg) throw new Error(`no leg on ${id}`);
  return element.leg;
}

/** The leg's JavaScript SRTP contexts (DtlsSrtpSession). */
function jsSrtp(leg: WeriftLeg): { inbound: SrtpContext; outbound: SrtpContext } {
  return (leg as unknown as { srtp: { inbound: SrtpContext; outbound: SrtpContext } }).srtp;
}

/** What the leg's JavaScript SRTP context decrypted (RTP and RTCP): the JavaScript path's work. */
function jsSrtpDecrypted(leg: WeriftLeg): number {
  return jsSrtp(leg).inbound.counters.unprotected;
}

/** The highest SRTP index of `ssrc`'s stream in the leg's JavaScript receive context (moves only when JavaScript decrypts its RTP). */
function jsHighestIndex(leg: WeriftLeg, ssrc: number): number | undefined {
  return jsSrtp(leg).inbound.exportRtpState().receive.find((r) => r.ssrc === ssrc)?.highestIndex;
}

/** The phone as the test needs it: plain RTP or SDES SRTP, both counted the same way. */
interface Phone {
  sdp(direction?: string): string;
  useRemoteSdp(sdp: string): void;
  send(payload: Buffer): void;
  /** Clear RTP received: [pt, seq, payload]. */
  received(): { pt: number; seq: number; payload: Buffer }[];
  waitFor(pred: () => boolean, what: string): Promise<void>;
  close(): void;
}

async function plainPhone(): Promise<Phone> {
  const p = await RtpTestPeer.open();
  return {
    sdp: (direction) => p.sdp({ codecs: [[0, 'PCMU/8000'], [101, 'telephone-event/8000']], ...(direction ? { direction } : {}) }),
    useRemoteSdp: (sdp) => void p.useRemoteSdp(sdp),
    send: (payload) => void p.send(0, payload),
    received: () => p.received.filter((r) => r.pt === 0).map((r) => ({ pt: r.pt, seq: r.seq, payload: r.payload })),
    waitFor: (pred, what) => p.waitFor(pred, 5000, what),
    close: () => p.close(),
  };
}

async function srtpPhone(): Promise<Phone> {
  const p = await SrtpTestPeer.open();
  return {
    sdp: () => p.sdp(),
    // a later answer must keep ferry's key (then the phone keeps its receive context: ROC and replay window)
    useRemoteSdp: (sdp) => {
      const key = p.answerCrypto?.keyBase64;
      if (key === undefined) return p.useRemoteSdp(sdp);
      assert.ok(sdp.includes(`inline:${key}`), "ferry's SDES key unchanged by the re-offer");
    },
    send: (payload) => void p.sendRtp(payload),
    received: () =>
      p.rtp.map((r) => {
        if (!r.clear) throw new Error(`an SRTP packet to the phone did not authenticate: ${r.wire.subarray(0, 12).toString("hex")} (${r.wire.length} bytes, packet ${p.rtp.indexOf(r)} of ${p.rtp.length})`);
        return { pt: r.clear[1]! & 0x7f, seq: r.clear.readUInt16BE(2), payload: r.clear.subarray(12) };
      }),
    waitFor: (pred, what) => p.waitFor(pred, 5000, what),
    close: () => p.close(),
  };
}

interface Call {
  pipeline: KurentoObjectLike;
  webrtc: KurentoObjectLike;
  rtp: KurentoObjectLike;
  browser: WebRtcTestPeer;
  phone: Phone;
  leg: WeriftLeg;
}

/** A connected browser <-> phone call; `ferryOffers`: ferry's WebRtcEndpoint offers (ferry is then the DTLS server). */
async function setUpCall(s: RunningMediaServer, c: KurentoClientLike, ferryOffers: boolean, phone: Phone): Promise<Call> {
  const pipeline = await c.create('MediaPipeline');
  const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
  const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const browser = new WebRtcTestPeer();
  closers.push(() => browser.close(), () => phone.close(), () => pipeline.release());
  phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
  await call(webrtc, 'connect', rtp);
  await call(rtp, 'connect', webrtc);
  if (ferryOffers) {
    const offer = await call<string>(webrtc, 'generateOffer');
    await call(webrtc, 'processAnswer', await browser.answer(offer));
  } else {
    webrtc.on('IceCandidateFound', (data) => void browser.addCandidate(data.candidate as { candidate: string; sdpMid: string; sdpMLineIndex: number }));
    const offer = await browser.createOffer();
    const early = browser.candidates.map((cand) => call(webrtc, 'addIceCandidate', IceCandidate(cand)));
    const answer = await call<string>(webrtc, 'processOffer', offer);
    await Promise.all(early);
    await browser.setAnswer(answer);
    await call(webrtc, 'gatherCandidates');
  }
  await browser.connected;
  const leg = weriftLeg(s, webrtc.id);
  await waitFor(() => leg.dtlsState() === 'CONNECTED', 10_000, "ferry's WebRTC leg connected");
  return { pipeline, webrtc, rtp, browser, phone, leg };
}

/** The browser's next sequence number (each test starts it 50 before the wrap: the stream's ROC moves on the native path). */
let seq = 0;
const SEQ_START = 0xffff - 50;

/** `n` packets each way, in groups of 10 (each group waited for at both ends: loopback drops nothing). */
async function exchange(k: Call, n: number, what: string): Promise<void> {
  for (let i = 0; i < n; i += 10) {
    const group = Math.min(10, n - i);
    const wantPhone = k.phone.received().length + group;
    const wantBrowser = k.browser.rtpIn.length + group;
    for (let j = 0; j < group; j++) {
      const s = seq++;
      k.browser.sendRtp(rtpPacket(0, s & 0xffff, 160 * s, 0, Buffer.alloc(160, s & 0xff)));
      k.phone.send(Buffer.alloc(160, 0x24));
    }
    await k.phone.waitFor(() => k.phone.received().length >= wantPhone, `${what}: ${wantPhone} packets at the phone`);
    await waitFor(() => k.browser.rtpIn.length >= wantBrowser, 5000, `${what}: ${wantBrowser} packets at the browser`);
  }
}

/**
 * The browser's packets to the phone: consecutive sequence numbers (`skipped` packets relayed while the phone was
 * on hold were numbered and not sent, as the JavaScript relay does, right before the packet at `skipAt`);
 * the phone's to the browser: one SSRC, consecutive, decrypted.
 */
function assertContinuous(k: Call, skipAt = -1, skipped = 0): void {
  const atPhone = k.phone.received();
  atPhone.forEach((p, i) => i > 0 && assert.equal(p.seq, (atPhone[i - 1]!.seq + 1 + (i === skipAt ? skipped : 0)) & 0xffff, `consecutive sequence numbers at the phone (${i})`));
  const atBrowser = k.browser.rtpIn;
  assert.equal(new Set(atBrowser.map((p) => p.readUInt32BE(8))).size, 1, 'one SSRC to the browser');
  assert.equal(atBrowser[0]!.readUInt32BE(8), k.leg.localSsrc, 'the SSRC the leg signalled');
  atBrowser.forEach((p, i) => i > 0 && assert.equal(p.readUInt16BE(2), (atBrowser[i - 1]!.readUInt16BE(2) + 1) & 0xffff, 'consecutive sequence numbers at the browser'));
  assert.ok(atBrowser.every((p) => (p[1]! & 0x7f) === 0 && p.subarray(12).equals(Buffer.alloc(160, 0x24))), 'the phone audio, decrypted by the browser');
}

/** Sender packet counts of the SRs ferry sent to the browser. */
function srPacketCounts(k: Call): number[] {
  return k.browser.rtcpIn.filter((r) => r.packet[1] === 200 && r.packet.length >= 28).map((r) => r.packet.readUInt32BE(20));
}

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** werift's ICE agent's credentials (its own ufrag/password and the browser's). */
interface IceCredentials {
  localUsername: string;
  localPassword: string;
  remoteUsername: string;
  remotePassword: string;
}

/** A STUN message (RFC 5389): attributes, then MESSAGE-INTEGRITY keyed with `key` and FINGERPRINT. */
function stunMessage(type: number, tid: Buffer, attrs: [number, Buffer][], key: Buffer): Buffer {
  const attr = (t: number, v: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(t, 0);
    h.writeUInt16BE(v.length, 2);
    return Buffer.concat([h, v, Buffer.alloc((4 - (v.length % 4)) % 4)]);
  };
  const header = (length: number): Buffer => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(length, 2);
    h.writeUInt32BE(0x2112a442, 4);
    tid.copy(h, 8);
    return h;
  };
  let body = Buffer.concat(attrs.map(([t, v]) => attr(t, v)));
  const integrity = createHmac('sha1', key).update(Buffer.concat([header(body.length + 24), body])).digest();
  body = Buffer.concat([body, attr(0x0008, integrity)]);
  const fingerprint = Buffer.alloc(4);
  fingerprint.writeUInt32BE((crc32(Buffer.concat([header(body.length + 8), body])) ^ 0x5354554e) >>> 0, 0);
  body = Buffer.concat([body, attr(0x8028, fingerprint)]);
  return Buffer.concat([header(body.length), body]);
}

/**
 * The browser on another address (W9): a UDP socket that sends an ICE check to ferry (USE-CANDIDATE when it
 * nominates), answers ferry's checks (success, keyed with the browser's ICE password) and keeps what ferry
 * sends it.
 */
class StunAnswerer {
  readonly datagrams: Buffer[] = [];
  checksAnswered = 0;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly password: string,
  ) {
    socket.on('message', (msg, rinfo) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0001 && msg.readUInt32BE(4) === 0x2112a442) {
        const mapped = Buffer.alloc(8);
        mapped[1] = 1;
        mapped.writeUInt16BE(rinfo.port ^ 0x2112, 2);
        mapped.writeUInt32BE((rinfo.address.split('.').reduce((a, b) => a * 256 + Number(b), 0) ^ 0x2112a442) >>> 0, 4);
        this.checksAnswered++;
        socket.send(stunMessage(0x0101, msg.subarray(8, 20), [[0x0020, mapped]], Buffer.from(this.password)), rinfo.port, rinfo.address);
        return;
      }
      this.datagrams.push(msg);
    });
  }

  static async open(password: string): Promise<StunAnswerer> {
    const socket = dgram.createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new StunAnswerer(socket, password);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** An ICE check to ferry's ICE socket on `port` (USERNAME ferry:browser, keyed with ferry's password). */
  sendCheck(port: number, creds: IceCredentials, useCandidate: boolean): void {
    const priority = Buffer.alloc(4);
    priority.writeUInt32BE(0x6e0001ff, 0);
    const attrs: [number, Buffer][] = [
      [0x0006, Buffer.from(`${creds.localUsername}:${creds.remoteUsername}`)],
      [0x0024, priority],
      [0x802a, randomBytes(8)],
    ];
    if (useCandidate) attrs.push([0x0025, Buffer.alloc(0)]);
    this.socket.send(stunMessage(0x0001, randomBytes(12), attrs, Buffer.from(creds.localPassword)), port, '127.0.0.1');
  }

  /** RTP (SRTP) datagrams of `ssrc` with payload type 0 that reached this address. */
  srtp(ssrc: number): number {
    return this.datagrams.filter((d) => d.length >= 12 && d[0]! >> 6 === 2 && (d[1]! & 0x7f) === 0 && d.readUInt32BE(8) === ssrc).length;
  }

  close(): void {
    this.socket.close();
  }
}

describe('media: FERRY_MEDIA_RELAY=native with WebRTC legs', () => {
  const cases = [
    { name: 'W1 the browser offers (it is the DTLS server): AEAD_AES_128_GCM', ferryOffers: false, profile: 'AEAD_AES_128_GCM' },
    { name: 'W2 ferry offers (it is the DTLS server): AES_CM_128_HMAC_SHA1_80', ferryOffers: true, profile: 'AES_CM_128_HMAC_SHA1_80' },
  ];
  for (const { name, ferryOffers, profile } of cases) {
    test(`${name}: both directions natively, figures right, SRTCP and consent through, hold/resume hands the SRTP streams over, release -> zero`, { timeout: 90_000 }, async () => {
      const { s, c } = await server({ ice: loadIceSettings({ FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS: '500', FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS: '10000' }, '127.0.0.1') });
      seq = SEQ_START;
      const k = await setUpCall(s, c, ferryOffers, await plainPhone());
      assert.equal(k.leg.srtpProfile, profile);
      // the first packets go through JavaScript (the phone's latches its leg); the routes follow
      await exchange(k, 1, 'first packets');
      await routedBoth(s.port, k.webrtc.id, k.rtp.id);
      assert.equal(currentOffloadController()?.routeCount, 2);

      const forwardedBefore = nativeRelay().counters().forwarded;
      // (the route from the browser may already have taken its first packet: its stream state is then native only)
      const jsBefore = jsHighestIndex(k.leg, k.browser.ssrc);
      await exchange(k, 100, 'native');
      assert.ok(nativeRelay().counters().forwarded - forwardedBefore >= 200, 'the 200 packets went through the native relay');
      assert.equal(jsHighestIndex(k.leg, k.browser.ssrc), jsBefore, "the leg's JavaScript SRTP context decrypted none of them (native)");

      // a replayed SRTP datagram is refused by the native context's replay window (counted as a replay)
      await k.browser.replay(k.browser.sentSrtp[50]!);
      await pollUntil(() => k.leg.counters.replayedDropped === 1 || undefined, { timeoutMs: 5000, what: 'the replay refused natively' });
      assert.equal(nativeRelay().counters().forwarded - forwardedBefore, 200, 'the replay was not forwarded');

      // SRTCP from the browser is passed up to ferry's listener and counted; ferry's SRs count the native packets
      const rtcpBefore = k.leg.counters.rtcpIn;
      k.browser.sendRtcp(emptyReceiverReport(k.browser.ssrc));
      await pollUntil(() => k.leg.counters.rtcpIn > rtcpBefore || undefined, { timeoutMs: 5000, what: "the browser's SRTCP at ferry's leg" });
      await pollUntil(() => srPacketCounts(k).some((n) => n >= 101) || undefined, { timeoutMs: 5000, what: "ferry's SR to the browser counting the native packets" });

      // the figures while routed
      const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number; bytesReceived?: number; ssrc?: string }>>(k.webrtc, 'getStats', 'AUDIO');
      const inbound = Object.values(st).find((x) => x.type === 'inboundrtp')!;
      const outbound = Object.values(st).find((x) => x.type === 'outboundrtp')!;
      assert.equal(inbound.packetsReceived, 101);
      assert.equal(inbound.bytesReceived, 101 * 172);
      assert.equal(inbound.ssrc, String(k.browser.ssrc), 'the reception statistics know the browser SSRC');
      assert.equal(outbound.packetsSent, 101);
      assert.equal(outbound.ssrc, String(k.leg.localSsrc));
      const counters = k.leg.counters;
      assert.equal(counters.srtpOut, 101, 'SRTP sent (srtpOut)');
      assert.equal(counters.srtpRefused, 0, 'nothing refused');
      assert.equal(counters.replayedDropped, 1, 'the one replay');
      assert.ok(k.leg.demuxCounters.media >= 101, 'the media datagrams counted');
      const stats = await fetchStats(s.port);
      assert.equal(elementStats(stats, k.webrtc.id).packetsFromPeer, 101);
      assert.equal(elementStats(stats, k.rtp.id).packetsToPeer, 101);
      assertContinuous(k);

      // consent freshness (STUN, passed up to werift) keeps the call: after several consent intervals, still sending
      const consentChecks = nativeRelay().counters().passedUp;
      await pollUntil(() => nativeRelay().counters().passedUp >= consentChecks + 4 || undefined, { timeoutMs: 10_000, what: 'STUN consent checks passed up' });
      assert.equal(k.leg.iceState(), 'READY');
      await exchange(k, 10, 'after consent checks');

      // hold on the phone side: the routes come down (streams handed back), the browser's packets are handled in
      // JavaScript (the phone receives nothing), the phone's go natively again; resume: both routes again
      k.phone.useRemoteSdp(await call<string>(k.rtp, 'processOffer', k.phone.sdp('sendonly')));
      await pollUntil(async () => elementStats(await fetchStats(s.port), k.webrtc.id).nativeRelay === 'js' || undefined, { timeoutMs: 5000, what: 'the route into the held phone removed' });
      const heldAt = k.phone.received().length;
      // the SRTP streams are back in the JavaScript contexts where the native ones left them: the browser's
      // highest index (its ROC moved to 1 on the native path) and replay window; our ROC and last sequence number
      const js = jsSrtp(k.leg);
      const inState = js.inbound.exportRtpState().receive.find((r) => r.ssrc === k.browser.ssrc);
      assert.equal(inState?.highestIndex, seq - 1, "the browser's highest SRTP index (ROC 1) handed back");
      assert.equal(js.inbound.receiveRoc(k.browser.ssrc), 1);
      const lastToBrowser = k.browser.rtpIn[k.browser.rtpIn.length - 1]!.readUInt16BE(2);
      assert.equal(js.outbound.exportRtpState().send.find((x) => x.ssrc === k.leg.localSsrc)?.lastSeq, lastToBrowser, 'our last sequence number handed back');
      // a datagram the native path took, replayed now: refused by the JavaScript context's window (handed back)
      await k.browser.replay(k.browser.sentSrtp[60]!);
      await pollUntil(() => k.leg.counters.replayedDropped === 2 || undefined, { timeoutMs: 5000, what: 'the replay refused in JavaScript' });
      const jsHeld = jsSrtpDecrypted(k.leg);
      for (let i = 0; i < 20; i++) {
        const q = seq++;
        k.browser.sendRtp(rtpPacket(0, q & 0xffff, 160 * q, 0, Buffer.alloc(160, 1)));
      }
      await pollUntil(() => (jsSrtpDecrypted(k.leg) >= jsHeld + 20 && jsHighestIndex(k.leg, k.browser.ssrc) === seq - 1) || undefined, {
        timeoutMs: 5000,
        what: "the browser's 20 packets decrypted in JavaScript during the hold",
      });
      const wantBrowser = k.browser.rtpIn.length + 20;
      for (let i = 0; i < 20; i++) k.phone.send(Buffer.alloc(160, 0x24));
      await waitFor(() => k.browser.rtpIn.length >= wantBrowser, 5000, 'the phone audio at the browser during the hold');
      assert.equal(k.phone.received().length, heldAt, 'nothing reaches the held phone');
      k.phone.useRemoteSdp(await call<string>(k.rtp, 'processOffer', k.phone.sdp('sendrecv')));
      await exchange(k, 10, 'after resume');
      await routedBoth(s.port, k.webrtc.id, k.rtp.id);
      const forwardedResumed = nativeRelay().counters().forwarded;
      await exchange(k, 50, 'native again');
      assert.ok(nativeRelay().counters().forwarded - forwardedResumed >= 100, 'native again after the resume');

      // every packet of every stage: counted, accepted by the browser's SRTP (ROC and keystream continue), nothing refused
      const total = 1 + 100 + 10 + 20 + 10 + 50;
      assert.equal(k.browser.rtpIn.length, total, "every packet to the browser decrypted by the browser's SRTP");
      assert.equal(k.phone.received().length, total - 20);
      assertContinuous(k, heldAt, 20);
      const after = k.leg.counters;
      assert.equal(after.srtpRefused, 0, 'nothing refused at ferry');
      assert.equal(after.replayedDropped, 2, 'the two replays only');
      assert.equal(after.srtpOut, total);
      const st2 = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(k.webrtc, 'getStats', 'AUDIO');
      assert.equal(Object.values(st2).find((x) => x.type === 'inboundrtp')?.packetsReceived, total);
      assert.equal(Object.values(st2).find((x) => x.type === 'outboundrtp')?.packetsSent, total);

      // release: ports, routes, watches and native SRTP contexts back to zero; the browser is told
      await k.pipeline.release();
      await waitFor(() => k.browser.dtlsStates.some((d) => d.state === 'closed'), 5000, 'the browser told (DTLS closed)');
      assert.ok(k.browser.rtcpIn.some((r) => r.bye), 'RTCP BYE reached the browser');
      await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
      assert.equal(currentOffloadController()?.routeCount, 0, 'no route left');
      assert.equal(nativeRelay().counters().watched, 0, 'no socket left watched');
      assert.equal(nativeRelay().counters().routes, 0);
      await pollUntil(
        async () => {
          collectGarbage();
          await new Promise((r) => setImmediate(r));
          return loadNativeAddon().srtpLiveContexts() === 0 || undefined;
        },
        { timeoutMs: 10_000, what: 'every native SRTP context freed' },
      );
    });
  }

  /** The phone sends `n` packets and ferry's phone element has counted them (whatever happens to them next). */
  async function phoneSends(s: RunningMediaServer, k: Call, n: number): Promise<void> {
    const before = elementStats(await fetchStats(s.port), k.rtp.id).packetsFromPeer as number;
    for (let i = 0; i < n; i++) k.phone.send(Buffer.alloc(160, 0x24));
    await pollUntil(async () => ((elementStats(await fetchStats(s.port), k.rtp.id).packetsFromPeer as number) >= before + n) || undefined, {
      timeoutMs: 5000,
      what: `the phone's ${n} packets counted by ferry`,
    });
  }

  test('W4 the browser closes DTLS (close_notify) while routed: the routes come down at once and nothing more is sent to it', { timeout: 60_000 }, async () => {
    const { s, c } = await server();
    seq = SEQ_START;
    const k = await setUpCall(s, c, false, await plainPhone());
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    await exchange(k, 20, 'native');
    assert.equal(k.leg.counters.srtpOut, 21);
    await k.browser.closeNotify();
    await pollUntil(() => k.leg.dtlsState() === 'CLOSED' || undefined, { timeoutMs: 5000, what: "ferry's leg sees DTLS closed" });
    await pollUntil(async () => elementStats(await fetchStats(s.port), k.rtp.id).nativeRelay === 'js' || undefined, { timeoutMs: 5000, what: 'the route towards the browser removed' });
    await phoneSends(s, k, 20);
    assert.equal(k.leg.counters.srtpOut, 21, 'nothing sent to a browser that closed DTLS');
    assert.equal(k.browser.rtpIn.length, 21);
    await k.pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('W5 the browser stops answering consent checks while routed: once consent expires the route towards it comes down and nothing more is sent (control: sent while consent held)', { timeout: 60_000 }, async () => {
    const { s, c } = await server({ ice: loadIceSettings({ FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS: '200', FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS: '1500' }, '127.0.0.1') });
    seq = SEQ_START;
    const k = await setUpCall(s, c, false, await plainPhone());
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    // control: while consent holds, the phone's packets go to the browser
    await phoneSends(s, k, 20);
    await waitFor(() => k.leg.counters.srtpOut === 21, 5000, 'the 20 packets sent to the browser');
    await k.browser.freeze();
    await pollUntil(() => k.leg.iceState() === 'FAILED' || undefined, { timeoutMs: 10_000, what: 'consent expired (ICE failed)' });
    await pollUntil(async () => elementStats(await fetchStats(s.port), k.rtp.id).nativeRelay === 'js' || undefined, { timeoutMs: 5000, what: 'the route towards the browser removed' });
    const sent = k.leg.counters.srtpOut;
    await phoneSends(s, k, 20);
    assert.equal(k.leg.counters.srtpOut, sent, 'nothing sent once consent expired');
    await k.pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('W6 FERRY_MEDIA_WORKERS=2: a browser <-> phone call in a relay worker goes through its native relay, getStats right', { timeout: 60_000 }, async () => {
    const { s, c } = await server({ workers: 2 });
    seq = SEQ_START;
    const pipeline = await c.create('MediaPipeline');
    const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
    const rtp = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const browser = new WebRtcTestPeer();
    const phone = await plainPhone();
    closers.push(() => browser.close(), () => phone.close(), () => pipeline.release());
    phone.useRemoteSdp(await call<string>(rtp, 'processOffer', phone.sdp()));
    await call(webrtc, 'connect', rtp);
    await call(rtp, 'connect', webrtc);
    const offer = await call<string>(webrtc, 'generateOffer');
    await call(webrtc, 'processAnswer', await browser.answer(offer));
    await browser.connected;
    // the leg lives in a worker: only what the media server reports is seen from here
    const k = { pipeline, webrtc, rtp, browser, phone, leg: undefined as unknown as WeriftLeg };
    await pollUntil(async () => elementStats(await fetchStats(s.port), webrtc.id).dtls === 'CONNECTED' || undefined, { timeoutMs: 10_000, what: "ferry's WebRTC leg connected (/stats dtls)" });
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, webrtc.id, rtp.id);
    await exchange(k, 50, 'native in the worker');
    const st = await call<Record<string, { type: string; packetsReceived?: number; packetsSent?: number }>>(webrtc, 'getStats', 'AUDIO');
    assert.equal(Object.values(st).find((x) => x.type === 'inboundrtp')?.packetsReceived, 51);
    assert.equal(Object.values(st).find((x) => x.type === 'outboundrtp')?.packetsSent, 51);
    assert.equal(browser.rtpIn.length, 51);
    await pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed in the worker' });
  });

  test('W7 browser <-> browser (two WebRtcEndpoints): SRTP decrypted with one leg\'s keys and encrypted with the other\'s, natively both ways', { timeout: 60_000 }, async () => {
    const { s, c } = await server();
    const pipeline = await c.create('MediaPipeline');
    closers.push(() => pipeline.release());
    const ends = [];
    for (let i = 0; i < 2; i++) {
      const webrtc = await call<KurentoObjectLike>(pipeline, 'create', 'WebRtcEndpoint');
      const browser = new WebRtcTestPeer();
      closers.push(() => browser.close());
      ends.push({ webrtc, browser });
    }
    const [a, b] = ends as [(typeof ends)[number], (typeof ends)[number]];
    await call(a.webrtc, 'connect', b.webrtc);
    await call(b.webrtc, 'connect', a.webrtc);
    for (const e of ends) {
      const offer = await call<string>(e.webrtc, 'generateOffer');
      await call(e.webrtc, 'processAnswer', await e.browser.answer(offer));
      await e.browser.connected;
    }
    const legs = ends.map((e) => weriftLeg(s, e.webrtc.id));
    await pollUntil(() => legs.every((l) => l.dtlsState() === 'CONNECTED') || undefined, { timeoutMs: 10_000, what: 'both legs connected' });
    await routedBoth(s.port, a.webrtc.id, b.webrtc.id);
    const before = nativeRelay().counters().forwarded;
    for (let i = 0; i < 50; i += 10) {
      for (let j = 0; j < 10; j++) {
        const q = i + j;
        a.browser.sendRtp(rtpPacket(0, 100 + q, 160 * q, 0, Buffer.alloc(160, 0xa0)));
        b.browser.sendRtp(rtpPacket(0, 60_000 + q, 160 * q, 0, Buffer.alloc(160, 0xb0)));
      }
      await waitFor(() => a.browser.rtpIn.length >= i + 10 && b.browser.rtpIn.length >= i + 10, 5000, `${i + 10} packets each way`);
    }
    assert.ok(nativeRelay().counters().forwarded - before >= 100, 'both directions natively');
    assert.ok(b.browser.rtpIn.every((p) => p.subarray(12).equals(Buffer.alloc(160, 0xa0))), "A's audio at B");
    assert.ok(a.browser.rtpIn.every((p) => p.subarray(12).equals(Buffer.alloc(160, 0xb0))), "B's audio at A");
    for (const l of legs) {
      assert.equal(l.counters.srtpOut, 50);
      assert.equal(l.counters.srtpRefused, 0);
      assert.equal(l.activity().packetsIn, 50);
    }
    await pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('W8 werift nominates another pair while the browser keeps sending from its address: the route follows the media (source filter moves, the stream handed over, natively again)', { timeout: 60_000 }, async () => {
    const { s, c } = await server();
    seq = SEQ_START;
    const k = await setUpCall(s, c, false, await plainPhone());
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    await exchange(k, 10, 'native');
    // werift's nomination moves to another address of the browser on the same socket (as after a renomination)
    const conn = (k.leg as unknown as { pc: { iceTransports: { connection: IceConnectionInternals }[] } }).pc.iceTransports[0]!.connection;
    const nominated = conn.nominated!;
    const [host, port] = nominated.remoteAddr;
    conn.nominated = { ...nominated, remoteAddr: [host, port === 9 ? 10 : 9] };
    // the next datagram from the browser tells (its SRTCP, passed up), then its SRTP from the old address is taken
    // in JavaScript once (the stream handed back) and the route comes back filtering on where the media comes from
    k.browser.sendRtcp(emptyReceiverReport(k.browser.ssrc));
    const atPhone = k.phone.received().length;
    for (let i = 0; i < 10; i++) {
      const q = seq++;
      k.browser.sendRtp(rtpPacket(0, q & 0xffff, 160 * q, 0, Buffer.alloc(160, 3)));
    }
    await k.phone.waitFor(() => k.phone.received().length >= atPhone + 10, 'the browser audio at the phone after the move');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    const js = jsHighestIndex(k.leg, k.browser.ssrc);
    assert.ok(js !== undefined && js > SEQ_START, 'the stream went through JavaScript for a moment (handed back, then handed over again)');
    const forwarded = nativeRelay().counters().forwarded;
    for (let i = 0; i < 20; i++) {
      const q = seq++;
      k.browser.sendRtp(rtpPacket(0, q & 0xffff, 160 * q, 0, Buffer.alloc(160, 4)));
    }
    await k.phone.waitFor(() => k.phone.received().length >= atPhone + 30, '20 more at the phone');
    assert.ok(nativeRelay().counters().forwarded - forwarded >= 20, 'natively from the address the media comes from');
    assert.equal(jsHighestIndex(k.leg, k.browser.ssrc), js, 'not in JavaScript');
    assert.equal(k.leg.counters.srtpRefused, 0);
    assert.equal(k.leg.counters.replayedDropped, 0);
    const atPhoneSeqs = k.phone.received();
    atPhoneSeqs.forEach((p, i) => i > 0 && assert.equal(p.seq, (atPhoneSeqs[i - 1]!.seq + 1) & 0xffff, 'consecutive at the phone'));
    conn.nominated = nominated;
    await k.pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('W9 the browser nominates a pair from another address while media flows only natively: the routes follow werift\'s nomination at once (no datagram passed up needed), the phone\'s packets go natively to the new pair', { timeout: 60_000 }, async () => {
    const { s, c } = await server();
    seq = SEQ_START;
    const k = await setUpCall(s, c, false, await plainPhone());
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    await exchange(k, 10, 'native');
    const conn = (k.leg as unknown as { pc: { iceTransports: { connection: IceConnectionInternals & IceCredentials }[] } }).pc.iceTransports[0]!.connection;
    const old = conn.nominated!;
    // the browser's other address: answers ferry's checks (as the browser would), counts ferry's SRTP to it
    const moved = await StunAnswerer.open(conn.remotePassword);
    closers.push(() => moved.close());
    // werift drops its nomination as on the browser's renomination: the routes touching the leg go at once
    // (before the fix they stayed, the route into the browser sending to a pair werift no longer has)
    (conn as unknown as { resetNominatedPair(): void }).resetNominatedPair();
    assert.equal(currentOffloadController()?.routeCount, 0, 'both routes removed at once, before any datagram');
    const atOldBrowser = k.browser.rtpIn.length;
    // the routes installed in the event loop turn of werift's nomination: an immediate queued right after the
    // leg heard of it runs after the controller's and before the loop reads any more datagrams
    let routesAtNomination: number | undefined;
    observeNomination(conn, () => {
      if (conn.nominated?.remoteAddr[1] === moved.port) setImmediate(() => (routesAtNomination = currentOffloadController()?.routeCount));
    });
    // the browser nominates the pair from its other address (USE-CANDIDATE); werift's triggered check succeeds
    moved.sendCheck(old.protocol.transport!.socket!.address().port, conn, true);
    await pollUntil(() => routesAtNomination !== undefined || undefined, { timeoutMs: 5000, what: 'werift nominated the pair from the other address' });
    assert.equal(routesAtNomination, 2, 'both routes back in the turn of the nomination, no datagram needed');
    const forwarded = nativeRelay().counters().forwarded;
    for (let i = 0; i < 20; i++) k.phone.send(Buffer.alloc(160, 0x24));
    await pollUntil(() => moved.srtp(k.leg.localSsrc!) >= 20 || undefined, { timeoutMs: 5000, what: "the phone's 20 packets at the new pair" });
    assert.ok(nativeRelay().counters().forwarded - forwarded >= 20, 'natively');
    assert.equal(k.browser.rtpIn.length, atOldBrowser, 'nothing more to the old pair');
    conn.nominated = old;
    await k.pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });

  test('W3 browser <-> SDES SRTP phone: both routes decrypt and encrypt natively, a re-offer hands both streams over, nothing refused', { timeout: 90_000 }, async () => {
    const { s, c } = await server();
    seq = SEQ_START;
    const k = await setUpCall(s, c, false, await srtpPhone());
    await exchange(k, 1, 'first packets');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    const before = nativeRelay().counters().forwarded;
    await exchange(k, 50, 'native');
    assert.ok(nativeRelay().counters().forwarded - before >= 100, 'forwarded natively');
    // a re-offer from the phone (same key) takes both routes down and up again
    k.phone.useRemoteSdp(await call<string>(k.rtp, 'processOffer', k.phone.sdp()));
    await exchange(k, 10, 'after the re-offer');
    await routedBoth(s.port, k.webrtc.id, k.rtp.id);
    await exchange(k, 30, 'native again');
    assert.equal(k.browser.rtpIn.length, 91);
    assert.equal(k.phone.received().length, 91, 'every packet to the phone authenticated');
    assertContinuous(k);
    const st = await fetchStats(s.port);
    assert.equal(elementStats(st, k.rtp.id).srtpRefusedPackets, 0, 'nothing refused at the phone leg');
    assert.equal(k.leg.counters.srtpRefused, 0, 'nothing refused at the WebRTC leg');
    assert.equal(k.leg.counters.srtpOut, 91);
    await k.pipeline.release();
    await pollUntil(async () => (await fetchStats(s.port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what: 'ports freed' });
    assert.equal(nativeRelay().counters().watched, 0);
  });
});
