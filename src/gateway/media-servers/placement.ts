/** one media server as placing a new call sees it */
export interface PlacementCandidate {
  url: string;
  /** the control connection answers */
  up: boolean;
  /** its /stats says `"draining": true` */
  draining: boolean;
  /** its /stats, which answered before, stopped answering (two polls in a row since the connection was last up) */
  statsDown: boolean;
  /** pipelines: /stats's count plus the calls placed there since that poll; without /stats, this gateway's live calls there */
  load: number;
  /** /stats's eventLoopLagP99Ms, when it has one */
  lagP99Ms: number | undefined;
}

export type PlacementResult =
  | { ok: true; chosen: PlacementCandidate }
  | { ok: false; detail: string };

/**
 * Event-loop lag figures closer than this are the same for placement: a few milliseconds of p99 are noise
 * between two idle servers, not a reason to prefer one (the one listed first then takes the call).
 */
export const LAG_STEP_MS = 10;

function lagRank(c: PlacementCandidate): number {
  return Math.floor((c.lagP99Ms ?? 0) / LAG_STEP_MS);
}

/**
 * The server a new call goes to: of those up, not draining and answering /stats, the one with the
 * fewest pipelines; equal loads go to the lower event-loop lag in steps of LAG_STEP_MS (a server
 * without a lag figure counts as 0), then to the one listed first.
 */
export function choosePlacement(candidates: readonly PlacementCandidate[]): PlacementResult {
  let best: PlacementCandidate | undefined;
  for (const c of candidates) {
    if (!c.up || c.draining || c.statsDown) continue;
    if (!best || c.load < best.load || (c.load === best.load && lagRank(c) < lagRank(best))) best = c;
  }
  if (best) return { ok: true, chosen: best };
  const down = candidates.filter((c) => !c.up || c.statsDown).length;
  const draining = candidates.filter((c) => c.up && !c.statsDown && c.draining).length;
  const parts = [down ? `${down} unreachable` : '', draining ? `${draining} draining` : ''].filter(Boolean);
  return { ok: false, detail: `no media server available (${parts.join(', ') || 'none configured'})` };
}
