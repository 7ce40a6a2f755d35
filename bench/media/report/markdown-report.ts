import os from 'node:os';
import type { StepResult } from './step-result';
import { worstWorkerLagP99 } from './worker-lag';

const f = (v: number | undefined, digits = 1): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));

/** One row per (target, N): the figures docs/benchmarks.md reports, plus what explains them. */
export function resultsTable(results: readonly StepResult[]): string {
  const head = [
    'target',
    'N calls (up)',
    'media server CPU % of 1 core (user/sys)',
    'CPU s per call per s',
    'µs CPU per packet in',
    'RSS MiB',
    'RSS per call KiB',
    'event-loop lag p99 / max ms',
    'setup p50 / p99 ms',
    'loss % (a→b / b→a) [working calls only]',
    'UDP buffer drops server / generator',
    'latency p50 / p99 ms',
    'generator CPU % (skipped %) [load workers + orchestrator, % of the cores they had]',
    'generator µs CPU per packet (load workers; sent + received)',
    `machine busy cores of ${os.cpus().length} (of which other processes)`,
    'cores > 50 % busy (busy % per core; with pinning: whose core)',
    'ferry media workers: lag p99 / max ms (pipelines, share of calls) each',
  ];
  const rows = results.map((r) => [
    r.target,
    `${r.calls}${r.callsUp !== r.calls ? ` (${r.callsUp})` : ''}${r.refinement ? ' (refine)' : ''}`,
    `${f(r.serverCpuPct)} (${f(r.serverUserPct)}/${f(r.serverSysPct)})`,
    r.cpuPerCall.toFixed(5),
    f(r.cpuUsPerPacket),
    f(r.rssMiB, 0),
    f(r.rssPerCallKiB, 0),
    r.loopLagP99Ms === undefined ? 'n/a (C daemon)' : `${f(r.loopLagP99Ms)} / ${f(r.loopLagMaxMs)}`,
    `${f(r.setupP50Ms)} / ${f(r.setupP99Ms)}`,
    `${r.lossPct.toFixed(3)} (${r.lossPctAB.toFixed(3)} / ${r.lossPctBA.toFixed(3)}) [${r.liveLossPct.toFixed(3)}]${r.silentStreams ? `, ${r.silentStreams} silent streams` : ''}`,
    `${r.serverUdpDrops} / ${r.generatorUdpDrops}`,
    `${f(r.latencyP50Ms, 2)} / ${f(r.latencyP99Ms, 2)}`,
    generatorCell(r),
    f(generatorUsPerPacket(r)),
    `${f(r.machineBusyCores, 2)} (${f(r.otherProcessesCores, 2)})`,
    coreBusyCell(r),
    workersCell(r),
  ]);
  return table(head, rows);
}

function workersCell(r: StepResult): string {
  if (!r.workerLags || r.workerLags.length === 0) return r.loopLagP99Ms === undefined ? 'n/a' : '–';
  const single = r.workerLags.length === 1 && r.workerLags[0]!.source !== 'stats.workers';
  const shares = workerSharesPct(r);
  const cells = r.workerLags.map(
    (w, i) => `${f(w.lagP99Ms)} / ${f(w.lagMaxMs)} (${w.pipelines ?? '?'}${shares && r.workerLags!.length > 1 ? `, ${shares[i]!.toFixed(0)} %` : ''})`,
  );
  const set = r.mediaWorkers !== undefined ? ` (FERRY_MEDIA_WORKERS=${r.mediaWorkers})` : '';
  if (single) return `1 loop, no per-worker /stats${set}: ${cells[0]}`;
  return `${r.workerLags.length} worker${r.workerLags.length === 1 ? '' : 's'}${set}: ${r.workerLags.map((w, i) => `#${w.id} ${cells[i]}`).join('; ')}`;
}

/**
 * Busy % per core; with pinning each core is named by what ran on it ("cpu0 server 97 / cpu1 generator 81"),
 * so the server's core and the generator's are read apart.
 */
export function coreBusyCell(r: StepResult): string {
  if (!r.coreBusy) return '–';
  const per = r.coreBusy.perCoreBusyPct;
  if (!r.pinning) return `${r.coreBusy.coresAboveThreshold} (${per.map((p) => p.toFixed(0)).join(' / ')})`;
  const role = (cpu: number): string =>
    r.pinning!.serverCpus.includes(cpu) ? 'server' : r.pinning!.generatorCpus.includes(cpu) ? 'generator' : 'unpinned';
  return `${r.coreBusy.coresAboveThreshold} (${per.map((p, cpu) => `cpu${cpu} ${role(cpu)} ${p.toFixed(0)}`).join(' / ')})`;
}

