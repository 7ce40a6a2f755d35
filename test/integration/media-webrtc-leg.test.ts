import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { configureIceConsent } from '../../src/media/webrtc/werift-internals';
import type { IceCandidateInit, IceComponentState } from '../../src/media/webrtc/webrtc-leg';
import type { LegEndReason } from '../../src/media/relay/media-leg';
import { WebRtcTestPeer, rtpPacket, waitFor } from '../helpers/media-webrtc-peer';
import { rtcpReceiverReportAndBye } from '../helpers/rtp-peer-parts';

/**
 * The werift-based WebRTC leg against an independent WebRTC peer (werift's own unmodified stack, in its own
 * process: test/helpers/media-webrtc-peer.ts) over 127.0.0.1: trickle ICE,
 * DTLS-SRTP (AEAD_AES_128_GCM through ferry's own SRTP), RTP and DTMF both ways with payload bytes compared, our RTCP SR/BYE, the browser's BYE,
 * DTLS close_notify both ways (measured), SRTP replay protection, ICE consent loss, port accounting.
 */
const logger = createLogger('test.media-webrtc-leg');

interface Harness {
  leg: WeriftLeg;
  peer: WebRtcTestPeer;
  signals: { reason: LegEndReason; at: number }[];
  rtcpSeen: { bye: boolean }[];
  rtpSeen: Buffer[];
  iceStates: IceComponentState[];
  localCandidates: IceCandidateInit[];
  events: string[];
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.splice(0)) await c().catch(() => undefined);
});

async function connectedPair(opts: { pcmaOnly?: boolean; preferred?: 'PCMU' | 'PCMA'; env?: NodeJS.ProcessEnv } = {}): Promise<Harness> {
  const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings(opts.env ?? {}), rtcpIntervalMs: 400 });
  const peer = new WebRtcTestPeer({ pcmaOnly: opts.pcmaOnly });
  cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
  const h: Harness = { leg, peer, signals: [], rtcpSeen: [], rtpSeen: [], iceStates: [], localCandidates: [], events: [] };
  leg.on('signal', (reason) => h.signals.push({ reason, at: Date.now() }));
  leg.on('rtcp', (_p, info) => h.rtcpSeen.push(info));
  leg.on('rtp', (p) => h.rtpSeen.push(Buffer.from(p)));
  leg.on('ice-state', (s) => h.iceStates.push(s));
  leg.on('local-candidate', (c) => {
    h.localCandidates.push(c);
    h.events.push('candidate');
  });
  leg.on('gathering-done', () => h.events.push('gathering-done'));
  leg.on('candidate-pair', () => h.events.push('pair'));
  leg.on('connected', () => h.events.push('connected'));

  const offer = await peer.createOffer();
  assert.ok(!offer.includes('a=candidate'), 'the test offer trickles its candidates');
  // Candidates before the offer: the RPC layer may deliver addIceCandidate first.
  for (const c of peer.candidates) await leg.addRemoteCandidate(c);
  const answer = await leg.processOffer(offer, opts.preferred ?? 'PCMU');
  await peer.setAnswer(answer);
  await leg.gatherCandidates();
  await waitFor(() => h.events.includes('gathering-done'), 5000, 'IceGatheringDone');
  for (const c of h.localCandidates) await peer.addCandidate(c);
  await waitFor(() => h.events.includes('connected'), 10000, 'leg connected');
  await peer.connected;
  return h;
}

