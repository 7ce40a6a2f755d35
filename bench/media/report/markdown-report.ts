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
    'generator CPU % (skipped %)',
    `machine busy cores of ${os.cpus().length} (of which other processes)`,
    'cores > 50 % busy (busy % per core)',
    'ferry media workers: lag p99 / max ms (pipelines) each',
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
    `${f(r.generatorCpuPct, 0)} (${f(r.generatorSkippedPct, 2)})`,
    `${f(r.machineBusyCores, 2)} (${f(r.otherProcessesCores, 2)})`,
    r.coreBusy ? `${r.coreBusy.coresAboveThreshold} (${r.coreBusy.perCoreBusyPct.map((p) => p.toFixed(0)).join(' / ')})` : '–',
    workersCell(r),
  ]);
  return table(head, rows);
}

function workersCell(r: StepResult): string {
  if (!r.workerLags || r.workerLags.length === 0) return r.loopLagP99Ms === undefined ? 'n/a' : '–';
  const single = r.workerLags.length === 1 && r.workerLags[0]!.source !== 'stats.workers';
  const cells = r.workerLags.map((w) => `${f(w.lagP99Ms)} / ${f(w.lagMaxMs)} (${w.pipelines ?? '?'})`);
  const set = r.mediaWorkers !== undefined ? ` (FERRY_MEDIA_WORKERS=${r.mediaWorkers})` : '';
  if (single) return `1 loop, no per-worker /stats${set}: ${cells[0]}`;
  return `${r.workerLags.length} worker${r.workerLags.length === 1 ? '' : 's'}${set}: ${r.workerLags.map((w, i) => `#${w.id} ${cells[i]}`).join('; ')}`;
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
