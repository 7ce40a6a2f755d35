import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { RtcpSession } from '../../src/media/rtcp/rtcp-session';
import { deterministicInterval, randomisedInterval, RECONSIDERATION_COMPENSATION, RTCP_INTERVAL_FLOOR_MS, type IntervalInputs } from '../../src/media/rtcp/report-interval';
import { buildReport, ntpMiddle, parseRtcpCompound, RTCP_BYE, RTCP_RR, RTCP_SR } from '../../src/media/rtcp/rtcp-packets';
import { rng } from '../helpers/seeded-random';

const OUR_SSRC = 0x11111111;
const PEER_SSRC = 0x22222222;

function rtp(ssrc: number, seq: number, ts: number, payload = 160): Buffer {
  const b = Buffer.alloc(12 + payload);
  b[0] = 0x80;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

function session(minIntervalMs: number, seed = 1) {
  const clock = new FakeClock();
  const sent: { at: number; packet: Buffer }[] = [];
  const s = new RtcpSession({ clock, ssrc: OUR_SSRC, cname: 'test', clockRate: 8000, minIntervalMs, random: rng(seed), send: (packet) => sent.push({ at: clock.now(), packet }) });
  return { clock, sent, s };
}

function statsOf(xs: number[]) {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
}

const base: IntervalInputs = { members: 2, senders: 2, weSent: true, rtcpBandwidth: Infinity, avgRtcpSize: 100, initial: false, minIntervalMs: 5000 };

describe('media RTCP: report interval (RFC 3550 §6.2, §6.3, A.7)', () => {
  test('deterministic interval: the minimum, halved before the first report, floored; the bandwidth term when it is larger', { timeout: 5000 }, () => {
    assert.equal(deterministicInterval(base), 5000);
    assert.equal(deterministicInterval({ ...base, initial: true }), 2500);
    assert.equal(deterministicInterval({ ...base, minIntervalMs: 1 }), RTCP_INTERVAL_FLOOR_MS);
    // 2 members x 100 bytes at 50 bytes/s = 4 s, above a 1 s minimum
    assert.equal(deterministicInterval({ ...base, minIntervalMs: 1000, rtcpBandwidth: 50 }), 4000);
    // few senders (1 of 8): a sender shares 25 % of the bandwidth with the senders only: 1 x 100 / 12.5 = 8 s
    assert.equal(deterministicInterval({ ...base, members: 8, senders: 1, minIntervalMs: 1000, rtcpBandwidth: 50 }), 8000);
    // ...a receiver 75 % with the other 7 receivers: 7 x 100 / 37.5 = 18.67 s
    assert.ok(Math.abs(deterministicInterval({ ...base, members: 8, senders: 1, weSent: false, minIntervalMs: 1000, rtcpBandwidth: 50 }) - 18666.67) < 0.01);
  });

  test('randomised interval: Td x [0.5, 1.5) / (e - 3/2), its bounds', { timeout: 5000 }, () => {
    assert.equal(randomisedInterval(base, () => 0), (5000 * 0.5) / RECONSIDERATION_COMPENSATION);
    assert.ok(Math.abs(randomisedInterval(base, () => 0.5) - 5000 / 1.21828) < 1);
    assert.ok(randomisedInterval(base, () => 0.999999) < (5000 * 1.5) / RECONSIDERATION_COMPENSATION);
  });

  test('2000 reports on a fake clock (seeded): mean = the configured interval (with reconsideration), spread 0.41..1.23 of it', { timeout: 10_000 }, () => {
    const { clock, sent, s } = session(5000, 3550);
    s.start();
    clock.advance(2000 * 5000 * 1.05);
    s.stop();
    assert.ok(sent.length >= 2000, `${sent.length} reports`);
    const first = sent[0]!.at - 1_700_000_000_000;
    assert.ok(first >= (2500 * 0.5) / RECONSIDERATION_COMPENSATION && first <= (2500 * 1.5) / RECONSIDERATION_COMPENSATION, `first report after ${first} ms (half the minimum, randomised)`);
    const gaps = sent.slice(1).map((r, i) => r.at - sent[i]!.at);
    const g = statsOf(gaps);
    // Reconsideration (A.7 OnExpire) + the e-3/2 compensation: E[T] = Td (simulated: 1.0004 Td, sd 0.1785 Td).
    assert.ok(Math.abs(g.mean - 5000) < 0.02 * 5000, `mean ${g.mean.toFixed(1)} ms`);
    assert.ok(g.min >= (0.5 * 5000) / RECONSIDERATION_COMPENSATION - 1, `min ${g.min}`);
    assert.ok(g.max <= (1.5 * 5000) / RECONSIDERATION_COMPENSATION + 1, `max ${g.max}`);
    assert.ok(g.sd > 0.15 * 5000 && g.sd < 0.21 * 5000, `sd ${g.sd.toFixed(1)} ms: randomised, not fixed`);
    assert.ok(g.min < 0.6 * 5000 && g.max > 1.15 * 5000, 'the whole range is used');
    assert.equal(clock.pending(), 0, 'stop() leaves no timer');
  });

  test('a different seed gives different times but the same statistics (a 200 ms interval as tests use)', { timeout: 10_000 }, () => {
    const { clock, sent, s } = session(200, 42);
    s.start();
    clock.advance(1000 * 200 * 1.05);
    s.stop();
    const g = statsOf(sent.slice(1).map((r, i) => r.at - sent[i]!.at));
    assert.ok(Math.abs(g.mean - 200) < 0.03 * 200, `mean ${g.mean}`);
    assert.ok(g.sd > 0.14 * 200 && g.sd < 0.22 * 200, `sd ${g.sd}`);
  });
});

describe('media RTCP: session', () => {
  test('RR before we send; SR while we send and for one interval after; a report block only for what arrived since the last report', { timeout: 5000 }, () => {
    const { clock, sent, s } = session(1000);
    s.start();
    clock.advance(3000);
    assert.ok(sent.length >= 1);
    const first = parseRtcpCompound(sent[0]!.packet);
    assert.deepEqual([first.types, first.senderSsrc, first.reportBlocks.length], [[RTCP_RR, 202], OUR_SSRC, 0]);
    for (let i = 0; i < 5; i++) {
      s.onRtpSent(rtp(OUR_SSRC, i, i * 160));
      s.onRtpReceived(rtp(PEER_SSRC, 100 + i, i * 160));
    }
    const n = sent.length;
    clock.advance(1500);
    assert.ok(sent.length > n, 'a report came');
    const sr = parseRtcpCompound(sent[n]!.packet);
    assert.equal(sr.types[0], RTCP_SR);
    assert.deepEqual([sr.senderReport!.packetCount, sr.senderReport!.octetCount], [5, 5 * 160]);
    assert.deepEqual(sr.reportBlocks.map((b) => [b.ssrc, b.extendedHighestSeq]), [[PEER_SSRC, 104]]);
    // nothing sent or received any more: the next report is still an SR (sent since the one before), with no block; then RRs
    const m = sent.length;
    clock.advance(5000);
    const later = sent.slice(m).map((r) => parseRtcpCompound(r.packet));
    assert.ok(later.length >= 2);
    assert.deepEqual([later[0]!.types[0], later[0]!.reportBlocks.length], [RTCP_SR, 0]);
    assert.deepEqual([later[1]!.types[0], later[1]!.reportBlocks.length], [RTCP_RR, 0]);
    s.stop();
  });

  test('RTT from the peer\'s report block about our stream: A - LSR - DLSR', { timeout: 5000 }, () => {
    const { clock, sent, s } = session(1000);
    s.onRtpSent(rtp(OUR_SSRC, 1, 160));
    s.start();
    clock.advance(1600);
    const srAt = sent[0]!.at;
    const sr = parseRtcpCompound(sent[0]!.packet).senderReport!;
    assert.equal(sr.ntpMiddle, ntpMiddle(srAt));
    clock.advance(srAt + 300 - clock.now()); // the peer's RR arrives 300 ms after our SR; it held it 100 ms
    const rr = buildReport(PEER_SSRC, 'peer', undefined, [{ ssrc: OUR_SSRC, fractionLost: 64, cumulativeLost: 3, extendedHighestSeq: 1, jitter: 80, lsr: sr.ntpMiddle, dlsr: Math.round(0.1 * 65536) }]);
    s.onRtcpReceived(rr);
    const st = s.stats();
    assert.ok(st.roundTripTime !== undefined && Math.abs(st.roundTripTime - 0.2) < 0.001, `rtt ${st.roundTripTime}`);
    assert.deepEqual(st.remoteReport, { fractionLost: 0.25, packetsLost: 3, jitter: 0.01 });
    assert.equal(st.reportsReceived, 1);
    // a lying peer: an LSR from the future (negative RTT) or a DLSR that leaves more than 60 s are not kept
    const lie = (lsr: number, dlsr: number) => buildReport(PEER_SSRC, 'peer', undefined, [{ ssrc: OUR_SSRC, fractionLost: 0, cumulativeLost: 0, extendedHighestSeq: 1, jitter: 0, lsr, dlsr }]);
    s.onRtcpReceived(lie((ntpMiddle(clock.now()) + 65536) >>> 0, 0));
    s.onRtcpReceived(lie((ntpMiddle(clock.now()) - 120 * 65536) >>> 0, 0));
    assert.equal(s.stats().roundTripTime, st.roundTripTime, 'the last sane RTT stays');
    assert.equal(s.stats().reportsReceived, 3);
    s.stop();
  });

  test('our next report echoes the peer\'s SR (LSR, DLSR) and carries the jitter we measured', { timeout: 5000 }, () => {
    const { clock, sent, s } = session(1000);
    s.start();
    s.onRtpReceived(rtp(PEER_SSRC, 1, 0));
    clock.advance(20);
    s.onRtpReceived(rtp(PEER_SSRC, 2, 160));
    clock.advance(25); // 5 ms late: D = 40, J = 2.5
    s.onRtpReceived(rtp(PEER_SSRC, 3, 320));
    s.onRtcpReceived(buildReport(PEER_SSRC, 'peer', { ntpMs: 1_600_000_000_000, rtpTimestamp: 0, packetCount: 3, octetCount: 480 }, []));
    const arrived = clock.now();
    clock.advance(2000);
    const report = parseRtcpCompound(sent[0]!.packet);
    const b = report.reportBlocks[0]!;
    assert.deepEqual([b.ssrc, b.jitter, b.lsr], [PEER_SSRC, 2, ntpMiddle(1_600_000_000_000)]);
    assert.equal(b.dlsr, Math.round(((sent[0]!.at - arrived) * 65536) / 1000));
    assert.equal(s.stats().jitter, 2.5 / 8000);
    s.stop();
  });

  test('goodbye(): one report + SDES + BYE, once; the reports stop', { timeout: 5000 }, () => {
    const { clock, sent, s } = session(1000);
    s.start();
    const bye = s.goodbye('done')!;
    const p = parseRtcpCompound(bye);
    assert.deepEqual([p.types, p.byeSsrcs, p.senderSsrc], [[RTCP_RR, 202, RTCP_BYE], [OUR_SSRC], OUR_SSRC]);
    assert.equal(s.goodbye('again'), undefined);
    assert.equal(clock.pending(), 0);
    clock.advance(10_000);
    assert.equal(sent.length, 0);
    s.start();
    assert.equal(clock.pending(), 0, 'no restart after goodbye');
  });

  test('fuzz: 20000 mutated SR and RR compounds from the peer never throw; RTT stays in 0..60 s', { timeout: 10_000 }, () => {
    const { clock, s } = session(1000);
    const r = rng(7);
    const samples = [
      buildReport(PEER_SSRC, 'peer', { ntpMs: clock.now(), rtpTimestamp: 1, packetCount: 2, octetCount: 3 }, [{ ssrc: OUR_SSRC, fractionLost: 1, cumulativeLost: 2, extendedHighestSeq: 3, jitter: 4, lsr: ntpMiddle(clock.now()), dlsr: 5 }]),
      buildReport(PEER_SSRC, 'peer', undefined, [{ ssrc: OUR_SSRC, fractionLost: 1, cumulativeLost: 2, extendedHighestSeq: 3, jitter: 4, lsr: 9, dlsr: 9 }]),
    ];
    for (let i = 0; i < 20000; i++) {
      const b = Buffer.from(samples[i % 2]!);
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      s.onRtcpReceived(r() < 0.2 ? b.subarray(0, Math.floor(r() * b.length)) : b);
      clock.advance(1);
    }
    const st = s.stats();
    assert.ok(st.reportsReceived > 0);
    assert.ok(st.roundTripTime === undefined || (st.roundTripTime >= 0 && st.roundTripTime <= 60));
    assert.ok(Number.isFinite(st.jitter));
  });

  test('invalid RTCP from the peer changes nothing', { timeout: 5000 }, () => {
    const { s } = session(1000);
    assert.equal(s.onRtcpReceived(Buffer.from([0x80, 0xc9, 0x00, 0x09])).valid, false);
    assert.equal(s.stats().reportsReceived, 0);
  });
});
