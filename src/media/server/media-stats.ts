import type { ProcessFaultCounts } from '../../common/process-faults';
import type { WorkerPool } from '../workers/worker-pool';
import type { WorkerStats } from '../workers/worker-protocol';
import type { MediaSet } from './media-set';

type Lag = { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number };

/** One entry of /stats `workers`. */
export interface WorkerStatsEntry {
  /** 1..FERRY_MEDIA_WORKERS; 0 = the main thread (no relay workers) */
  id: number;
  /** pipelines and elements the worker itself holds */
  pipelines: number;
  elements: number;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  /** the worker is up (false while a dead worker is being restarted) */
  running: boolean;
  /** times this worker slot was restarted after its worker died */
  restarts: number;
}

/**
 * The body of GET /stats (docs/media-server.md, "GET /stats"): the control plane's figures (sessions,
 * pipelines, elements, ports, quotas, lifecycle counters) with every element's entry fresh from its
 * relay worker, `eventLoopLagP99Ms`/`eventLoopLagMaxMs` the worst of the main thread and the workers,
 * `processFaults` summed, plus `workers` and `draining`.
 */
export async function mediaStatsBody(mediaSet: MediaSet, pool: WorkerPool | undefined, mainLag: Lag, mainFaults: ProcessFaultCounts, draining: boolean): Promise<Record<string, unknown>> {
  if (!pool) {
    const base = mediaSet.stats();
    const workers: WorkerStatsEntry[] = [{ id: 0, pipelines: base.pipelines as number, elements: base.elements as number, ...mainLag, running: true, restarts: 0 }];
    return { ...base, ...mainLag, processFaults: mainFaults, workers, draining };
  }
  const fromWorkers = await Promise.all(pool.workers.map(async (w) => ({ w, st: await w.stats() })));
  for (const { st } of fromWorkers) if (st) mediaSet.applyWorkerStats(st);
  const base = mediaSet.stats();
  const workers: WorkerStatsEntry[] = fromWorkers.map(({ w, st }) => ({
    id: w.id,
    pipelines: st?.pipelines ?? mediaSet.pipelinesOn(w.id),
    elements: st?.elements ?? mediaSet.elementsOn(w.id),
    eventLoopLagP99Ms: st?.eventLoopLagP99Ms ?? w.lag.eventLoopLagP99Ms,
    eventLoopLagMaxMs: st?.eventLoopLagMaxMs ?? w.lag.eventLoopLagMaxMs,
    running: w.ready,
    restarts: w.restarts,
  }));
  const lag: Lag = {
    eventLoopLagP99Ms: Math.max(mainLag.eventLoopLagP99Ms, ...workers.map((w) => w.eventLoopLagP99Ms)),
    eventLoopLagMaxMs: Math.max(mainLag.eventLoopLagMaxMs, ...workers.map((w) => w.eventLoopLagMaxMs)),
  };
  return { ...base, ...lag, processFaults: sumFaults(mainFaults, fromWorkers.map((x) => x.st)), workers, draining };
}

function sumFaults(main: ProcessFaultCounts, workers: (WorkerStats | undefined)[]): ProcessFaultCounts {
  const out = { ...main };
  for (const st of workers) {
    if (!st) continue;
    for (const k of Object.keys(out) as (keyof ProcessFaultCounts)[]) out[k] += st.processFaults[k] ?? 0;
  }
  return out;
}
