import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { packets as rtpjs } from 'rtp.js';

const { CompoundPacket, ByePacket, ReceiverReportPacket, SdesPacket, SenderReportPacket } = rtpjs;
import { buildBye, buildReport, parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { randomBytes } from 'node:crypto';
import { REPLAY_WINDOW, ReplayWindow } from '../../src/media/srtp/replay-window';
import { SrtpContext, rtpHeaderLength } from '../../src/media/srtp/srtp-context';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { classifyDatagram, isRtcp } from '../../src/media/webrtc/rfc7983';

const view = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.byteLength);

describe('WebRTC leg RTCP compound handling', () => {
  test('our goodbye (SR + SDES + BYE) parses back with rtp.js (an independent parser)', { timeout: 30_000 }, () => {
    const compound = Buffer.concat([
      buildReport(0x11223344, 'ferry-cname', { ntpMs: 1_700_000_000_500, rtpTimestamp: 8000, packetCount: 50, octetCount: 8000 }, []),
      buildBye([0x11223344], 'call ended'),
    ]);
    const parsed = new CompoundPacket(view(compound));
    const packets = parsed.getPackets();
    assert.equal(packets.length, 3);
    const sr = packets[0] as InstanceType<typeof SenderReportPacket>;
    assert.ok(sr instanceof SenderReportPacket);
    assert.equal(sr.getSsrc(), 0x11223344);
    assert.equal(sr.getPacketCount(), 50);
    assert.equal(sr.getOctetCount(), 8000);
    assert.equal(sr.getRtpTimestamp(), 8000);
    const sdes = packets[1] as InstanceType<typeof SdesPacket>;
    assert.ok(sdes instanceof SdesPacket);
    assert.deepEqual(sdes.getChunks()[0]!.getItems().map((it) => [it.type, it.text]), [[1, 'ferry-cname']]);
    const bye = packets[2] as InstanceType<typeof ByePacket>;
    assert.ok(bye instanceof ByePacket);
    assert.deepEqual(bye.getSsrcs(), [0x11223344]);
    assert.equal(bye.getReason(), 'call ended');
    const summary = parseRtcpCompound(compound);
    assert.deepEqual([summary.valid, summary.bye, summary.senderSsrc, summary.types], [true, true, 0x11223344, [200, 202, 203]]);
    const rr = new CompoundPacket(view(Buffer.concat([buildReport(7, 'c', undefined, []), buildBye([7])]))).getPackets();
    assert.ok(rr[0] instanceof ReceiverReportPacket);
    assert.ok(rr[2] instanceof ByePacket);
  });

  test('BYE detection: found anywhere in a compound, absent when there is none', { timeout: 30_000 }, () => {
    const rr = buildReport(1, 'x', undefined, []);
    assert.equal(parseRtcpCompound(rr).bye, false);
    assert.equal(parseRtcpCompound(Buffer.concat([rr, buildBye([1])])).bye, true);
    assert.equal(parseRtcpCompound(Buffer.concat([rr, buildBye([1], 'r'.repeat(200))])).bye, true);
  });

  test('fuzz: truncated, bit-flipped and random buffers never throw and never claim a BYE outside valid framing', { timeout: 30_000 }, () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const base = Buffer.concat([buildReport(9, 'c', { ntpMs: 1, rtpTimestamp: 2, packetCount: 3, octetCount: 4 }, []), buildBye([9], 'x')]);
    for (let i = 0; i < 20000; i++) {
      let b: Buffer;
      const kind = i % 3;
      if (kind === 0) b = base.subarray(0, Math.floor(rand() * base.length));
      else if (kind === 1) {
        b = Buffer.from(base);
        for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      } else b = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      const info = parseRtcpCompound(b);
      if (info.valid) {
        let len = 0;
        for (let pos = 0; pos < b.length; pos += (b.readUInt16BE(pos + 2) + 1) * 4) len = pos + (b.readUInt16BE(pos + 2) + 1) * 4;
        assert.equal(len, b.length);
      } else {
        assert.equal(info.senderSsrc, undefined);
      }
    }
  });

  test('rtpHeaderLength handles CSRCs, extensions and short buffers', { timeout: 30_000 }, () => {
    const p = Buffer.alloc(12 + 8 + 4 + 8 + 10);
    p[0] = 0x80 | 0x10 | 2; // X bit, 2 CSRCs
    p.writeUInt16BE(0xbede, 20);
    p.writeUInt16BE(2, 22); // 2 words of extension
    assert.equal(rtpHeaderLength(p, p.length), 12 + 8 + 4 + 8);
    assert.equal(rtpHeaderLength(p, 11), -1);
    assert.equal(rtpHeaderLength(p, 25), -1);
    assert.equal(rtpHeaderLength(p, 12 + 8 + 4 + 8), 12 + 8 + 4 + 8, 'a header that exactly fills the length');
  });
});