describe('WebRTC leg (werift) against a WebRTC peer on loopback', () => {
  test('answers sendrecv with the preferred G.711 + telephone-event, candidates only on loopback', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    const answer = parse(h.leg.localDescription()!);
    const audio = answer.media.find((m) => m.type === 'audio')!;
    assert.equal(audio.direction, 'sendrecv');
    assert.deepEqual(audio.rtp.map((r) => `${r.payload} ${r.codec}`), ['0 PCMU', '126 telephone-event']);
    assert.ok(h.localCandidates.length >= 1);
    for (const c of h.localCandidates) {
      assert.match(c.candidate, /^candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/);
      assert.equal(c.sdpMid, audio.mid !== undefined ? String(audio.mid) : '0');
    }
    const neg = h.leg.negotiated()!;
    assert.equal(neg.codec.name, 'PCMU');
    assert.equal(neg.telephoneEvent?.payloadType, 126);
    assert.equal(neg.direction, 'sendrecv');
    // GATHERING only shows when gatherCandidates() comes before the checks start (here the peer's candidates came first).
    assert.ok(h.iceStates.includes('CONNECTING') && h.iceStates.includes('CONNECTED') && h.iceStates.at(-1) === 'READY', h.iceStates.join(','));
    assert.ok(h.events.indexOf('candidate') < h.events.indexOf('gathering-done'));
    assert.ok(h.events.includes('pair'));
    assert.equal(h.leg.dtlsState(), 'CONNECTED');
    assert.equal(h.leg.boundPorts(), h.localCandidates.length);
  });

  test('RTP and DTMF both ways with payload bytes intact; our SR arrives under our SSRC', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    const neg = h.leg.negotiated()!;
    const payloadOf = (i: number) => Buffer.alloc(160, (i * 7) & 0xff);
    const N = 50;
    for (let i = 0; i < N; i++) {
      h.leg.sendRtp(rtpPacket(0, 1000 + i, 160 * i, 0xabcdef01, payloadOf(i)));
      h.peer.sendRtp(rtpPacket(0, 2000 + i, 160 * i, 0, payloadOf(i + 1)));
      await new Promise((r) => setTimeout(r, 4));
    }
    // RFC 4733 event 5, end bit on the last packet, in both directions.
    const dtmf = (end: boolean, dur: number) => Buffer.from([5, (end ? 0x80 : 0) | 10, dur >> 8, dur & 0xff]);
    for (let i = 0; i < 3; i++) {
      h.leg.sendRtp(rtpPacket(126, 1100 + i, 8000, 0xabcdef01, dtmf(i === 2, 160 * (i + 1)), i === 0));
      h.peer.sendRtp(rtpPacket(126, 2100 + i, 8000, 0, dtmf(i === 2, 160 * (i + 1)), i === 0));
    }
    await waitFor(() => h.peer.rtpIn.length >= N + 3 && h.rtpSeen.length >= N + 3, 5000, 'all packets');
    const toPeer = h.peer.rtpIn.filter((p) => (p[1]! & 0x7f) === 0);
    assert.equal(toPeer.length, N);
    toPeer.forEach((p, i) => {
      assert.equal(p.readUInt16BE(2), 1000 + i);
      assert.equal(p.readUInt32BE(8), neg.localSsrc, 'the leg stamps its signalled SSRC');
      assert.deepEqual(p.subarray(12), payloadOf(i));
    });
    const fromPeer = h.rtpSeen.filter((p) => (p[1]! & 0x7f) === 0);
    assert.equal(fromPeer.length, N);
    fromPeer.forEach((p, i) => assert.deepEqual(p.subarray(12), payloadOf(i + 1)));
    const dtmfToPeer = h.peer.rtpIn.filter((p) => (p[1]! & 0x7f) === 126);
    const dtmfFromPeer = h.rtpSeen.filter((p) => (p[1]! & 0x7f) === 126);
    assert.equal(dtmfToPeer.length, 3);
    assert.equal(dtmfFromPeer.length, 3);
    assert.equal(dtmfToPeer[2]![12], 5);
    assert.equal(dtmfToPeer[2]![13]! & 0x80, 0x80, 'end bit kept');
    assert.equal(dtmfFromPeer[0]![1]! & 0x80, 0x80, 'marker kept');
    const a = h.leg.activity();
    assert.equal(a.packetsOut, N + 3);
    assert.equal(a.packetsIn, N + 3);
    // ferry's own packet path: werift prefers AEAD_AES_128_GCM, so two werift stacks negotiate it, and every
    // SRTP datagram from the selected pair went through the RFC 7983 demultiplexer to ferry's GCM context.
    assert.equal(h.leg.srtpProfile, 'AEAD_AES_128_GCM');
    const demux = h.leg.demuxCounters;
    assert.ok(demux.media >= N + 3, `media datagrams through the demultiplexer: ${demux.media}`);
    assert.equal(demux.mediaOffPath, 0);
    assert.equal(h.leg.counters.srtpRefused, 0, 'no SRTP refused');
    assert.equal(h.leg.counters.replayedDropped, 0);
    assert.equal(h.leg.counters.srtpOut, N + 3);
    // SR (PT 200) from our SSRC, sent by the leg itself (werift's sender is not used).
    await waitFor(() => h.peer.rtcpIn.some((r) => r.packet[1] === 200 && r.packet.readUInt32BE(4) === neg.localSsrc), 5000, 'SR from the leg');
    const sr = h.peer.rtcpIn.find((r) => r.packet[1] === 200 && r.packet.readUInt32BE(4) === neg.localSsrc)!.packet;
    assert.ok(sr.readUInt32BE(20) > 0, 'SR packet count');
    assert.equal(sr[0]! & 0x1f, 1, 'one report block: the stream we receive');
    assert.equal(sr.readUInt32BE(28), h.peer.ssrc, 'report block about the peer SSRC');
    const isOurs = (p: Buffer) => p[1] === 200 && p.readUInt32BE(4) === neg.localSsrc && (p[0]! & 0x1f) === 1;
    await waitFor(() => h.peer.rtcpIn.some((r) => isOurs(r.packet) && (r.packet.readUInt32BE(36) & 0xffff) === 2102), 5000, 'an SR reporting the last packet received (seq 2102)');
    const last = h.peer.rtcpIn.filter((r) => isOurs(r.packet)).at(-1)!.packet;
    assert.equal(last.readIntBE(33, 3), 50, 'cumulative lost: the test skipped seq 2050..2099 before its DTMF');
  });

  test('a browser RTCP BYE is reported as rtcp{bye:true}, never as an end signal', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    h.peer.sendRtcp(rtcpReceiverReportAndBye(h.peer.ssrc));
    await waitFor(() => h.rtcpSeen.some((r) => r.bye), 5000, 'BYE seen by the leg');
    // Positive marker after the BYE on the same path: once it is through, the BYE has been handled in full.
    h.peer.sendRtp(rtpPacket(0, 1, 0, 0, Buffer.alloc(160, 7)));
    await waitFor(() => h.rtpSeen.length === 1, 5000, 'RTP sent after the BYE');
    assert.deepEqual(h.signals, []);
    assert.ok(h.leg.counters.rtcpByeIn >= 1);
  });

  test('SRTP replay protection: a replayed datagram is dropped', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    h.peer.sendRtp(rtpPacket(0, 500, 0, 0, Buffer.alloc(160, 1)));
    await waitFor(() => h.rtpSeen.length === 1 && h.peer.sentSrtp.length >= 1, 5000, 'first packet, seen sent and received');
    const captured = h.peer.sentSrtp.at(-1)!;
    for (let i = 0; i < 3; i++) await h.peer.replay(captured);
    h.peer.sendRtp(rtpPacket(0, 501, 160, 0, Buffer.alloc(160, 2)));
    // The second packet went out after the replays on the same socket: when it and three replay drops are in, all were handled.
    await waitFor(() => h.rtpSeen.length >= 2 && h.leg.counters.replayedDropped >= 3, 5000, 'second packet and three replays dropped');
    assert.equal(h.rtpSeen.length, 2);
    assert.equal(h.leg.counters.replayedDropped, 3);
  });

  test('close({notifyPeer}) sends RTCP BYE and a DTLS close_notify: the peer sees DTLS closed within 1 s; ports freed', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    assert.ok(h.leg.boundPorts() >= 1);
    const t0 = Date.now();
    await h.leg.close({ notifyPeer: true });
    await waitFor(() => h.peer.dtlsStates.some((s) => s.state === 'closed'), 1000, 'peer DTLS closed');
    const closedAt = h.peer.dtlsStates.find((s) => s.state === 'closed')!.at;
    const latency = closedAt - t0;
    logger.warn('measured: close_notify -> peer DTLS closed', { latencyMs: latency });
    assert.ok(latency < 1000, `peer learned in ${latency} ms`);
    await waitFor(() => h.peer.rtcpIn.some((r) => r.bye), 1000, 'RTCP BYE at the peer');
    assert.equal(h.leg.boundPorts(), 0);
    await h.leg.close({ notifyPeer: true }); // idempotent
  });

  test('a close_notify from the peer gives signal(dtls-close) within 1 s', { timeout: 30_000 }, async () => {
    const h = await connectedPair();
    const t0 = Date.now();
    await h.peer.closeNotify();
    await waitFor(() => h.signals.length > 0, 1000, 'dtls-close signal');
    assert.equal(h.signals[0]!.reason, 'dtls-close');
    assert.ok(h.signals[0]!.at - t0 < 1000);
    assert.equal(h.leg.dtlsState(), 'CLOSED');
  });

  test('ICE consent loss (peer frozen) gives signal(ice-failed) after the consent timeout', { timeout: 30_000 }, async () => {
    const h = await connectedPair({ env: { FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS: '500', FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS: '2500' } });
    const t0 = Date.now();
    await h.peer.freeze();
    await waitFor(() => h.signals.some((s) => s.reason === 'ice-failed'), 8000, 'ice-failed');
    const took = Date.now() - t0;
    assert.ok(took >= 1500, `consent expired too early (${took} ms)`);
    assert.equal(h.leg.iceState(), 'FAILED');
    // Restore werift's defaults for the rest of this file's process.
    configureIceConsent({ intervalMs: 5000, timeoutMs: 30000 });
  });

  test('a DTLS fingerprint mismatch fails the DTLS transport: no media, no crash, ports freed', { timeout: 30_000 }, async () => {
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}) });
    const peer = new WebRtcTestPeer();
    cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
    const dtls: string[] = [];
    leg.on('dtls-state', (s) => dtls.push(s));
    let rtp = 0;
    leg.on('rtp', () => rtp++);
    const offer = (await peer.createOffer()).replace(/(a=fingerprint:sha-256 )(..)/, (_m, a: string, b: string) => a + (b === 'AA' ? 'BB' : 'AA'));
    for (const c of peer.candidates) await leg.addRemoteCandidate(c);
    await peer.setAnswer(await leg.processOffer(offer, 'PCMU'));
    await waitFor(() => dtls.includes('FAILED'), 10000, 'DTLS FAILED');
    assert.equal(rtp, 0);
    assert.equal(leg.dtlsState(), 'FAILED');
    await leg.close({ notifyPeer: true });
    assert.equal(leg.boundPorts(), 0);
  });

  test('an ICE address that cannot be bound gives a clear error, not an unreachable answer', { timeout: 30_000 }, async () => {
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({ FERRY_MEDIA_ICE_ADDRESSES: '192.0.2.77' }) });
    const peer = new WebRtcTestPeer();
    cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
    await assert.rejects(leg.processOffer(await peer.createOffer(), 'PCMU'), /no ICE candidate could be gathered on 192\.0\.2\.77/);
    await leg.close();
    assert.equal(leg.boundPorts(), 0);
  });

  test('a late duplicate DTLS HelloVerifyRequest (slow peer) does not fail the handshake', { timeout: 30_000 }, async () => {
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}) });
    const peer = new WebRtcTestPeer();
    cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
    const dtls: string[] = [];
    leg.on('dtls-state', (s) => dtls.push(s));
    const offer = await peer.createOffer();
    // DTLS record (content type 22 handshake) whose first handshake message is HelloVerifyRequest (type 3):
    // held back 700 ms, so the leg (DTLS client) retransmits its ClientHello (at 500 ms) and then receives
    // both answers back to back. werift alone fails the handshake here (client Flight3 throws).
    await peer.holdDatagrams('dtls-hello-verify-request', 700);
    for (const c of peer.candidates) await leg.addRemoteCandidate(c);
    await peer.setAnswer(await leg.processOffer(offer, 'PCMU'));
    await waitFor(() => dtls.includes('CONNECTED') || dtls.includes('FAILED'), 15000, 'DTLS outcome');
    assert.deepEqual(dtls.filter((s) => s === 'FAILED'), [], `DTLS states: ${dtls.join(' > ')}`);
    await peer.connected;
    peer.sendRtp(rtpPacket(0, 1, 0, 0, Buffer.alloc(160, 9)));
    let got = 0;
    leg.on('rtp', () => got++);
    await waitFor(() => got === 1, 5000, 'RTP after the slow handshake');
  });

  test('PCMA when the peer offers only PCMA, even if PCMU is preferred', { timeout: 30_000 }, async () => {
    const h = await connectedPair({ pcmaOnly: true, preferred: 'PCMU' });
    assert.equal(h.leg.negotiated()!.codec.name, 'PCMA');
    h.leg.sendRtp(rtpPacket(8, 1, 0, 1, Buffer.alloc(160, 0xd5)));
    await waitFor(() => h.peer.rtpIn.length === 1, 5000, 'PCMA packet');
    assert.equal(h.peer.rtpIn[0]![1]! & 0x7f, 8);
  });

  test('generateOffer / processAnswer: ferry offers, the peer answers', { timeout: 30_000 }, async () => {
    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}) });
    const peer = new WebRtcTestPeer();
    cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
    const offer = await leg.generateOffer('PCMA');
    const m = parse(offer).media[0]!;
    assert.equal(m.direction, 'sendrecv');
    assert.deepEqual(m.rtp.map((r) => r.codec), ['PCMA', 'PCMU', 'telephone-event']);
    const answer = await peer.answer(offer);
    let connected = false;
    leg.on('connected', () => (connected = true));
    await leg.processAnswer(answer);
    await waitFor(() => connected, 10000, 'connected');
    await peer.connected;
    assert.equal(leg.negotiated()!.codec.name, 'PCMA');
    peer.sendRtp(rtpPacket(8, 9, 0, 0, Buffer.alloc(160, 3)));
    let got: Buffer | undefined;
    leg.on('rtp', (p) => (got = Buffer.from(p)));
    await waitFor(() => got !== undefined, 5000, 'RTP from the answerer');
    assert.deepEqual(got!.subarray(12), Buffer.alloc(160, 3));
    await assert.rejects(leg.processAnswer(answer), /already processed/);
  });
});