/**
 * The load workers' CPU per packet they handled (sent, plus received: sent less the loss), µs: what one packet
 * costs the generator, whatever the step's size. The orchestrator (call set-up, epochs) is not in it.
 */
export function generatorUsPerPacket(r: StepResult): number | undefined {
  const handledPps = r.sentPps * (2 - r.lossPct / 100);
  return handledPps > 0 ? (r.generatorCpuPct / 100) * 1e6 / handledPps : undefined;
}

/** CPUs the load generator could use at this step: its pinned set, else every core of the machine. */
export function generatorCores(r: StepResult): number {
  return r.pinning?.generatorCpus.length ?? (r.coreBusy?.perCoreBusyPct.length || os.cpus().length);
}

/** Load workers + orchestrator CPU as % of the cores they had (100 = all of them busy). */
export function generatorLoadPct(r: StepResult): number {
  return (r.generatorCpuPct + (r.orchestratorCpuPct ?? 0)) / generatorCores(r);
}

function generatorCell(r: StepResult): string {
  const own = `${f(r.generatorCpuPct, 0)} (${f(r.generatorSkippedPct, 2)})`;
  if (r.orchestratorCpuPct === undefined) return own;
  const cores = generatorCores(r);
  const where = r.pinning ? `CPU ${r.pinning.generatorCpus.join(',')}` : 'unpinned';
  return `${own} [${f(generatorLoadPct(r), 0)} % of ${cores} core${cores === 1 ? '' : 's'}, ${where}]`;
}

/**
 * Generator CPU at or above this share of its cores, or (pinned) its cores this busy with anyone's work,
 * or skipped sends above GENERATOR_SKIP_LIMIT_PCT: the generator was the limit.
 */
export const GENERATOR_BUSY_LIMIT_PCT = 90;
export const GENERATOR_SKIP_LIMIT_PCT = 1;

/** Why the load generator, not the server, limited this step (undefined = it did not). */
export function generatorLimit(r: StepResult): string | undefined {
  const reasons: string[] = [];
  const load = generatorLoadPct(r);
  const cores = generatorCores(r);
  if (load >= GENERATOR_BUSY_LIMIT_PCT) {
    reasons.push(`load workers + orchestrator ${load.toFixed(0)} % of their ${cores} core${cores === 1 ? '' : 's'}${r.pinning ? ` (CPU ${r.pinning.generatorCpus.join(',')})` : ''}`);
  }
  // Pinned, the generator's cores run nothing of the server's: if they are full (other processes
  // included), the generator's sends and its side of the call set-up wait for CPU.
  const genBusy = r.pinning && r.coreBusy ? r.pinning.generatorCpus.map((c) => r.coreBusy!.perCoreBusyPct[c] ?? 0) : [];
  const genBusyAvg = genBusy.length > 0 ? genBusy.reduce((a, b) => a + b, 0) / genBusy.length : 0;
  if (load < GENERATOR_BUSY_LIMIT_PCT && genBusyAvg >= GENERATOR_BUSY_LIMIT_PCT) {
    reasons.push(`its CPU ${r.pinning!.generatorCpus.join(',')} ${genBusyAvg.toFixed(0)} % busy, other processes included (load workers + orchestrator ${load.toFixed(0)} %)`);
  }
  if (r.generatorSkippedPct > GENERATOR_SKIP_LIMIT_PCT) reasons.push(`skipped ${r.generatorSkippedPct.toFixed(2)} % of sends`);
  return reasons.length > 0 ? reasons.join(', ') : undefined;
}

/** One verdict line per step the generator limited: a failed step then says whether the server or the box failed. */
export function generatorLimitedVerdicts(results: readonly StepResult[]): string[] {
  return results.flatMap((r) => {
    const why = generatorLimit(r);
    if (!why) return [];
    return [`- ${r.target}: generator-limited at N=${r.calls}${r.refinement ? ' (refine)' : ''} (${why}): this step's loss, lag and set-up describe the load generator's box, not the server`];
  });
}

/**
 * Pinned runs: steps whose server CPUs were ≥ 90 % busy while the server itself used less than 70 % of
 * them, i.e. other processes took the server's core; that step's lag and loss are not the server's alone.
 */
