import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { packets as rtpjs } from 'rtp.js';

const { CompoundPacket, ByePacket, ReceiverReportPacket, SdesPacket, SenderReportPacket } = rtpjs;
import { buildBye, buildReport, parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import { ReplayGuard, ReplayWindow } from '../../src/media/webrtc/srtp-replay-window';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { rtpHeaderLength } from '../../src/media/webrtc/werift-internals';

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
    assert.equal(rtpHeaderLength(p), 12 + 8 + 4 + 8);
    assert.equal(rtpHeaderLength(p.subarray(0, 11)), -1);
    assert.equal(rtpHeaderLength(p.subarray(0, 25)), -1);
  });
});

describe('SRTP replay window (RFC 3711 §3.3.2)', () => {
  test('accepts new indexes, rejects replays and indexes older than the window', { timeout: 30_000 }, () => {
    const w = new ReplayWindow(64);
    assert.equal(w.accept(100), true);
    assert.equal(w.accept(100), false);
    assert.equal(w.accept(99), true, 'late but inside the window');
    assert.equal(w.accept(99), false);
    assert.equal(w.accept(170), true, 'jump ahead');
    assert.equal(w.accept(100), false, 'now older than the window');
    assert.equal(w.accept(107), true, 'inside the new window, never seen');
    assert.equal(w.accept(107), false);
    assert.equal(w.accept(171), true);
  });

  test('a large jump clears stale slots: indexes inside the new window are not mistaken for replays', { timeout: 30_000 }, () => {
    const w = new ReplayWindow(8);
    for (let i = 0; i < 8; i++) assert.equal(w.accept(i), true);
    assert.equal(w.accept(1000), true);
    for (let i = 993; i < 1000; i++) assert.equal(w.accept(i), true, `index ${i}`);
    for (let i = 993; i <= 1000; i++) assert.equal(w.accept(i), false, `replay ${i}`);
  });

  test('against a reference set over a random stream with reordering and duplicates', { timeout: 30_000 }, () => {
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const w = new ReplayWindow(128);
    const seen = new Set<number>();
    let highest = -1;
    let head = 0;
    for (let i = 0; i < 50000; i++) {
      head += rand() < 0.9 ? 1 : Math.floor(rand() * 300);
      const idx = Math.max(0, head - Math.floor(rand() * 150));
      const expected = !seen.has(idx) && idx > highest - 128;
      assert.equal(w.accept(idx), expected, `index ${idx} (highest ${highest})`);
      if (expected) {
        seen.add(idx);
        highest = Math.max(highest, idx);
      }
    }
  });

  test('ReplayGuard keeps one window per SSRC', { timeout: 30_000 }, () => {
    const g = new ReplayGuard();
    assert.equal(g.accept(1, 5), true);
    assert.equal(g.accept(2, 5), true);
    assert.equal(g.accept(1, 5), false);
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
