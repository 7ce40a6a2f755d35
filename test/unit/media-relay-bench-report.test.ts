import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseOptions } from '../../bench/media/cli-options';
import {
  coreBusyCell,
  generatorLimitedVerdicts,
  generatorUsPerPacket,
  NODE_FLOOR_TARGET,
  nodeFloorTable,
  perCoreCapacity,
  ratioTable,
  resultsTable,
  serverCoreSharedVerdicts,
  setupPhasesTable,
  workerShareVerdict,
} from '../../bench/media/report/markdown-report';
import { phasesP50 } from '../../bench/media/phases/step-runner';
import { formatCpuList, launchCommand, machineCpus, parseCpuList, pinProcess, threadsOffCpus } from '../../bench/media/servers/cpu-pinning';
import { pollUntil } from '../helpers/wait-for';
import type { StepResult } from '../../bench/media/report/step-result';
import { workerLagsOf } from '../../bench/media/report/worker-lag';
import { coreBusyBetween, parseCoreStat } from '../../bench/media/servers/proc-sampler';

/**
 * What `npm run bench:media` adds for capacity per core (bench/media): --workers, per-core busy % from
 * /proc/stat, per-worker lag from /stats (or the single loop), the per-core capacity search over the
 * steps, and the ratio table when rtpengine is absent.
 */

function step(over: Partial<StepResult>): StepResult {
  return {
    target: 'ferry rtp-rtp',
    calls: 50,
    setupFailures: 0,
    setupP50Ms: 10,
    setupP99Ms: 20,
    windowS: 5,
    serverCpuPct: 10,
    serverUserPct: 6,
    serverSysPct: 4,
    cpuPerCall: 0.002,
    cpuUsPerPacket: 20,
    rssMiB: 100,
    rssPerCallKiB: 60,
    loopLagP99Ms: 3,
    loopLagMaxMs: 5,
    statsLagP99Ms: undefined,
    sentPps: 5000,
    lossPct: 0,
    lossPctAB: 0,
    lossPctBA: 0,
    liveLossPct: 0,
    serverUdpDrops: 0,
    generatorUdpDrops: 0,
    latencyP50Ms: 0.5,
    latencyP99Ms: 2,
    generatorCpuPct: 20,
    generatorSkippedPct: 0,
    machineBusyCores: 1,
    otherProcessesCores: 0.2,
    silentStreams: 0,
    ...over,
    callsUp: over.callsUp ?? over.calls ?? 50,
  };
}