export function serverCoreSharedVerdicts(results: readonly StepResult[]): string[] {
  return results.flatMap((r) => {
    if (!r.pinning || !r.coreBusy) return [];
    const cpus = r.pinning.serverCpus;
    const busy = cpus.reduce((a, c) => a + (r.coreBusy!.perCoreBusyPct[c] ?? 0), 0) / cpus.length;
    const own = r.serverCpuPct / cpus.length;
    if (busy < GENERATOR_BUSY_LIMIT_PCT || own >= 70) return [];
    return [`- ${r.target}: server's CPU ${cpus.join(',')} ${busy.toFixed(0)} % busy at N=${r.calls}${r.refinement ? ' (refine)' : ''}, the server itself ${own.toFixed(0)} %: other processes shared its core`];
  });
}

/** Each relay worker's share of the calls (% of the pipelines /stats counted), or undefined without per-worker counts. */
export function workerSharesPct(r: StepResult): number[] | undefined {
  const counts = r.workerLags?.map((w) => w.pipelines);
  if (!counts || counts.length === 0 || counts.some((c) => c === undefined)) return undefined;
  const total = (counts as number[]).reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  return (counts as number[]).map((c) => (100 * c) / total);
}

/** The share each of W workers must stay within: 100/W ± 20 % of it (2 workers: 40–60 %). */
export function shareBounds(workers: number): [number, number] {
  const even = 100 / workers;
  return [even * 0.8, even * 1.2];
}

/**
 * With 2 or more relay workers: do all of them carry relay work? Over every step of `target` with
 * per-worker counts, the most uneven one is shown; met when every step kept every share in bounds.
 */
export function workerShareVerdict(results: readonly StepResult[], target: string): string | undefined {
  const steps = results
    .filter((r) => r.target === target && (r.workerLags?.length ?? 0) >= 2)
    .map((r) => ({ r, shares: workerSharesPct(r) }))
    .filter((x): x is { r: StepResult; shares: number[] } => x.shares !== undefined);
  if (steps.length === 0) return undefined;
  const spread = (shares: number[]): number => Math.max(...shares) - Math.min(...shares);
  const worst = steps.reduce((a, b) => (spread(b.shares) > spread(a.shares) ? b : a));
  const workers = worst.shares.length;
  const [lo, hi] = shareBounds(workers);
  const met = steps.every((x) => x.shares.every((p) => p >= lo && p <= hi));
  const shown = worst.shares.map((p) => p.toFixed(0)).join(' / ');
  const where = steps.length === 1 ? `N=${worst.r.calls}` : `N=${worst.r.calls}, the most uneven of ${steps.length} steps`;
  return `- ${target}: ${workers} workers: shares ${shown} % (${where}; target ${lo.toFixed(0)}–${hi.toFixed(0)} %): **${met ? 'met' : 'not met'}**`;
}

/**
 * Ferry's CPU per call as a multiple of rtpengine's at the same N (both from the same run). Per-call
 * CPU is normalised to the packets actually sent (µs per packet × 100 packets/s per call), so a load
 * generator that skipped sends on a busy machine does not flatter either server.
 */
export function ratioTable(results: readonly StepResult[]): string {
  const by = (target: string): Map<number, StepResult> =>
    new Map(results.filter((r) => r.target === target && r.callsUp > 0 && r.cpuUsPerPacket > 0).map((r) => [r.calls, r]));
  const rtpe = by('rtpengine rtp-rtp');
  const ferryRtp = by('ferry rtp-rtp');
  const ferryWebrtc = by('ferry webrtc-rtp');
  const perCall = (r: StepResult): string => ((r.cpuUsPerPacket * 100) / 1e6).toFixed(5);
  const ns = [...new Set(results.map((r) => r.calls))].sort((a, b) => a - b);
  const rows: string[][] = [];
  for (const n of ns) {
    const base = rtpe.get(n);
    const fr = ferryRtp.get(n);
    const fw = ferryWebrtc.get(n);
    if (!base || (!fr && !fw)) continue;
    rows.push([
      String(n),
      `${perCall(base)} (${base.cpuUsPerPacket.toFixed(1)} µs/pkt)`,
      fr ? `${perCall(fr)} (${fr.cpuUsPerPacket.toFixed(1)} µs/pkt)` : '–',
      fr ? `${(fr.cpuUsPerPacket / base.cpuUsPerPacket).toFixed(1)}×` : '–',
      fw ? `${perCall(fw)} (${fw.cpuUsPerPacket.toFixed(1)} µs/pkt)` : '–',
      fw ? `${(fw.cpuUsPerPacket / base.cpuUsPerPacket).toFixed(1)}×` : '–',
    ]);
  }
  if (rows.length === 0) {
    if (rtpe.size > 0) return '_no step had both rtpengine and ferry results_';
    // No anchor in this run (rtpengine not installed or not selected): ferry's own figures, no ratio.
    const ferryRows = ns
      .map((n) => [n, ferryRtp.get(n), ferryWebrtc.get(n)] as const)
      .filter(([, fr, fw]) => fr || fw)
      .map(([n, fr, fw]) => [
        String(n),
        'rtpengine absent',
        fr ? `${perCall(fr)} (${fr.cpuUsPerPacket.toFixed(1)} µs/pkt)` : '–',
        '–',
        fw ? `${perCall(fw)} (${fw.cpuUsPerPacket.toFixed(1)} µs/pkt)` : '–',
        '–',
      ]);
    const note = '_rtpengine was not part of this run (not installed here, or not among --targets): no ratio; ferry\'s figures alone, compare with a run that has the anchor_';
    if (ferryRows.length === 0) return note;
    return `${note}\n\n${table(RATIO_HEAD, ferryRows)}`;
  }
  return table(RATIO_HEAD, rows);
}

