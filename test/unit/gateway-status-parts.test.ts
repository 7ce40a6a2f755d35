import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from '../../src/gateway/http/histogram';
import { GatewayMetrics } from '../../src/gateway/http/metrics';
import { liveLegQuality } from '../../src/gateway/http/status/call-quality-sampler';
import { StatusHistory } from '../../src/gateway/http/status/status-history';
import { LocalCallEventBus } from '../../src/gateway/events/call-events';

/**
 * The status page's parts without a network: the Prometheus histogram (cumulative buckets, label
 * cap, bad values ignored), the one-hour per-minute history (ring of 60, reasons capped), and the
 * getStats reader (right figures from a Kurento-shaped map; random input never throws and never
 * yields a negative or non-finite figure).
 */
describe('status parts', { timeout: 10_000 }, () => {
  test('histogram: cumulative buckets, sum and count; NaN and negatives ignored; an empty one still renders', () => {
    const empty = new Histogram('x_seconds', 'help', [0.1, 1]);
    assert.deepEqual(empty.render().slice(2), ['x_seconds_bucket{le="0.1"} 0', 'x_seconds_bucket{le="1"} 0', 'x_seconds_bucket{le="+Inf"} 0', 'x_seconds_sum 0', 'x_seconds_count 0']);
    const h = new Histogram('x_seconds', 'help', [0.1, 1], 'leg');
    for (const v of [0.05, 0.5, 5, Number.NaN, -1, Infinity]) h.observe(v, 'caller');
    h.observe(0.1, 'callee');
    const text = h.render().join('\n');
    assert.match(text, /^x_seconds_bucket\{leg="caller",le="0.1"\} 1$/m);
    assert.match(text, /^x_seconds_bucket\{leg="caller",le="1"\} 2$/m);
    assert.match(text, /^x_seconds_bucket\{leg="caller",le="\+Inf"\} 3$/m);
    assert.match(text, /^x_seconds_sum\{leg="caller"\} 5.55$/m);
    assert.match(text, /^x_seconds_count\{leg="callee"\} 1$/m);
    assert.match(text, /^# TYPE x_seconds histogram$/m);
    assert.equal(h.count, 4);
  });

  test('histogram: at most 16 label values, the rest counted as other; label values are sanitised', () => {
    const h = new Histogram('y', 'help', [1], 'leg');
    for (let i = 0; i < 40; i++) h.observe(0.5, `v${i}"}\n`);
    const series = new Set(h.render().filter((l) => l.startsWith('y_count')).map((l) => /leg="([^"]*)"/.exec(l)![1]));
    assert.equal(series.size, 17);
    assert.ok(series.has('other'));
    assert.ok([...series].every((s) => /^[A-Za-z0-9_.-]+$/.test(s!)));
    assert.equal(h.count, 40);
  });

  test('metrics: the histograms are in /metrics text from the start and take a call\'s times and leg quality', () => {
    const m = new GatewayMetrics();
    const render = (): string => m.render({ activeCalls: 0, ownedCalls: 0, registrations: 0, instanceId: 'gw' });
    for (const name of ['ferry_call_setup_seconds', 'ferry_call_answer_seconds', 'ferry_call_jitter_seconds', 'ferry_call_packet_loss_ratio', 'ferry_call_rtt_seconds']) {
      assert.match(render(), new RegExp(`^# TYPE ${name} histogram$`, 'm'));
    }
    m.observeCallTimes({ createdAt: 1000, ringingAt: 1300, answeredAt: 4000 });
    m.observeCallTimes({ createdAt: 1000 }); // never rang: nothing
    m.observeLegQuality('caller', { jitterSeconds: 0.004, lossRatio: 0.01 });
    const text = render();
    assert.match(text, /^ferry_call_setup_seconds_bucket\{le="0.5"\} 1$/m);
    assert.match(text, /^ferry_call_setup_seconds_bucket\{le="0.25"\} 0$/m);
    assert.match(text, /^ferry_call_answer_seconds_count 1$/m);
    assert.match(text, /^ferry_call_jitter_seconds_count\{leg="caller"\} 1$/m);
    assert.match(text, /^ferry_call_packet_loss_ratio_bucket\{leg="caller",le="0.01"\} 1$/m);
    assert.match(text, /^ferry_call_rtt_seconds_count 0$/m, 'no RTT given: not observed');
  });

  test('history: a minute per entry, the last 60 only; ends by reason from the bus; reasons capped', () => {
    let now = Date.UTC(2026, 0, 1, 12, 0, 30);
    const h = new StatusHistory(() => now);
    const bus = new LocalCallEventBus('gw', () => now);
    h.start(bus);
    h.noteActive(2);
    bus.publish({ type: 'call.ended', callId: 'a', data: { reason: 'sip-bye' } });
    bus.publish({ type: 'call.ended', callId: 'b', data: { reason: 'sip-bye' } });
    bus.publish({ type: 'call.answered', callId: 'c', data: {} }); // positive control for the filter: not an end
    now += 60_000;
    bus.publish({ type: 'call.ended', callId: 'c', data: { reason: 'BAD reason <script>' } });
    let snap = h.snapshot();
    assert.equal(snap.length, 60);
    assert.deepEqual(snap[58], { minute: Date.UTC(2026, 0, 1, 12, 0), activeMax: 2, ended: { 'sip-bye': 2 } });
    assert.deepEqual(snap[59]!.ended, { other: 1 });
    assert.equal(snap[57]!.activeMax, undefined, 'a minute without a sample has no value');
    for (let i = 0; i < 40; i++) h.noteEnded(`reason-${i}`);
    assert.equal(Object.keys(h.snapshot()[59]!.ended).length, 24, 'at most 24 reasons per minute (other included)');
    now += 61 * 60_000;
    snap = h.snapshot();
    assert.ok(snap.every((m) => m.activeMax === undefined && Object.keys(m.ended).length === 0), 'an hour later the old minutes are gone');
    h.stop();
    bus.publish({ type: 'call.ended', callId: 'd', data: { reason: 'sip-bye' } });
    assert.deepEqual(h.snapshot()[59]!.ended, {}, 'stopped: no longer counts');
  });

  test('getStats reader: figures from a Kurento-shaped map', () => {
    const q = liveLegQuality({
      e_in: { type: 'inboundrtp', packetsReceived: 990, packetsLost: 10, jitter: 0.0042 },
      e_out: { type: 'outboundrtp', packetsSent: 1000, roundTripTime: 0.0315 },
    });
    assert.deepEqual(q, { packetsReceived: 990, packetsSent: 1000, packetsLost: 10, lossPercent: 1, jitterMs: 4.2, rttMs: 31.5 });
    assert.equal(liveLegQuality({}), undefined);
    assert.equal(liveLegQuality(null), undefined);
    assert.equal(liveLegQuality({ e: { type: 'inboundrtp' } })!.rttMs, undefined);
  });

  test('getStats reader: random input (seeded) never throws and never yields a negative or non-finite figure', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values = [0, -1, 1.5, 1e308, -Infinity, Infinity, Number.NaN, '12', null, undefined, {}, [], true, 'inbound-rtp'];
    const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
    for (let i = 0; i < 5000; i++) {
      const map: Record<string, unknown> = {};
      const n = Math.floor(rnd() * 4);
      for (let j = 0; j < n; j++) {
        map[`k${j}`] = rnd() < 0.1 ? pick(values) : {
          type: pick(['inboundrtp', 'outboundrtp', 'inbound-rtp', 'outbound-rtp', 'candidate-pair', 7, null]),
          packetsReceived: pick(values), packetsLost: pick(values), packetsSent: pick(values), jitter: pick(values), roundTripTime: pick(values),
        };
      }
      const q = liveLegQuality(rnd() < 0.05 ? pick(values) : map);
      if (!q) continue;
      for (const [k, v] of Object.entries(q)) assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${k}=${String(v)} from ${JSON.stringify(map)}`);
    }
  });
});
