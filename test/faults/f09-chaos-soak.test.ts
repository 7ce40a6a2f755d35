import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attribute } from '../../bench/soak/end-attribution';
import { faultPlan } from '../../bench/soak/fault-plan';
import { defaultOptions, FAULT_KINDS } from '../../bench/soak/soak-options';
import { runSoak } from '../../bench/soak/run-soak';
import { humanSummary } from '../../bench/soak/soak-report';
import type { SoakCall } from '../../bench/soak/soak-call';

/**
 * docs/lifecycle.md F9: the chaos soak (bench/soak, `npm run soak`) in its short form — 10 concurrent calls
 * between webphones (SIP over WebSocket + werift) and scripted IP phones for 40 s through one
 * `ferry start` (sip, media, gateway and its private Redis, supervised), with a fixed seed injecting
 * every fault kind once, about every 3 s from 4 s in (the last one, 26 s in, leaves a cable pull
 * T_dead and a margin to end its call): mute, hold, 5 s blip, cable pull (> T_dead), SIGKILL of the gateway,
 * of ferry media and of the private Redis (each restored by ferry start's supervisor). Asserts 0 false ends (every end matched to
 * a hang-up, a cable pull -> media-timeout or a media kill -> media-lost), every party told, and nothing
 * leaked (pipelines, bound ports, SIP dialogs, live Redis call records, file descriptors).
 * Needs root (iptables on loopback for blips and cable pulls).
 */
const SEED = 9;

describe('F9: chaos soak', () => {
  test('F9: the attribution calls an end with no matching cause a false end (positive control)', { timeout: 30_000 }, () => {
    const base = { slot: 0, caller: 'phone' as const, placedAt: 1000, answeredAt: 1100, plannedHangupAt: 9000, plannedHangupBy: 'phone' as const, faults: [], problems: [] };
    const calls: SoakCall[] = [
      { ...base, id: 1, webphoneCallId: 'a', endedAt: 5000, toldAt: { phone: 5000, webphone: 5001 } },
      { ...base, id: 2, webphoneCallId: 'b', hangupBy: 'phone', hangupAt: 6000, endedAt: 6000, toldAt: { webphone: 6020 } },
      { ...base, id: 3, webphoneCallId: 'c', hangupBy: 'webphone', hangupAt: 6000, endedAt: 6000, toldAt: { phone: 6020 } },
    ];
    const records = new Map([
      ['a', { state: 'ended', reason: 'session-expired' }],
      ['b', { state: 'ended', reason: 'sip-bye' }],
      ['c', { state: 'ended', reason: 'media-lost' }],
    ]);
    const a = attribute(calls, [], records);
    assert.deepEqual(a.falseEnds.map((f) => [f.call, f.reason]), [[1, 'session-expired'], [3, 'media-lost']]);
    assert.deepEqual(a.endsByCause, { 'hang-up': 1 });
  });

  test('F9: the fault schedule is seeded: the same seed gives the same plan, every kind comes once before repeats', { timeout: 30_000 }, () => {
    const options = defaultOptions({ seed: SEED, durationMs: 600_000, faultEveryMs: 10_000 });
    const plan = faultPlan(options);
    assert.deepEqual(faultPlan(options), plan);
    assert.notDeepEqual(faultPlan({ ...options, seed: SEED + 1 }), plan);
    assert.deepEqual(new Set(plan.slice(0, FAULT_KINDS.length).map((f) => f.kind)), new Set(FAULT_KINDS));
    assert.ok(plan.length >= 50, `${plan.length} faults in 10 minutes`);
    assert.ok(plan.every((f, i) => i === 0 || f.atMs > plan[i - 1]!.atMs), 'in time order');
    assert.ok(plan.at(-1)!.atMs <= options.durationMs - options.deadMs, 'the last fault leaves time for a cable pull to end its call');
  });

  test('F9: 10 calls, 40 s, every fault kind (seed 9): 0 false ends, every party told, 0 leaks', { timeout: 300_000 }, async (t) => {
    const options = defaultOptions({
      calls: 10,
      durationMs: 40_000,
      seed: SEED,
      deadMs: 8000,
      blipMs: 5000,
      faultEveryMs: 3200,
      callMinMs: 8000,
      callMaxMs: 20_000,
      rtcpIntervalMs: 2500,
      downMs: 1000,
      orphanDialogMs: 30_000,
      log: (line) => t.diagnostic(line),
    });
    const report = await runSoak(options);
    const summary = humanSummary(report);
    console.log(summary);
    // the faults really happened (positive controls for "nothing was cut")
    for (const kind of FAULT_KINDS) assert.ok((report.faults.injectedByKind[kind] ?? 0) >= 1, `${kind} injected at least once: ${JSON.stringify(report.faults)}`);
    const blip = report.faults.list.find((f) => f.kind === 'blip' && !f.skipped);
    assert.ok(blip && Number(/^(\d+) packets dropped/.exec(blip.detail ?? '')?.[1]) > 50, `the blip dropped the phone's packets: ${blip?.detail}`);
    const cablePull = report.faults.list.find((f) => f.kind === 'cable-pull' && !f.skipped);
    assert.ok((report.endsByCause['cable-pull'] ?? 0) >= 1,
      `a cable pull ended its call with media-timeout:\n${summary}\ncable pull: ${JSON.stringify(cablePull)}\ncall problems: ${JSON.stringify(report.callProblems)}\nproblems: ${JSON.stringify(report.problems)}`);
    assert.ok((report.endsByCause['media-kill'] ?? 0) >= 1, `the media kill ended calls with media-lost:\n${summary}`);
    assert.ok((report.endsByCause['hang-up'] ?? 0) >= 10, `calls ended by hang-ups:\n${summary}`);
    assert.ok(report.calls.answered >= 20, `calls kept going (${report.calls.answered} answered)`);
    // the promise
    assert.deepEqual(report.falseEnds, [], `0 false ends:\n${summary}`);
    assert.equal(report.partiesTold.told, report.partiesTold.expected, `every party told:\n${summary}`);
    assert.deepEqual(report.calls.unexplainedSetupFailures, [], `no call refused while every part was up:\n${summary}`);
    assert.deepEqual(report.leaks, [], `0 leaks:\n${summary}`);
    assert.deepEqual(report.problems, [], summary);
    assert.equal(report.ok, true);
  });
});
