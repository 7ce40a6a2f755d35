import type { StepResult } from './step-result';

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
    'machine busy cores of 2 (of which other processes)',
  ];
  const rows = results.map((r) => [
    r.target,
    `${r.calls}${r.callsUp !== r.calls ? ` (${r.callsUp})` : ''}`,
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
  ]);
  return table(head, rows);
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
  if (rows.length === 0) return '_no step had both rtpengine and ferry results_';
  return table(
    [
      'N calls',
      'rtpengine RTP↔RTP CPU s/call/s',
      'ferry RTP↔RTP CPU s/call/s',
      'ratio ferry RTP↔RTP / rtpengine',
      'ferry WebRTC↔RTP CPU s/call/s',
      'ratio ferry WebRTC↔RTP / rtpengine',
    ],
    rows,
  );
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
