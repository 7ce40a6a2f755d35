import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { LeanBrowserPath } from '../../bench/media/load/lean-browser-path';
import { StreamMeter } from '../../bench/media/load/stream-meter';
import { createPacketBuffer, PACKET_BYTES, readStamp, rtpPayload, stampNext } from '../../bench/media/load/stream-stamp';
import { pollUntil } from '../helpers/wait-for';

/**
 * The load generator's lean browser path (bench/media/load/lean-browser-path.ts): a werift browser whose media
 * bypasses werift both ways (ferry's SRTP keyed from werift's DTLS, sent on the nominated pair's socket, taken
 * off the ICE socket by the RFC 7983 demultiplexer) talks to ferry's own WebRTC leg (WeriftLeg, in this
 * process) over real loopback sockets: packets go both ways and are counted, and a tampered or replayed
 * SRTP packet is refused; with the native SRTP contexts (the default) and with the JavaScript ones.
 */

const PACKETS = 25;

function browserPc(): RTCPeerConnection {
  return new RTCPeerConnection({
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  });
}

for (const nativeSrtp of [true, false]) {
  test(`a lean-mode browser (${nativeSrtp ? 'native' : 'JavaScript'} SRTP) and a ferry WebRTC leg exchange SRTP both ways; a tampered packet is refused`, { timeout: 30_000 }, () =>
    leanBrowserExchange(nativeSrtp));
}

async function leanBrowserExchange(nativeSrtp: boolean): Promise<void> {
  const pc = browserPc();
  pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const leg = new WeriftLeg({ clock: systemClock, logger: createLogger('lean-browser-test'), ice: loadIceSettings({}) });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== 'complete') await new Promise<void>((r) => pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && r()));

    const meter = new StreamMeter();
    const received: Buffer[] = [];
    const lean = new LeanBrowserPath(pc, (packet) => {
      received.push(Buffer.from(packet));
      meter.onReceivedRtp(packet, process.hrtime.bigint());
    }, nativeSrtp);
    // keep a copy of each raw SRTP datagram the demultiplexer hands over (before it is decrypted in place)
    const rawIn: Buffer[] = [];
    const deliver = lean.onDatagram.bind(lean);
    lean.onDatagram = (data: Buffer): void => {
      rawIn.push(Buffer.from(data));
      deliver(data);
    };

    const fromBrowser: number[] = [];
    leg.on('rtp', (packet: Buffer) => {
      const stamp = readStamp(rtpPayload(packet) ?? Buffer.alloc(0));
      if (stamp?.streamId === 1) fromBrowser.push(stamp.epoch);
    });
    const legConnected = new Promise<void>((r) => leg.once('connected', () => r()));
    const browserConnected = new Promise<void>((r) => pc.connectionStateChange.subscribe((s) => s === 'connected' && r()));

    const answer = await leg.processOffer(pc.localDescription!.sdp, 'PCMU');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await Promise.all([browserConnected, legConnected]);
    assert.equal(lean.started, false, 'the path sends nothing before it is keyed');
    const dtls = pc.dtlsTransports[0]!;
    const ssrc = pc.getTransceivers()[0]!.sender.ssrc;
    lean.start(dtls, PACKET_BYTES);
    assert.equal(lean.started, true);
    assert.equal(lean.nativeSrtp, nativeSrtp, nativeSrtp ? 'the native SRTP contexts carry RTP' : 'the JavaScript SRTP contexts carry RTP');
    assert.equal(lean.profile, leg.srtpProfile, 'both sides use the SRTP profile DTLS negotiated');

    // browser → leg: one packet buffer rewritten in place per send
    const out = createPacketBuffer(ssrc, 1, 0);
    let seq = 1000;
    for (let i = 0; i < PACKETS; i++) {
      stampNext(out, ++seq, 7, process.hrtime.bigint());
      assert.equal(lean.send(out), true);
    }
    await pollUntil(() => fromBrowser.length >= PACKETS, { timeoutMs: 10_000, what: `${PACKETS} lean packets at the ferry leg` });
    assert.equal(fromBrowser.length, PACKETS);
    assert.equal(lean.counters.sent, PACKETS);
    assert.ok(fromBrowser.every((e) => e === 7), 'the stamps arrive intact (decrypted by ferry with the same keys)');

    // leg → browser: ferry protects, the lean path unprotects and the meter counts the stamps
    const back = createPacketBuffer(0x1234, 2, 1);
    for (let i = 0; i < PACKETS; i++) {
      stampNext(back, 500 + i, 9, process.hrtime.bigint());
      leg.sendRtp(back);
    }
    await pollUntil(() => meter.report(9).received[1] >= PACKETS, { timeoutMs: 10_000, what: `${PACKETS} packets at the lean browser` });
    assert.equal(meter.report(9).received[1], PACKETS);
    assert.equal(lean.counters.received, PACKETS);
    assert.equal(lean.counters.refused, 0, 'positive control: genuine packets all pass');
    assert.deepEqual(meter.report(9).heardIds, [2]);

    // a genuine datagram with one payload bit flipped: refused, nothing counted
    const genuine = rawIn.find((d) => d[1]! < 192);
    assert.ok(genuine, 'a raw SRTP datagram was captured');
    const tampered = Buffer.from(genuine);
    tampered[30] = tampered[30]! ^ 0x01;
    lean.onDatagram(tampered);
    assert.equal(lean.counters.refused, 1);
    // the same genuine datagram again: a replay, refused
    lean.onDatagram(Buffer.from(genuine));
    assert.equal(lean.counters.refused, 2);
    assert.equal(lean.counters.received, PACKETS);
    assert.equal(meter.report(9).received[1], PACKETS);
  } finally {
    await leg.close();
    await pc.close();
  }
}
