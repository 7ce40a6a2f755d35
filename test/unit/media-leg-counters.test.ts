import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyLegActivity, LegCounters } from '../../src/media/relay/media-leg';

describe('leg counters (per-packet activity kept as unboxed numbers)', { timeout: 10_000 }, () => {
  test('before any packet the snapshot equals an empty LegActivity; afterwards it carries the times, 0 included', () => {
    const c = new LegCounters();
    assert.deepEqual(c.snapshot(), emptyLegActivity());
    c.lastRtpInAt = 0; // a FakeClock may start at 0: a real time, not "never"
    c.packetsIn++;
    c.bytesIn += 172;
    c.lastRtpOutAt = 1_733_000_000_123;
    c.packetsOut += 2;
    c.bytesOut += 344;
    assert.deepEqual(c.snapshot(), {
      lastRtpInAt: 0,
      lastRtcpInAt: undefined,
      lastRtpOutAt: 1_733_000_000_123,
      packetsIn: 1,
      packetsOut: 2,
      bytesIn: 172,
      bytesOut: 344,
    });
  });

  test('a snapshot is a copy: later packets do not change it', () => {
    const c = new LegCounters();
    c.lastRtcpInAt = 5;
    const s = c.snapshot();
    c.lastRtcpInAt = 9;
    c.packetsIn = 10;
    assert.equal(s.lastRtcpInAt, 5);
    assert.equal(s.packetsIn, 0);
  });
});
