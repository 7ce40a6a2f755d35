import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { emptyLegActivity, type LegActivity, type LegEndReason } from '../../src/media/relay/media-leg';
import { LegLiveness } from '../../src/media/lifecycle/leg-liveness';
import { rng } from '../helpers/seeded-random';

/**
 * The 10- and 30-minute scenarios of docs/lifecycle.md, run on a fake clock over ferry media's liveness rule
 * (src/media/lifecycle/leg-liveness.ts) with the packet timing real peers put on the wire:
 * RTP every 20 ms, RTCP SR every ~5 s (baresip exactly 5 s; Chromium ~5 s;
 * RFC 3550 randomises the interval over [0.5, 1.5] x). The real-process counterparts with short
 * timeouts and real packets are in s08-*, s10-*, s11-* files.
 *
 * DEAD_MS and HOLD_MS are the production defaults (15 s and 1 h).
 */
const DEAD_MS = 15_000;
const HOLD_MS = 3_600_000;
const MINUTE = 60_000;

/**
 * A simulated peer feeding one leg's counters on the fake clock. RTP every 20 ms (with up to 15 ms of
 * arrival jitter), RTCP at RFC 3550 randomised intervals; either can be switched off and on.
 */
class SimulatedPeer {
  readonly activity: LegActivity = emptyLegActivity();
  rtpOn = true;
  rtcpOn = true;
  /** Drop everything (a blip or a pulled cable). */
  linkUp = true;
  rtcpPackets = 0;
  private readonly random: () => number;

  constructor(private readonly clock: FakeClock, seed: number, private readonly rtcpMeanMs = 5000) {
    this.random = rng(seed); // seeded, so each run replays the same jitter
    clock.setInterval(() => {
      if (!this.rtpOn || !this.linkUp) return;
      const jitter = Math.floor(this.random() * 15);
      clock.setTimeout(() => {
        if (!this.linkUp) return;
        this.activity.lastRtpInAt = clock.now();
        this.activity.packetsIn++;
        this.activity.bytesIn += 172;
      }, jitter);
    }, 20);
    this.scheduleRtcp();
  }

  private scheduleRtcp(): void {
    const interval = Math.floor(this.rtcpMeanMs * (0.5 + this.random()));
    this.clock.setTimeout(() => {
      if (this.rtcpOn && this.linkUp) {
        this.activity.lastRtcpInAt = this.clock.now();
        this.rtcpPackets++;
      }
      this.scheduleRtcp();
    }, interval);
  }
}

function watch(clock: FakeClock, peer: SimulatedPeer, limits = { deadMs: DEAD_MS, holdMs: HOLD_MS }) {
  const ends: { reason: LegEndReason; at: number }[] = [];
  const liveness = new LegLiveness(clock, limits, () => peer.activity, (reason) => ends.push({ reason, at: clock.now() }));
  liveness.start();
  return { liveness, ends };
}

/** Advance in 1 s steps (keeps the fake clock's queue small) and check no end happened on the way. */
function advanceExpectingNoEnd(clock: FakeClock, ms: number, ends: { reason: LegEndReason; at: number }[], what: string): void {
  for (let done = 0; done < ms; done += 1000) {
    clock.advance(Math.min(1000, ms - done));
    assert.equal(ends.length, 0, `${what}: false end ${JSON.stringify(ends[0])} after ${(done / 1000).toFixed(0)} s`);
  }
}