/** The target name of the bare node:dgram relay (bench/media/phases/node-floor-target.ts). */
export const NODE_FLOOR_TARGET = 'node floor rtp-rtp';

/**
 * The bare node:dgram relay against rtpengine and ferry RTP↔RTP at the same N: how much of ferry's figure
 * any relay on node:dgram pays (a Buffer and an address object per received datagram, a send request per
 * send, the same syscalls), and how much is ferry's own code.
 */
export function nodeFloorTable(results: readonly StepResult[]): string {
  const by = (target: string): Map<number, StepResult> =>
    new Map(results.filter((r) => r.target === target && r.callsUp > 0 && r.cpuUsPerPacket > 0).map((r) => [r.calls, r]));
  const floor = by(NODE_FLOOR_TARGET);
  const rtpe = by('rtpengine rtp-rtp');
  const ferryRtp = by('ferry rtp-rtp');
  const us = (r: StepResult | undefined): string => (r ? `${r.cpuUsPerPacket.toFixed(1)}` : '–');
  const ratio = (a: StepResult | undefined, b: StepResult | undefined): string => (a && b ? `${(a.cpuUsPerPacket / b.cpuUsPerPacket).toFixed(2)}×` : '–');
  const rows = [...floor.keys()]
    .sort((a, b) => a - b)
    .map((n) => {
      const f = floor.get(n);
      const base = rtpe.get(n);
      const fr = ferryRtp.get(n);
      return [String(n), us(base), us(f), ratio(f, base), us(fr), ratio(fr, f), fr && f ? (fr.cpuUsPerPacket - f.cpuUsPerPacket).toFixed(1) : '–'];
    });
  if (rows.length === 0) return '_the node floor relay carried no call_';
  return table(
    [
      'N calls',
      'rtpengine RTP↔RTP µs/pkt',
      'node floor µs/pkt',
      'node floor / rtpengine',
      'ferry RTP↔RTP µs/pkt',
      'ferry RTP↔RTP / node floor',
      "ferry's own µs/pkt (ferry − floor)",
    ],
    rows,
  );
}

const RATIO_HEAD = [
  'N calls',
  'rtpengine RTP↔RTP CPU s/call/s',
  'ferry RTP↔RTP CPU s/call/s',
  'ratio ferry RTP↔RTP / rtpengine',
  'ferry WebRTC↔RTP CPU s/call/s',
  'ratio ferry WebRTC↔RTP / rtpengine',
];

export interface PerCoreCapacity {
  /** Largest N whose every call was up and whose loss and worst worker lag p99 stayed under the limits (0 = none). */
  calls: number;
  /** Relay workers at that step (1 without worker threads). */
  workers: number;
  /** calls / workers: what one worker (one core) carried. */
  perWorker: number;
  /** The smallest step tried above `calls` and why it failed, if any. */
  firstFailure: string | undefined;
  /** That step's N. */
  firstFailureCalls: number | undefined;
}

/**
 * Per-core capacity of one ferry target: over the steps tried (the search runs up the --steps ladder,
 * so the answer's resolution is the ladder's spacing), the largest N with every call up, no failed
 * setup, loss < lossLimitPct (0 passes a limit of 0) and every worker's event-loop lag p99 < lagLimitMs
 * (the main loop's, from the probe, included); divided by the workers that carried it.
 */