describe('bench:media per-core capacity', () => {
  test('--workers sets FERRY_MEDIA_WORKERS for ferry media; a disagreeing --media-env is refused; lag limit defaults to 20 ms', { timeout: 5_000 }, () => {
    const o = parseOptions(['--workers', '2', '--steps', '50,100']);
    assert.equal(o.mediaWorkers, 2);
    assert.equal(o.mediaEnv.FERRY_MEDIA_WORKERS, '2');
    assert.equal(o.lagLimitMs, 20);
    assert.equal(parseOptions([]).mediaEnv.FERRY_MEDIA_WORKERS, undefined, 'no --workers: ferry media keeps its default');
    assert.throws(() => parseOptions(['--workers', '2', '--media-env', 'FERRY_MEDIA_WORKERS=3']), /disagree/);
    assert.throws(() => parseOptions(['--workers', '0']), /--workers needs a positive integer/);
    assert.equal(parseOptions(['--lag-limit', '50', '--stop-on-lag']).lagLimitMs, 50);
    assert.equal(parseOptions(['--refine', '3']).refine, 3);
    assert.equal(parseOptions([]).refine, 0);
    assert.throws(() => parseOptions(['--refine', '-1']), /--refine needs an integer/);
  });

  test('per-core busy % between two /proc/stat samples, and the cores above 50 %', { timeout: 5_000 }, () => {
    const a = parseCoreStat('cpu  10 0 10 80 0 0 0 0\ncpu0 100 0 0 100 0 0 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0 0 0\nintr 1\n');
    const b = parseCoreStat('cpu  10 0 10 80 0 0 0 0\ncpu0 170 0 10 120 0 0 0 0 0 0\ncpu1 5 0 5 285 5 0 0 0 0 0\nintr 1\n');
    assert.equal(a.busy.length, 2, 'the aggregate cpu line is not a core');
    const busy = coreBusyBetween(a, b);
    assert.deepEqual(busy.perCoreBusyPct.map((p) => Math.round(p)), [80, 10], 'cpu0: 80 of 100 jiffies busy; cpu1: 10 of 100 (iowait counts as idle)');
    assert.equal(busy.coresAboveThreshold, 1);
  });

  test("per-worker lag: /stats' workers when ferry media has them, else its single loop as one worker", { timeout: 5_000 }, () => {
    const two = workerLagsOf(
      {
        pipelines: 10,
        workers: [
          { id: 1, pipelines: 6, elements: 12, eventLoopLagP99Ms: 4, eventLoopLagMaxMs: 9 },
          { id: 2, pipelines: 4, elements: 8, eventLoopLagP99Ms: 30, eventLoopLagMaxMs: 40 },
        ],
      },
      { p50Ms: 1, p99Ms: 2, maxMs: 3, samples: 100 },
    );
    assert.deepEqual(two.map((w) => [w.id, w.pipelines, w.lagP99Ms, w.source]), [
      [1, 6, 4, 'stats.workers'],
      [2, 4, 30, 'stats.workers'],
    ]);
    const one = workerLagsOf({ pipelines: 10, elements: 20, eventLoopLagP99Ms: 7 }, { p50Ms: 1, p99Ms: 2, maxMs: 3, samples: 100 });
    assert.deepEqual(one, [{ id: 0, pipelines: 10, elements: 20, lagP99Ms: 2, lagMaxMs: 3, source: 'probe' }]);
    assert.equal(workerLagsOf({ pipelines: 1, eventLoopLagP99Ms: 7, eventLoopLagMaxMs: 8 }, undefined)[0]!.lagP99Ms, 7, 'no probe: /stats lag');
    assert.deepEqual(workerLagsOf(undefined, undefined), []);
  });

  test('the capacity is the largest step within loss and every worker under the lag limit, per worker', { timeout: 5_000 }, () => {
    const w = (p99a: number, p99b: number) => [
      { id: 1, pipelines: 1, elements: 2, lagP99Ms: p99a, lagMaxMs: p99a, source: 'stats.workers' as const },
      { id: 2, pipelines: 1, elements: 2, lagP99Ms: p99b, lagMaxMs: p99b, source: 'stats.workers' as const },
    ];
    const results = [
      step({ calls: 50, workerLags: w(2, 3) }),
      step({ calls: 100, workerLags: w(5, 12) }),
      step({ calls: 150, workerLags: w(6, 25) }), // one worker lags: not carried
      step({ calls: 200, workerLags: w(6, 8), lossPct: 0.5 }),
      step({ target: 'ferry webrtc-rtp', calls: 300, workerLags: w(1, 1) }),
    ];
    const c = perCoreCapacity(results, 'ferry rtp-rtp', 0.1, 20);
    assert.deepEqual(c, { calls: 100, workers: 2, perWorker: 50, firstFailure: 'N=150: lag p99 25.0 ms', firstFailureCalls: 150 });
    const single = perCoreCapacity([step({ calls: 50 }), step({ calls: 100, lossPct: 0.2 })], 'ferry rtp-rtp', 0.1, 20);
    assert.deepEqual(single, { calls: 50, workers: 1, perWorker: 50, firstFailure: 'N=100: loss 0.200 %', firstFailureCalls: 100 });
    assert.equal(perCoreCapacity([step({ calls: 50, callsUp: 49 })], 'ferry rtp-rtp', 0.1, 20).calls, 0);
    // A refinement probe (fresh server at N=125) that passes moves the answer up, the failure above stays named.
    const refined = perCoreCapacity([...results, step({ calls: 125, refinement: true, workerLags: w(8, 9) })], 'ferry rtp-rtp', 0.1, 20);
    assert.deepEqual([refined.calls, refined.firstFailureCalls], [125, 150]);
    assert.match(resultsTable([step({ calls: 125, refinement: true })]), /\| 125 \(refine\) \|/);
    const mainLoopLags = perCoreCapacity([step({ calls: 50, loopLagP99Ms: 21, workerLags: w(1, 1) })], 'ferry rtp-rtp', 0.1, 20);
    assert.deepEqual(mainLoopLags, { calls: 0, workers: 1, perWorker: 0, firstFailure: 'N=50: lag p99 21.0 ms', firstFailureCalls: 50 }, "the main loop's lag counts too");
  });

  test('without rtpengine the ratio table says so and shows ferry; with it, the ratio', { timeout: 5_000 }, () => {
    const ferryOnly = ratioTable([step({ calls: 50, cpuUsPerPacket: 20 })]);
    assert.match(ferryOnly, /rtpengine was not part of this run/);
    assert.match(ferryOnly, /\| 50 \| rtpengine absent \| 0\.00200 \(20\.0 µs\/pkt\)/);
    const both = ratioTable([step({ calls: 50, cpuUsPerPacket: 20 }), step({ target: 'rtpengine rtp-rtp', calls: 50, cpuUsPerPacket: 10, loopLagP99Ms: undefined })]);
    assert.match(both, /\| 50 \| 0\.00100 \(10\.0 µs\/pkt\) \| 0\.00200 \(20\.0 µs\/pkt\) \| 2\.0× \|/);
    const row = resultsTable([step({ calls: 50, mediaWorkers: 1, coreBusy: { perCoreBusyPct: [70, 20], coresAboveThreshold: 1, thresholdPct: 50 }, workerLags: workerLagsOf({ pipelines: 50 }, { p50Ms: 1, p99Ms: 2, maxMs: 3, samples: 9 }) })]);
    assert.match(row, /\| 1 \(70 \/ 20\) \| 1 loop, no per-worker \/stats \(FERRY_MEDIA_WORKERS=1\): 2\.0 \/ 3\.0 \(50\) \|/);
    const two = resultsTable([step({ calls: 50, workerLags: workerLagsOf({ workers: [{ id: 1, pipelines: 30, eventLoopLagP99Ms: 4, eventLoopLagMaxMs: 6 }, { id: 2, pipelines: 20, eventLoopLagP99Ms: 5, eventLoopLagMaxMs: 7 }] }, undefined) })]);
    assert.match(two, /\| 2 workers: #1 4\.0 \/ 6\.0 \(30, 60 %\); #2 5\.0 \/ 7\.0 \(20, 40 %\) \|/);
  });
});

describe('bench:media CPU pinning (--server-cpus / --generator-cpus)', () => {
  const twoCpus = [0, 1];

  test('the lists are checked against the machine: disjoint, present, and a missing one is the rest', { timeout: 5_000 }, () => {
    assert.equal(parseOptions([], twoCpus).pinning, undefined, 'no option: no pinning');
    assert.deepEqual(parseOptions(['--server-cpus', '0', '--generator-cpus', '1'], twoCpus).pinning, { serverCpus: [0], generatorCpus: [1] });
    assert.deepEqual(parseOptions(['--server-cpus', '1'], twoCpus).pinning, { serverCpus: [1], generatorCpus: [0] });
    assert.deepEqual(parseOptions(['--generator-cpus', '1'], twoCpus).pinning, { serverCpus: [0], generatorCpus: [1] });
    assert.deepEqual(parseOptions(['--server-cpus', '0-1'], [0, 1, 2, 3]).pinning, { serverCpus: [0, 1], generatorCpus: [2, 3] });
    assert.throws(() => parseOptions(['--server-cpus', '3'], twoCpus), /--server-cpus 3: no CPU 3 here \(this machine's CPUs are 0-1\)/);
    assert.throws(() => parseOptions(['--server-cpus', '0', '--generator-cpus', '1-2'], twoCpus), /--generator-cpus 1-2: no CPU 2 here/);
    assert.throws(() => parseOptions(['--server-cpus', '0', '--generator-cpus', '0'], twoCpus), /share CPU 0: the sets must be disjoint/);
    assert.throws(() => parseOptions(['--server-cpus', '0-1'], twoCpus), /no CPU left for the load generator.*give --generator-cpus/);
    assert.throws(() => parseOptions(['--generator-cpus', '0,1'], twoCpus), /no CPU left for the server/);
    assert.throws(() => parseOptions(['--server-cpus', 'first'], twoCpus), /--server-cpus: not a CPU list: "first"/);
    assert.throws(() => parseOptions(['--server-cpus'], twoCpus), /--server-cpus: not a CPU list: ""/);
  });

  test('CPU lists read and print as taskset writes them', { timeout: 5_000 }, () => {
    assert.deepEqual(parseCpuList('0-1,4'), [0, 1, 4]);
    assert.deepEqual(parseCpuList('2,0,1,1'), [0, 1, 2]);
    assert.equal(formatCpuList([4, 0, 1, 2, 7]), '0-2,4,7');
    assert.equal(formatCpuList(parseCpuList('3')), '3');
    assert.throws(() => parseCpuList('3-1'), /runs backwards/);
    assert.throws(() => parseCpuList('0,,1'), /not a CPU list/);
  });

  test('a server started through launchCommand has every thread on its CPUs; pinProcess moves a running one', { timeout: 20_000 }, async (t) => {
    const cpus = machineCpus();
    const serverCpu = cpus[0]!;
    const saved = { s: process.env.FERRY_BENCH_SERVER_CPUS, g: process.env.FERRY_BENCH_GENERATOR_CPUS };
    process.env.FERRY_BENCH_SERVER_CPUS = String(serverCpu);
    process.env.FERRY_BENCH_GENERATOR_CPUS = String(cpus.at(-1));
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const c of children) c.kill('SIGKILL');
      process.env.FERRY_BENCH_SERVER_CPUS = saved.s;
      process.env.FERRY_BENCH_GENERATOR_CPUS = saved.g;
      if (saved.s === undefined) delete process.env.FERRY_BENCH_SERVER_CPUS;
      if (saved.g === undefined) delete process.env.FERRY_BENCH_GENERATOR_CPUS;
    });
    const idle = ['-e', 'setInterval(() => {}, 1000)'];
    const [cmd, args] = launchCommand('server', process.execPath, idle);
    assert.equal(cmd, 'taskset');
    const pinned = spawn(cmd, args, { stdio: 'ignore' });
    children.push(pinned);
    // taskset execs node in the same pid: wait until it is node with its threads started.
    const isNodeWithThreads = (pid: number): boolean =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(process.execPath) && threadsOffCpus(pid, [serverCpu]).threads > 1;
    await pollUntil(() => isNodeWithThreads(pinned.pid!), { timeoutMs: 10_000, what: 'the pinned node to start its threads' });
    assert.deepEqual(threadsOffCpus(pinned.pid!, [serverCpu]).off, [], 'every thread of the pinned server on its CPU');

    const free = spawn(process.execPath, idle, { stdio: 'ignore' });
    children.push(free);
    await pollUntil(() => isNodeWithThreads(free.pid!), { timeoutMs: 10_000, what: 'the unpinned node to start its threads' });
    if (cpus.length > 1) {
      assert.ok(threadsOffCpus(free.pid!, [serverCpu]).off.length > 0, 'positive control: an unpinned process is allowed every CPU, and the check sees it');
    }
    pinProcess(free.pid!, [serverCpu]);
    assert.deepEqual(threadsOffCpus(free.pid!, [serverCpu]).off, [], 'taskset -a -p moved every thread');
  });

  test('with pinning each core is named by what ran on it; the generator column shows its share of its cores', { timeout: 5_000 }, () => {
    const pinning = { serverCpus: [0], generatorCpus: [1] };
    const r = step({
      pinning,
      generatorCpuPct: 70,
      orchestratorCpuPct: 10,
      coreBusy: { perCoreBusyPct: [97, 81], coresAboveThreshold: 2, thresholdPct: 50 },
    });
    assert.equal(coreBusyCell(r), '2 (cpu0 server 97 / cpu1 generator 81)');
    assert.match(resultsTable([r]), /\| 70 \(0\.00\) \[80 % of 1 core, CPU 1\] \|/);
    assert.equal(coreBusyCell(step({ coreBusy: { perCoreBusyPct: [97, 81], coresAboveThreshold: 2, thresholdPct: 50 } })), '2 (97 / 81)', 'unpinned: as before');
  });

  test('the generator column is followed by its CPU per packet handled (sent + received)', { timeout: 5_000 }, () => {
    // 40 % of a core for 10 000 packets/s sent and 10 000 received: 20 µs each
    const r = step({ generatorCpuPct: 40, orchestratorCpuPct: 10, sentPps: 10_000, lossPct: 0 });
    assert.equal(generatorUsPerPacket(r), 20);
    assert.match(resultsTable([r]), /\| 40 \(0\.00\) \[[^\]]*\] \| 20\.0 \|/);
    // half the packets lost: 15 000 handled per second
    assert.ok(Math.abs(generatorUsPerPacket(step({ generatorCpuPct: 30, sentPps: 10_000, lossPct: 50 }))! - 20) < 1e-9);
    assert.equal(generatorUsPerPacket(step({ generatorCpuPct: 30, sentPps: 0 })), undefined, 'nothing sent: no figure');
  });

  test('"generator-limited at N=…": its CPU at 90 % of its cores, its pinned cores 90 % busy, or more than 1 % of sends skipped', { timeout: 5_000 }, () => {
    const pinning = { serverCpus: [0], generatorCpus: [1] };
    const cores = { perCoreBusyPct: [60, 85], coresAboveThreshold: 2, thresholdPct: 50 };
    const fullCore = { perCoreBusyPct: [60, 100], coresAboveThreshold: 2, thresholdPct: 50 };
    const lines = generatorLimitedVerdicts([
      step({ target: 'ferry webrtc-rtp', calls: 200, pinning, coreBusy: cores, generatorCpuPct: 60, orchestratorCpuPct: 5 }),
      step({ target: 'ferry webrtc-rtp', calls: 400, pinning, coreBusy: cores, generatorCpuPct: 88, orchestratorCpuPct: 7 }),
      step({ target: 'rtpengine rtp-rtp', calls: 100, generatorCpuPct: 30, orchestratorCpuPct: 2, generatorSkippedPct: 3.5, coreBusy: cores }),
      step({ target: 'ferry rtp-rtp', calls: 100, generatorCpuPct: 100, orchestratorCpuPct: 5, generatorSkippedPct: 0.5, coreBusy: fullCore }),
      step({ target: 'ferry webrtc-rtp', calls: 100, refinement: true, pinning, coreBusy: fullCore, generatorCpuPct: 40, orchestratorCpuPct: 5 }),
    ]);
    assert.deepEqual(lines, [
      "- ferry webrtc-rtp: generator-limited at N=400 (load workers + orchestrator 95 % of their 1 core (CPU 1)): this step's loss, lag and set-up describe the load generator's box, not the server",
      "- rtpengine rtp-rtp: generator-limited at N=100 (skipped 3.50 % of sends): this step's loss, lag and set-up describe the load generator's box, not the server",
      "- ferry webrtc-rtp: generator-limited at N=100 (refine) (its CPU 1 100 % busy, other processes included (load workers + orchestrator 45 %)): this step's loss, lag and set-up describe the load generator's box, not the server",
    ], 'N=200 (65 % of its core, the core 85 % busy) and the unpinned 105 % of 2 cores with 0.5 % skipped are not limited');
  });

  test("pinned: a server core full of other processes' work is named", { timeout: 5_000 }, () => {
    const pinning = { serverCpus: [0], generatorCpus: [1] };
    const busy = (p0: number) => ({ perCoreBusyPct: [p0, 40], coresAboveThreshold: 1, thresholdPct: 50 });
    assert.deepEqual(
      serverCoreSharedVerdicts([
        step({ target: 'ferry webrtc-rtp', calls: 100, pinning, serverCpuPct: 14, coreBusy: busy(100) }),
        step({ target: 'ferry webrtc-rtp', calls: 200, pinning, serverCpuPct: 95, coreBusy: busy(100) }),
        step({ target: 'ferry webrtc-rtp', calls: 300, pinning, serverCpuPct: 30, coreBusy: busy(50) }),
        step({ target: 'ferry webrtc-rtp', calls: 400, serverCpuPct: 14, coreBusy: busy(100) }),
      ]),
      ["- ferry webrtc-rtp: server's CPU 0 100 % busy at N=100, the server itself 14 %: other processes shared its core"],
      'the server filling its own core (N=200), a core with room (N=300) and an unpinned run (N=400) are not named',
    );
  });

  test('"2 workers: shares 49 / 51 % (target 40–60 %)": met when every step keeps every share in bounds', { timeout: 5_000 }, () => {
    const w = (a: number, b: number) => [
      { id: 1, pipelines: a, elements: 2 * a, lagP99Ms: 1, lagMaxMs: 2, source: 'stats.workers' as const },
      { id: 2, pipelines: b, elements: 2 * b, lagP99Ms: 1, lagMaxMs: 2, source: 'stats.workers' as const },
    ];
    const t = 'ferry webrtc-rtp';
    assert.equal(workerShareVerdict([step({ target: t, calls: 100, workerLags: w(49, 51) })], t), `- ${t}: 2 workers: shares 49 / 51 % (N=100; target 40–60 %): **met**`);
    assert.equal(
      workerShareVerdict([step({ target: t, calls: 100, workerLags: w(50, 50) }), step({ target: t, calls: 200, workerLags: w(130, 70) })], t),
      `- ${t}: 2 workers: shares 65 / 35 % (N=200, the most uneven of 2 steps; target 40–60 %): **not met**`,
    );
    assert.equal(workerShareVerdict([step({ target: t, calls: 100, workerLags: workerLagsOf({ pipelines: 100 }, undefined) })], t), undefined, 'one loop: no share line');
    assert.equal(workerShareVerdict([step({ target: 'ferry rtp-rtp', calls: 100, workerLags: w(50, 50) })], t), undefined, 'another target: none');
    assert.match(resultsTable([step({ calls: 100, workerLags: w(49, 51) })]), /#1 1\.0 \/ 2\.0 \(49, 49 %\); #2 1\.0 \/ 2\.0 \(51, 51 %\)/);
  });
});

