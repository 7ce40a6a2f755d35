import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock';
import { LegLiveness } from '../../src/media/lifecycle/leg-liveness';
import type { LegActivity, LegEndReason } from '../../src/media/relay/media-leg';

/** docs/lifecycle.md, rules 2-3 on a fake clock: 10-minute mute, 30-minute call, hold, silent death, explicit signals. */
function harness(limits = { deadMs: 15000, holdMs: 3600000 }) {
  const clock = new FakeClock();
  const activity: LegActivity = { lastRtpInAt: undefined, lastRtcpInAt: undefined, lastRtpOutAt: undefined, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 };
  const ends: { reason: LegEndReason; at: number }[] = [];
  const liveness = new LegLiveness(clock, limits, () => activity, (reason) => ends.push({ reason, at: clock.now() }));
  const start = clock.now();
  return { clock, activity, ends, liveness, start };
}

/** Advance `ms` in steps of `step`, running `each` after every step (packets arriving). */
function run(clock: FakeClock, ms: number, step: number, each: () => void): void {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    each();
  }
}

describe('media leg liveness (FakeClock)', () => {
  test('a 10-minute mute with RTCP every 5 s is never an end', { timeout: 30_000 }, () => {
    const h = harness();
    h.liveness.start();
    h.activity.lastRtpInAt = h.clock.now();
    run(h.clock, 10 * 60_000, 5000, () => (h.activity.lastRtcpInAt = h.clock.now()));
    assert.equal(h.ends.length, 0);
    assert.ok(h.liveness.running);
    h.liveness.stop();
    assert.equal(h.clock.pending(), 0);
  });

  test('a 30-minute healthy call (RTP every 20 ms, sampled per second) never ends', { timeout: 30_000 }, () => {
    const h = harness();
    h.liveness.start();
    run(h.clock, 30 * 60_000, 1000, () => {
      h.activity.lastRtpInAt = h.clock.now() - 20;
      h.activity.packetsIn += 50;
    });
    assert.equal(h.ends.length, 0);
    h.liveness.stop();
  });

  test('silent death: neither RTP nor RTCP -> media-timeout after DEAD_MS (not before)', { timeout: 30_000 }, () => {
    const h = harness();
    h.liveness.start();
    h.clock.advance(2000);
    h.activity.lastRtpInAt = h.clock.now();
    const lastPacket = h.clock.now();
    h.clock.advance(14_000);
    assert.equal(h.ends.length, 0);
    h.clock.advance(2000);
    assert.equal(h.ends.length, 1);
    assert.equal(h.ends[0]!.reason, 'media-timeout');
    assert.ok(h.ends[0]!.at - lastPacket >= 15_000 && h.ends[0]!.at - lastPacket <= 16_000, `ended ${h.ends[0]!.at - lastPacket} ms after the last packet`);
    assert.equal(h.clock.pending(), 0, 'no timer left after the end');
  });

  test('a peer that never sends anything is dead DEAD_MS after negotiation', { timeout: 30_000 }, () => {
    const h = harness({ deadMs: 3000, holdMs: 60_000 });
    h.liveness.start();
    h.clock.advance(3200);
    assert.deepEqual(h.ends.map((e) => e.reason), ['media-timeout']);
  });

  test('hold (peer will not send): silence is fine until HOLD_MS, then hold-timeout; RTCP during hold keeps it', { timeout: 30_000 }, () => {
    const h = harness({ deadMs: 15_000, holdMs: 3_600_000 });
    h.liveness.start();
    h.liveness.setPeerWillSend(false);
    h.clock.advance(10 * 60_000);
    assert.equal(h.ends.length, 0, 'a 10-minute hold without packets is not an end');
    h.clock.advance(50 * 60_000 + 1000);
    assert.deepEqual(h.ends.map((e) => e.reason), ['hold-timeout']);

    const k = harness({ deadMs: 15_000, holdMs: 60_000 });
    k.liveness.start();
    k.liveness.setPeerWillSend(false);
    run(k.clock, 5 * 60_000, 5000, () => (k.activity.lastRtcpInAt = k.clock.now()));
    assert.equal(k.ends.length, 0);
    k.liveness.stop();
  });

  test('resume after hold restarts the silence clock with DEAD_MS', { timeout: 30_000 }, () => {
    const h = harness({ deadMs: 15_000, holdMs: 3_600_000 });
    h.liveness.start();
    h.liveness.setPeerWillSend(false);
    h.clock.advance(20 * 60_000);
    h.liveness.setPeerWillSend(true);
    h.clock.advance(10_000);
    assert.equal(h.ends.length, 0);
    h.clock.advance(6000);
    assert.deepEqual(h.ends.map((e) => e.reason), ['media-timeout']);
  });

  test('a blip shorter than DEAD_MS is not an end', { timeout: 30_000 }, () => {
    const h = harness({ deadMs: 15_000, holdMs: 3_600_000 });
    h.liveness.start();
    run(h.clock, 60_000, 1000, () => (h.activity.lastRtpInAt = h.clock.now()));
    h.clock.advance(10_000); // T_dead - 5 s of total loss
    run(h.clock, 60_000, 1000, () => (h.activity.lastRtpInAt = h.clock.now()));
    assert.equal(h.ends.length, 0);
    h.liveness.stop();
  });

  test('an explicit signal ends at once; the first reason wins; stop() leaves no timer', { timeout: 30_000 }, () => {
    const h = harness();
    h.liveness.start();
    h.activity.lastRtpInAt = h.clock.now();
    h.liveness.signal('rtcp-bye');
    h.liveness.signal('icmp-unreachable');
    h.clock.advance(60_000);
    assert.deepEqual(h.ends.map((e) => e.reason), ['rtcp-bye']);
    assert.equal(h.ends[0]!.at, h.start);
    assert.equal(h.clock.pending(), 0);
    h.liveness.start();
    assert.equal(h.liveness.running, false, 'an ended leg does not restart');
  });
});
