import { existsSync, readFileSync } from 'node:fs';
import { percentileOf } from '../load/log-histogram';

export interface LoopLag {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

/**
 * Event-loop lag of the media server over [fromMs, toMs] (epoch ms) from the lines the
 * loop-lag-probe.cjs preload wrote. With several Node processes (pids) the worst one is reported.
 */
export function readLoopLag(file: string, fromMs: number, toMs: number): LoopLag | undefined {
  if (!existsSync(file)) return undefined;
  const byPid = new Map<number, number[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    let rec: { t: number; pid: number; lagUs: number[] };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    // A line holds the samples of the second before `t`.
    if (rec.t - 500 < fromMs || rec.t - 500 > toMs) continue;
    const list = byPid.get(rec.pid) ?? [];
    for (const v of rec.lagUs) list.push(v);
    byPid.set(rec.pid, list);
  }
  let worst: LoopLag | undefined;
  for (const list of byPid.values()) {
    const lag: LoopLag = {
      p50Ms: (percentileOf(list, 50) ?? 0) / 1000,
      p99Ms: (percentileOf(list, 99) ?? 0) / 1000,
      maxMs: Math.max(...list) / 1000,
      samples: list.length,
    };
    if (!worst || lag.p99Ms > worst.p99Ms) worst = lag;
  }
  return worst;
}
