import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import type { IceCandidateInit } from '../../src/media/webrtc/webrtc-leg';
import { WebRtcTestPeer, rtpPacket, waitFor } from '../helpers/media-webrtc-peer';

/**
 * A stranger floods a live WebRTC leg's ICE port with garbage (random bytes, STUN-looking, DTLS-looking and
 * RTP/RTCP-looking datagrams, seeded) while a real peer keeps sending audio: nothing crashes, no garbage
 * reaches the relay (SRTP authentication), every packet of the real peer still arrives, and the leg still
 * closes cleanly with its ports freed.
 */
const logger = createLogger('test.media-webrtc-garbage');

describe('WebRTC leg under garbage from a stranger', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.splice(0)) await Promise.resolve(c()).catch(() => undefined);
  });

  test('5000 hostile datagrams during a call: no crash, no garbage relayed, no packet of the call lost', { timeout: 60_000 }, async () => {
    const problems: unknown[] = [];
    const onProblem = (e: unknown) => problems.push(e);
    process.on('uncaughtException', onProblem);
    process.on('unhandledRejection', onProblem);
    cleanups.push(() => {
      process.off('uncaughtException', onProblem);
      process.off('unhandledRejection', onProblem);
    });

    const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}) });
    const peer = new WebRtcTestPeer();
    cleanups.push(() => leg.close({ notifyPeer: false }), () => peer.close());
    const local: IceCandidateInit[] = [];
    leg.on('local-candidate', (c) => local.push(c));
    const received: Buffer[] = [];
    leg.on('rtp', (p) => received.push(Buffer.from(p)));
    let connected = false;
    leg.on('connected', () => (connected = true));
    const offer = await peer.createOffer();
    for (const c of peer.candidates) await leg.addRemoteCandidate(c);
    await peer.setAnswer(await leg.processOffer(offer, 'PCMU'));
    await leg.gatherCandidates();
    for (const c of local) await peer.addCandidate(c);
    await waitFor(() => connected, 10_000, 'connected');
    await peer.connected;
    const port = Number(/ 127\.0\.0\.1 (\d+) typ host/.exec(local[0]!.candidate)![1]);

    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => stranger.close());
    let seed = 20261125;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    const garbage = (i: number): Buffer => {
      switch (i % 6) {
        case 0: return bytes(Math.floor(rand() * 200));
        case 1: { // STUN header with the magic cookie and nonsense attributes
          const b = bytes(20 + Math.floor(rand() * 60));
          b.writeUInt16BE(rand() < 0.5 ? 0x0001 : 0x0101, 0);
          b.writeUInt16BE(Math.max(0, b.length - 20), 2);
          b.writeUInt32BE(0x2112a442, 4);
          return b;
        }
        case 2: { // DTLS record header (handshake / alert / application data), nonsense body
          const b = bytes(13 + Math.floor(rand() * 100));
          b[0] = [20, 21, 22, 23][Math.floor(rand() * 4)]!;
          b[1] = 0xfe;
          b[2] = 0xfd;
          b.writeUInt16BE(Math.floor(rand() * 300), 11);
          return b;
        }
        case 3: return Buffer.concat([rtpPacket(0, i, i * 160, 0xdeadbeef, bytes(160)), bytes(10)]); // RTP, fake auth tag
        case 4: { const b = bytes(8 + Math.floor(rand() * 60)); b[0] = 0x80; b[1] = 200 + Math.floor(rand() * 8); return b; } // RTCP-looking
        default: return bytes(1 + Math.floor(rand() * 3));
      }
    };

    // Paced (a flood would only overflow the kernel's socket buffer, which proves nothing about ferry).
    const N = 250;
    for (let i = 0; i < N; i++) {
      peer.sendRtp(rtpPacket(0, 100 + i, 160 * i, 0, Buffer.alloc(160, i & 0xff)));
      for (let k = 0; k < 20; k++) stranger.send(garbage(i * 20 + k), port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 4));
    }
    await waitFor(() => received.length >= N, 10_000, `all ${N} packets of the call`);
    // Positive marker: every garbage datagram handed to the kernel, then one more packet of the call; once
    // it is in, everything sent before it has been through the leg.
    await new Promise<void>((r) => stranger.send(Buffer.alloc(1), port, '127.0.0.1', () => r()));
    peer.sendRtp(rtpPacket(0, 100 + N, 160 * N, 0, Buffer.alloc(160, N & 0xff)));
    await waitFor(() => received.length >= N + 1, 10_000, 'the marker packet after the garbage');
    assert.equal(received.length, N + 1, 'no garbage reached the relay');
    received.forEach((p, i) => {
      assert.equal(p.readUInt16BE(2), 100 + i);
      assert.deepEqual(p.subarray(12), Buffer.alloc(160, i & 0xff));
    });
    // A well-formed plaintext DTLS close_notify (and a fatal alert) from the stranger: werift alone would take
    // either as the end of the connection (it does not authenticate alerts).
    const signals: string[] = [];
    leg.on('signal', (r) => signals.push(r));
    const ended = (reason: string): boolean => signals.includes(reason);
    const alert = (level: number, desc: number) => Buffer.from([21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 99, 0, 2, level, desc]);
    const droppedBefore = leg.strangerDatagrams;
    stranger.send(alert(1, 0), port, '127.0.0.1');
    stranger.send(alert(2, 40), port, '127.0.0.1');
    await waitFor(() => leg.strangerDatagrams >= droppedBefore + 2, 5000, "the stranger's two alerts dropped");
    assert.deepEqual(signals, [], 'a stranger cannot end the call');
    assert.equal(leg.dtlsState(), 'CONNECTED');
    // The same forged alerts from the peer's own address (as an off-path attacker spoofing it would send):
    // dropped because they are not protected under the session keys.
    await peer.sendRaw(alert(1, 0));
    await peer.sendRaw(Buffer.from([21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 26, ...bytes(26)]));
    await waitFor(() => leg.forgedAlerts >= 2, 5000, 'both forged alerts from the peer address dropped');
    assert.deepEqual(signals, [], 'an unauthenticated alert from the peer address cannot end the call');
    assert.equal(leg.forgedAlerts, 2);
    // The peer's real (encrypted) close_notify still ends it at once.
    await peer.closeNotify();
    await waitFor(() => ended('dtls-close'), 1000, 'dtls-close from the authentic alert');
    assert.ok(leg.strangerDatagrams >= 4000, `stranger datagrams dropped: ${leg.strangerDatagrams}`);
    assert.deepEqual(problems, []);
    await leg.close({ notifyPeer: true });
    assert.equal(leg.boundPorts(), 0);
  });
});
