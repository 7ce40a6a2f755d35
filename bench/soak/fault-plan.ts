import { rng } from '../../test/helpers/seeded-random';
import type { FaultKind, SoakOptions } from './soak-options';

/**
 * The seeded fault schedule: when each fault is injected and of which kind. Every enabled kind
 * comes once, in a seeded order, before any repeats (so a short run still sees each kind); the
 * gaps are seeded around `faultEveryMs`. The same seed and options give the same schedule; what the
 * processes do in between is real, so the outcome of a replay is close to, not identical with, the
 * first run.
 */
export interface PlannedFault {
  /** ms after the run's start */
  atMs: number;
  kind: FaultKind;
  /** a seeded number in [0, 1) that picks the target call and side */
  pick: number;
}

export function faultPlan(options: Pick<SoakOptions, 'seed' | 'durationMs' | 'faultEveryMs' | 'kinds' | 'deadMs'>): PlannedFault[] {
  const random = rng(options.seed ^ 0x50a4);
  const plan: PlannedFault[] = [];
  if (options.kinds.length === 0) return plan;
  // the first fault once calls are up; the last early enough that a cable pull can still end its call
  const first = 4000;
  const last = options.durationMs - options.deadMs - 6000;
  if (last <= first) return plan;
  const count = Math.max(options.kinds.length, Math.round((last - first) / options.faultEveryMs));
  const firstRound = [...options.kinds];
  for (let i = firstRound.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [firstRound[i], firstRound[j]] = [firstRound[j]!, firstRound[i]!];
  }
  const step = (last - first) / count;
  for (let i = 0; i < count; i++) {
    const kind = i < firstRound.length ? firstRound[i]! : options.kinds[Math.floor(random() * options.kinds.length)]!;
    const atMs = Math.round(first + i * step + random() * step * 0.6);
    plan.push({ atMs, kind, pick: random() });
  }
  return plan;
}