describe('S8/S9/S11/S12 long durations on a fake clock (ferry media liveness rule, real peer timing)', () => {
  test('S8: IP phone mutes (RTP stops, RTCP SR continues) for 10 min -> nothing released, 0 false ends', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 8);
    const { liveness, ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 30_000, ends, 'talking');
    peer.rtpOn = false;
    const rtcpBefore = peer.rtcpPackets;
    advanceExpectingNoEnd(clock, 10 * MINUTE, ends, 'muted');
    assert.ok(peer.rtcpPackets - rtcpBefore >= 100, 'RTCP kept flowing during the mute');
    peer.rtpOn = true;
    advanceExpectingNoEnd(clock, 30_000, ends, 'unmuted');
    assert.equal(liveness.ended, undefined);
    liveness.stop();
    assert.equal(liveness.running, false);
  });

  test('S8 contrast: the same mute with NO RTCP (SIPp rtp_stream pause) is a silent death -> media-timeout at T_dead', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 88);
    const { ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 10_000, ends, 'talking');
    const silentFrom = clock.now();
    peer.rtpOn = false;
    peer.rtcpOn = false;
    clock.advance(DEAD_MS + 5_000);
    assert.equal(ends.length, 1);
    assert.equal(ends[0]!.reason, 'media-timeout');
    const after = ends[0]!.at - silentFrom;
    assert.ok(after >= DEAD_MS - 6_500 && after <= DEAD_MS + 2_000, `ended ${after} ms after the last packet (T_dead ± 2 s, the last RTCP may precede the silence)`);
  });

  test('S9: webphone mutes (track disabled: RTP stops, browser RTCP every ~5 s continues) for 10 min -> 0 false ends', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 9, 5000);
    const { liveness, ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 20_000, ends, 'talking');
    peer.rtpOn = false;
    advanceExpectingNoEnd(clock, 10 * MINUTE, ends, 'webphone muted');
    peer.rtpOn = true;
    advanceExpectingNoEnd(clock, 20_000, ends, 'unmuted');
    assert.equal(liveness.ended, undefined);
    liveness.stop();
  });

  test('S11: hold via re-INVITE (sendonly) for 10 min, peer sends nothing at all -> no end; T_hold applies; resume restarts T_dead', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 11);
    const { liveness, ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 20_000, ends, 'talking');
    // The worst hold: the held phone stops RTP and RTCP too (baresip keeps RTCP; not every phone does).
    liveness.setPeerWillSend(false);
    peer.rtpOn = false;
    peer.rtcpOn = false;
    advanceExpectingNoEnd(clock, 10 * MINUTE, ends, 'on hold');
    liveness.setPeerWillSend(true);
    peer.rtpOn = true;
    peer.rtcpOn = true;
    advanceExpectingNoEnd(clock, 60_000, ends, 'resumed');
    assert.equal(liveness.ended, undefined);
    liveness.stop();
  });

  test('S11 bound: a hold that never resumes and never sends ends with hold-timeout at T_hold (1 h), not at T_dead', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 111);
    const { liveness, ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 10_000, ends, 'talking');
    const holdAt = clock.now();
    liveness.setPeerWillSend(false);
    peer.rtpOn = false;
    peer.rtcpOn = false;
    advanceExpectingNoEnd(clock, HOLD_MS - MINUTE, ends, 'held, silent');
    clock.advance(2 * MINUTE);
    assert.equal(ends.length, 1);
    assert.equal(ends[0]!.reason, 'hold-timeout');
    const after = ends[0]!.at - holdAt;
    assert.ok(Math.abs(after - HOLD_MS) <= 2_000, `hold-timeout ${after} ms after the hold (T_hold ${HOLD_MS} ± 2 s)`);
  });

  test('S12: a healthy 30-minute call (50 pps with jitter, RTCP ~5 s) -> no end, no spurious release', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const phone = new SimulatedPeer(clock, 12);
    const browser = new SimulatedPeer(clock, 1212);
    const a = watch(clock, phone);
    const b = watch(clock, browser);
    for (let minute = 0; minute < 30; minute++) {
      clock.advance(MINUTE);
      assert.equal(a.ends.length + b.ends.length, 0, `false end in minute ${minute + 1}: ${JSON.stringify([...a.ends, ...b.ends])}`);
    }
    assert.ok(phone.activity.packetsIn >= 30 * 60 * 50 * 0.99, `phone leg saw ${phone.activity.packetsIn} packets in 30 min`);
    a.liveness.stop();
    b.liveness.stop();
  });

  test('S10: a blip (all packets dropped) of T_dead - 5 s then back -> the call continues; a cut of T_dead ends it (media-timeout, within T_dead ± 2 s)', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 10);
    const { liveness, ends } = watch(clock, peer);
    advanceExpectingNoEnd(clock, 20_000, ends, 'talking');
    peer.linkUp = false;
    advanceExpectingNoEnd(clock, DEAD_MS - 5_000, ends, 'blip');
    peer.linkUp = true;
    advanceExpectingNoEnd(clock, 60_000, ends, 'after the blip');
    const cutAt = clock.now();
    peer.linkUp = false;
    clock.advance(DEAD_MS + 5_000);
    assert.equal(ends.length, 1);
    assert.equal(ends[0]!.reason, 'media-timeout');
    const after = ends[0]!.at - cutAt;
    assert.ok(Math.abs(after - DEAD_MS) <= 2_000, `cable pull ended the leg ${after} ms after the cut (T_dead ${DEAD_MS} ± 2 s)`);
    assert.equal(liveness.running, false, 'no timer left after the end');
  });

  test('explicit signals end at once and only once (RTCP BYE, ICMP, DTLS close): the first reason wins, no timer left', { timeout: 30_000 }, () => {
    const clock = new FakeClock(0);
    const peer = new SimulatedPeer(clock, 1);
    const { liveness, ends } = watch(clock, peer);
    clock.advance(5_000);
    liveness.signal('rtcp-bye');
    liveness.signal('icmp-unreachable');
    clock.advance(DEAD_MS * 2);
    assert.deepEqual(ends.map((e) => e.reason), ['rtcp-bye']);
    assert.equal(ends[0]!.at, 5_000);
    assert.equal(liveness.running, false);
  });
});