describe('SRTP replay window (RFC 3711 §3.3.2), src/media/srtp/replay-window.ts', () => {
  /** isNew, then commit (as SrtpContext does once the tag verified). */
  const accept = (w: ReplayWindow, i: number): boolean => {
    if (!w.isNew(i)) return false;
    w.commit(i);
    return true;
  };

  test('accepts new indexes, rejects replays and indexes older than the window', { timeout: 30_000 }, () => {
    assert.equal(REPLAY_WINDOW, 128);
    const w = new ReplayWindow();
    assert.equal(accept(w, 100), true);
    assert.equal(accept(w, 100), false);
    assert.equal(accept(w, 99), true, 'late but inside the window');
    assert.equal(accept(w, 99), false);
    assert.equal(accept(w, 234), true, 'jump ahead');
    assert.equal(accept(w, 100), false, 'now older than the window');
    assert.equal(accept(w, 107), true, 'inside the new window, never seen');
    assert.equal(accept(w, 107), false);
    assert.equal(accept(w, 235), true);
    assert.equal(w.highestIndex, 235);
  });

  test('a large jump clears stale slots: indexes inside the new window are not mistaken for replays', { timeout: 30_000 }, () => {
    const w = new ReplayWindow();
    for (let i = 0; i < 128; i++) assert.equal(accept(w, i), true);
    assert.equal(accept(w, 10_000), true);
    for (let i = 9873; i < 10_000; i++) assert.equal(accept(w, i), true, `index ${i}`);
    for (let i = 9873; i <= 10_000; i++) assert.equal(accept(w, i), false, `replay ${i}`);
    assert.equal(accept(w, 9872), false, 'just older than the window');
  });

  test('isNew alone (a packet whose tag then fails) does not move the window', { timeout: 30_000 }, () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 5), true);
    assert.equal(w.isNew(50_000), true);
    assert.equal(w.highestIndex, 5);
    assert.equal(accept(w, 6), true, 'the next genuine index still passes');
  });

  test('against a reference set over a random stream with reordering and duplicates', { timeout: 30_000 }, () => {
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const w = new ReplayWindow();
    const seen = new Set<number>();
    let highest = -1;
    let head = 0;
    for (let i = 0; i < 50000; i++) {
      head += rand() < 0.9 ? 1 : Math.floor(rand() * 300);
      const idx = Math.max(0, head - Math.floor(rand() * 150));
      const expected = !seen.has(idx) && idx > highest - 128;
      assert.equal(accept(w, idx), expected, `index ${idx} (highest ${highest})`);
      if (expected) {
        seen.add(idx);
        highest = Math.max(highest, idx);
      }
    }
  });

  test('an SRTP context keeps one window per SSRC', { timeout: 30_000 }, () => {
    const master = { masterKey: randomBytes(16), masterSalt: randomBytes(14) };
    const tx = new SrtpContext(master);
    const rx = new SrtpContext(master);
    const packet = (ssrc: number) => {
      const b = Buffer.alloc(32);
      b[0] = 0x80;
      b.writeUInt16BE(5, 2);
      b.writeUInt32BE(ssrc, 8);
      return tx.protectRtp(b);
    };
    const a = packet(1);
    const b = packet(2);
    const again = Buffer.from(a);
    assert.ok(rx.unprotectRtp(a));
    assert.ok(rx.unprotectRtp(b), 'the same sequence number from another SSRC is new');
    assert.equal(rx.unprotectRtp(again), undefined);
    assert.equal(rx.counters.replays, 1);
  });
});

describe('RFC 7983 demultiplexing of the ICE socket', () => {
  test('first byte: 0-3 STUN, 16-19 ZRTP, 20-63 DTLS, 64-79 TURN channel, 128-191 RTP/RTCP, the rest none; RTCP by its second byte', { timeout: 30_000 }, () => {
    const kind = (b: number) => classifyDatagram(Buffer.from([b, 0]));
    const expected = (b: number) =>
      b <= 3 ? 'stun' : b >= 16 && b <= 19 ? 'zrtp' : b >= 20 && b <= 63 ? 'dtls' : b >= 64 && b <= 79 ? 'turn-channel' : b >= 128 && b <= 191 ? 'media' : 'other';
    for (let b = 0; b < 256; b++) assert.equal(kind(b), expected(b), `first byte ${b}`);
    assert.deepEqual([kind(0), kind(3), kind(4), kind(19), kind(20), kind(63), kind(64), kind(127), kind(128), kind(191), kind(192)], ['stun', 'stun', 'other', 'zrtp', 'dtls', 'dtls', 'turn-channel', 'other', 'media', 'media', 'other']);
    assert.equal(classifyDatagram(Buffer.alloc(0)), 'other');
    assert.equal(isRtcp(Buffer.from([0x80, 200])), true, 'SR');
    assert.equal(isRtcp(Buffer.from([0x81, 203])), true, 'BYE');
    assert.equal(isRtcp(Buffer.from([0x80, 0])), false, 'PCMU');
    assert.equal(isRtcp(Buffer.from([0x80, 0x80 | 111])), false, 'Opus with the marker bit');
    assert.equal(isRtcp(Buffer.from([0x80, 224])), false, 'marker + PT 96');
  });
});

describe('ICE settings', () => {
  test('defaults to loopback and werift consent timing; validates input', { timeout: 30_000 }, () => {
    assert.deepEqual(loadIceSettings({}), { addresses: ['127.0.0.1'], portRange: undefined, consentIntervalMs: 5000, consentTimeoutMs: 30000 });
    assert.deepEqual(loadIceSettings({ FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.1, 127.0.0.2', FERRY_MEDIA_ICE_PORT_MIN: '40000', FERRY_MEDIA_ICE_PORT_MAX: '40100' }).addresses, ['127.0.0.1', '127.0.0.2']);
    assert.throws(() => loadIceSettings({ FERRY_MEDIA_ICE_ADDRESSES: 'localhost' }), /not an IPv4 address/);
    assert.deepEqual(loadIceSettings({}, '10.99.0.1').addresses, ['10.99.0.1'], 'the media host is the default');
    assert.deepEqual(loadIceSettings({}, '0.0.0.0').addresses, ['127.0.0.1']);
    assert.deepEqual(loadIceSettings({ FERRY_MEDIA_ICE_ADDRESSES: '127.0.0.3' }, '10.99.0.1').addresses, ['127.0.0.3']);
    assert.throws(() => loadIceSettings({ FERRY_MEDIA_ICE_PORT_MIN: '5000' }), /PORT_MIN\/MAX/);
    assert.throws(() => loadIceSettings({ FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS: '1000', FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS: '2000' }), /must exceed/);
  });
});
