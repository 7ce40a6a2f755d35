/**
 * RFC 3261 §16.7 step 6: which final response of the branches goes upstream when none succeeded.
 * A 6xx wins; otherwise the lowest class (3xx before 4xx before 5xx); among 4xx, the ones the caller
 * can act on (401, 407, 415, 420, 484) first. Earlier branches win ties.
 */
export function bestResponseIndex(statuses: readonly number[]): number {
  let best = -1;
  for (let i = 0; i < statuses.length; i++) {
    if (best < 0 || rank(statuses[i]) < rank(statuses[best])) best = i;
  }
  return best;
}

const ACTIONABLE = new Set([401, 407, 415, 420, 484]);

function rank(status: number): number {
  if (status >= 600) return 0;
  const cls = Math.floor(status / 100);
  return cls * 10 + (cls === 4 && ACTIONABLE.has(status) ? 0 : 1);
}

/** RFC 3261 §16.7 step 6: a 503 from downstream is passed upstream as 500 (it speaks of this proxy otherwise). */
export function upstreamStatus(status: number): number {
  return status === 503 ? 500 : status;
}
