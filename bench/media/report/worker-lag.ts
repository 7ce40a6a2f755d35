/**
 * Per-worker figures of ferry media for one step. With relay worker threads (FERRY_MEDIA_WORKERS),
 * ferry media's /stats carries `workers: [{ id, pipelines, elements, eventLoopLagP99Ms, eventLoopLagMaxMs }]`;
 * a ferry media without them (or with one loop) is reported as one worker: its pipelines and elements
 * from /stats and the lag of its single event loop (the preloaded probe's window figures when there
 * are any, else /stats' own eventLoopLag*).
 */
import type { LoopLag } from '../probe/loop-lag-reader';

export interface WorkerLag {
  id: number | string;
  pipelines: number | undefined;
  elements: number | undefined;
  lagP99Ms: number | undefined;
  lagMaxMs: number | undefined;
  /** Where the lag came from: ferry media's /stats per worker, or its single loop (probe / /stats). */
  source: 'stats.workers' | 'probe' | 'stats';
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function workerLagsOf(stats: Record<string, unknown> | undefined, probe: LoopLag | undefined): WorkerLag[] {
  const list = stats?.workers;
  if (Array.isArray(list) && list.length > 0) {
    return list.map((w: unknown, i) => {
      const o = (typeof w === 'object' && w !== null ? w : {}) as Record<string, unknown>;
      const id = typeof o.id === 'number' || typeof o.id === 'string' ? o.id : i;
      return {
        id,
        pipelines: num(o.pipelines),
        elements: num(o.elements),
        lagP99Ms: num(o.eventLoopLagP99Ms),
        lagMaxMs: num(o.eventLoopLagMaxMs),
        source: 'stats.workers' as const,
      };
    });
  }
  if (!stats && !probe) return [];
  return [
    {
      id: 0,
      pipelines: num(stats?.pipelines),
      elements: num(stats?.elements),
      lagP99Ms: probe?.p99Ms ?? num(stats?.eventLoopLagP99Ms),
      lagMaxMs: probe?.maxMs ?? num(stats?.eventLoopLagMaxMs),
      source: probe ? 'probe' : 'stats',
    },
  ];
}

/** The worst p99 over the workers (undefined when none reported a lag). */
export function worstWorkerLagP99(workers: readonly WorkerLag[] | undefined): number | undefined {
  let worst: number | undefined;
  for (const w of workers ?? []) if (w.lagP99Ms !== undefined) worst = Math.max(worst ?? 0, w.lagP99Ms);
  return worst;
}