export function perCoreCapacity(results: readonly StepResult[], target: string, lossLimitPct: number, lagLimitMs: number): PerCoreCapacity {
  const steps = results.filter((r) => r.target === target).sort((a, b) => a.calls - b.calls);
  const failure = (r: StepResult): string | undefined => {
    // The worst of the workers' own figures and the process's main loop (the probe): with one worker
    // they are the same loop; with worker threads a lagging main loop still delays every call's control.
    const lags = [worstWorkerLagP99(r.workerLags), r.loopLagP99Ms].filter((v): v is number => v !== undefined);
    const lag = lags.length > 0 ? Math.max(...lags) : undefined;
    if (r.setupFailures > 0 || r.callsUp !== r.calls) return `${r.calls - r.callsUp} call(s) not up`;
    if (!(r.lossPct < lossLimitPct || r.lossPct === 0)) return `loss ${r.lossPct.toFixed(3)} %`;
    if (lag === undefined) return 'no event-loop lag measured';
    if (lag >= lagLimitMs) return `lag p99 ${lag.toFixed(1)} ms`;
    return undefined;
  };
  let best: StepResult | undefined;
  for (const r of steps) if (failure(r) === undefined && (!best || r.calls > best.calls)) best = r;
  const above = steps.find((r) => r.calls > (best?.calls ?? 0) && failure(r) !== undefined);
  const firstFailure = above ? `N=${above.calls}: ${failure(above)}` : undefined;
  const workers = Math.max(1, best?.workerLags?.length ?? best?.mediaWorkers ?? 1);
  const calls = best?.calls ?? 0;
  return { calls, workers, perWorker: calls / workers, firstFailure, firstFailureCalls: above?.calls };
}

/** The largest N whose working calls (dead ones aside) kept loss within the limit: the CPU-bound capacity. */
export function liveCapacity(results: readonly StepResult[], target: string, lossLimitPct: number): number {
  let best = 0;
  for (const r of results) {
    if (r.target === target && r.setupFailures === 0 && r.liveLossPct <= lossLimitPct) best = Math.max(best, r.calls);
  }
  return best;
}

export function capacity(results: readonly StepResult[], target: string, lossLimitPct: number): number {
  let best = 0;
  for (const r of results) {
    if (r.target === target && r.setupFailures === 0 && r.callsUp === r.calls && r.silentStreams === 0 && r.lossPct <= lossLimitPct) {
      best = Math.max(best, r.calls);
    }
  }
  return best;
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * Where a step's set-up time goes (ms since the MediaPipeline create, p50 of each mark): ferry media's own view
 * (its processOffer answer, ICE and DTLS CONNECTED by its clock) beside the browser's (ICE and DTLS connected by
 * the werift browser's clock, and when its answer reached the bench), with who was busy meanwhile (each core,
 * the server's CPU and the load generator's per call set up, the orchestrator's event-loop delay). Undefined
 * when no step recorded either.
 */
export function setupPhasesTable(results: readonly StepResult[]): string | undefined {
  const rows = results.filter((r) => r.setupPhasesP50Ms || r.setupWindow);
  if (rows.length === 0) return undefined;
  const head = [
    'target',
    'N calls',
    'set-up s (cores busy %)',
    'CPU ms per call set up: server / generator (load workers + orchestrator) [media of the calls up included]',
    'orchestrator loop delay p50 / p99 ms',
    'processOffer answered',
    'ferry ICE connected',
    'browser ICE connected',
    'ferry DTLS connected (ferry\'s set-up)',
    'browser DTLS connected',
    'bench told (the set-up p50)',
    'set-up mode',
    'set-up p50 / p99 ms',
    'open-loop arrivals started late p99 / max ms',
  ];
  return table(
    head,
    rows.map((r) => {
      const m = r.setupPhasesP50Ms ?? {};
      const w = r.setupWindow;
      const added = Math.max(1, r.calls - (results.filter((x) => x.target === r.target && x.calls < r.calls).reduce((a, x) => Math.max(a, x.calls), 0)));
      return [
        r.target,
        String(r.calls),
        w ? `${f(w.wallMs / 1000)} (${coreBusyCell({ ...r, coreBusy: { perCoreBusyPct: w.perCoreBusyPct, coresAboveThreshold: w.perCoreBusyPct.filter((p) => p > 50).length, thresholdPct: 50 } })})` : '–',
        w ? `${f(w.serverCpuMs / added)} / ${f((w.loadWorkersCpuMs + w.orchestratorCpuMs) / added)}` : '–',
        w ? `${f(w.orchestratorLagP50Ms)} / ${f(w.orchestratorLagP99Ms)}` : '–',
        f(m.processOffer),
        f(m.serverIceConnected),
        f(m.iceConnected),
        f(m.serverDtlsConnected),
        f(m.dtlsConnected),
        f(m.done),
        r.setupMode ?? '–',
        `${f(r.setupP50Ms)} / ${f(r.setupP99Ms)}`,
        r.arrivalLateP99Ms !== undefined ? `${f(r.arrivalLateP99Ms)} / ${f(r.arrivalLateMaxMs)}` : '–',
      ];
    }),
  );
}