describe('bench:media WebRTC set-up split (ferry media beside the browsers)', () => {
  test('S-setup: phase marks p50 per mark over the calls that recorded it; none recorded, no table', { timeout: 5_000 }, () => {
    const p = phasesP50([
      { ok: true, ms: 100, phases: { processOffer: 10, serverDtlsConnected: 60, dtlsConnected: 70, done: 100 } },
      { ok: true, ms: 300, phases: { processOffer: 30, serverDtlsConnected: 200, dtlsConnected: 250, done: 300 } },
      { ok: true, ms: 200, phases: { processOffer: 20, serverDtlsConnected: undefined, dtlsConnected: 150, done: 200 } },
    ]);
    assert.deepEqual(p, { processOffer: 20, serverDtlsConnected: 60, dtlsConnected: 150, done: 200 });
    assert.equal(phasesP50([{ ok: true, ms: 5 }]), undefined);
    assert.equal(setupPhasesTable([step({})]), undefined, 'a target without marks or a set-up window adds no table');
  });

  test('S-setup: the table puts ferry\'s own ICE/DTLS connected beside the browser\'s, with each core and CPU per call set up', { timeout: 5_000 }, () => {
    const pinning = { serverCpus: [0], generatorCpus: [1] };
    const setupWindow = { wallMs: 3000, serverCpuMs: 1500, loadWorkersCpuMs: 2400, orchestratorCpuMs: 600, perCoreBusyPct: [55, 97], orchestratorLagP50Ms: 8, orchestratorLagP99Ms: 45 };
    const phases = { processOffer: 130, serverIceConnected: 150, iceConnected: 147, serverDtlsConnected: 183, dtlsConnected: 190, done: 236 };
    const t = setupPhasesTable([
      step({ target: 'ferry webrtc-rtp', calls: 100, pinning, setupWindow, setupPhasesP50Ms: phases, setupMode: '10 at a time', setupP50Ms: 236, setupP99Ms: 410 }),
      step({ target: 'ferry webrtc-rtp', calls: 200, pinning, setupWindow: { ...setupWindow, serverCpuMs: 3000 }, setupMode: '5/s even', setupP50Ms: 45, setupP99Ms: 80, arrivalLateP99Ms: 2, arrivalLateMaxMs: 3.5 }),
    ]);
    assert.ok(t);
    const rows = t.split('\n').slice(2);
    assert.equal(rows[0], '| ferry webrtc-rtp | 100 | 3.0 (2 (cpu0 server 55 / cpu1 generator 97)) | 15.0 / 30.0 | 8.0 / 45.0 | 130.0 | 150.0 | 147.0 | 183.0 | 190.0 | 236.0 | 10 at a time | 236.0 / 410.0 | – |');
    // the 200 step added 100 calls: per call set up is over those 100, not 200
    assert.match(rows[1]!, /^\| ferry webrtc-rtp \| 200 \| 3\.0 \(.*\) \| 30\.0 \/ 30\.0 \| 8\.0 \/ 45\.0 \| – \| – \| – \| – \| – \| – \| 5\/s even \| 45\.0 \/ 80\.0 \| 2\.0 \/ 3\.5 \|$/);
  });

  test('S-setup: --no-server-marks turns the ICE/DTLS event subscriptions off; they are on by default', { timeout: 5_000 }, () => {
    assert.equal(parseOptions([]).serverSetupMarks, true);
    assert.equal(parseOptions(['--no-server-marks']).serverSetupMarks, false);
  });
});

describe('bench:media node floor (a bare node:dgram relay)', () => {
  test('node-floor is a target only when named; an unknown target is refused', { timeout: 5_000 }, () => {
    assert.ok(!parseOptions([]).targets.includes('node-floor'));
    assert.deepEqual(parseOptions(['--targets', 'rtpengine,node-floor,ferry-rtp']).targets, ['rtpengine', 'node-floor', 'ferry-rtp']);
    assert.throws(() => parseOptions(['--targets', 'node-flor']), /unknown target "node-flor"/);
  });

  test('the floor table: floor against rtpengine, ferry against the floor, and what ferry adds per packet', { timeout: 5_000 }, () => {
    const md = nodeFloorTable([
      step({ target: 'rtpengine rtp-rtp', calls: 100, cpuUsPerPacket: 20 }),
      step({ target: NODE_FLOOR_TARGET, calls: 100, cpuUsPerPacket: 24 }),
      step({ target: 'ferry rtp-rtp', calls: 100, cpuUsPerPacket: 36 }),
      step({ target: NODE_FLOOR_TARGET, calls: 200, cpuUsPerPacket: 18 }),
    ]);
    const row100 = md.split('\n').find((l) => l.startsWith('| 100 |'));
    assert.equal(row100, '| 100 | 20.0 | 24.0 | 1.20× | 36.0 | 1.50× | 12.0 |');
    const row200 = md.split('\n').find((l) => l.startsWith('| 200 |'));
    assert.equal(row200, '| 200 | – | 18.0 | – | – | – | – |');
    assert.match(nodeFloorTable([step({ target: 'ferry rtp-rtp' })]), /carried no call/);
  });

  test('the floor relay sends what one side receives out to the other, both ways, and closes every socket', { timeout: 15_000 }, async (t) => {
    const relay = spawn(process.execPath, [require.resolve('../../bench/media/servers/node-floor-relay.cjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => relay.kill('SIGKILL'));
    const replies: Array<Record<string, unknown>> = [];
    let buffered = '';
    relay.stdout!.on('data', (d: Buffer) => {
      buffered += String(d);
      let i;
      while ((i = buffered.indexOf('\n')) >= 0) {
        replies.push(JSON.parse(buffered.slice(0, i)) as Record<string, unknown>);
        buffered = buffered.slice(i + 1);
      }
    });
    let seq = 0;
    const request = async (msg: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const mine = ++seq;
      relay.stdin!.write(JSON.stringify({ ...msg, seq: mine }) + '\n');
      const reply = await pollUntil(() => replies.find((r) => r.seq === mine), { timeoutMs: 5_000, what: `reply to ${String(msg.op)}` });
      assert.equal(reply.error, undefined);
      return reply.result as Record<string, unknown>;
    };
    await pollUntil(() => replies.find((r) => r.ready === true), { timeoutMs: 5_000, what: 'relay ready' });
    const dgram = await import('node:dgram');
    const phone = async (): Promise<{ s: import('node:dgram').Socket; got: Buffer[] }> => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      const got: Buffer[] = [];
      s.on('message', (m) => got.push(m));
      return { s, got };
    };
    const [a, b] = await Promise.all([phone(), phone()]);
    t.after(() => {
      a.s.close();
      b.s.close();
    });
    const pair = (await request({ op: 'pair' })) as { id: number; a: number; b: number };
    await request({ op: 'target', id: pair.id, a: a.s.address().port, b: b.s.address().port });
    a.s.send(Buffer.from('from-a'), pair.a, '127.0.0.1');
    b.s.send(Buffer.from('from-b'), pair.b, '127.0.0.1');
    await pollUntil(() => b.got.length === 1 && a.got.length === 1, { timeoutMs: 5_000, what: 'both relayed' });
    assert.equal(String(b.got[0]), 'from-a');
    assert.equal(String(a.got[0]), 'from-b');
    assert.deepEqual(await request({ op: 'closeAll' }), { ok: true, open: 0 });
  });
});
