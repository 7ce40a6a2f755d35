/**
 * Which final response a caller gets when every registration rung at once failed (RFC 3261 16.7,
 * step 6): the lowest class wins; among 4xx, 486 Busy Here is preferred (the person is there and busy),
 * then 480 Temporarily Unavailable, then 408, then the first other 4xx that came. A 6xx never gets here:
 * it ends the search at once (the forks still ringing are cancelled).
 */

/** one fork's failure: its SIP status, or none when the INVITE could not be sent at all */
export interface ForkFailure {
  status?: number;
  reason?: string;
}

/**
 * The status a caller would see for one registration's failure: a registration that could not be reached
 * (nothing could carry the INVITE, 410 Gone from ferry sip for a closed connection, 503) is 480 to the
 * caller, as for a call tried one registration at a time (docs/gateway.md, "A call", step 2).
 */
export function callerStatusOf(f: ForkFailure): number {
  if (!f.status || f.status === 410 || f.status === 503) return 480;
  return f.status;
}

/** a 6xx (global failure: busy everywhere, declined) ends the whole search */
export function endsSearch(status: number | undefined): boolean {
  return status !== undefined && status >= 600 && status < 700;
}

const PREFERRED_4XX = [486, 480, 408];

function rank(status: number): number {
  const cls = Math.floor(status / 100);
  const preferred = PREFERRED_4XX.indexOf(status);
  // class first; within 4xx the preferred ones, then any other
  return cls * 10 + (cls === 4 ? (preferred >= 0 ? preferred : PREFERRED_4XX.length) : 0);
}

/**
 * The failure to answer the caller with, among every fork's (in the order they came): the original
 * failure object is returned, so an unreachable registration's missing status or 410 still tells the
 * caller's handler that the user could not be reached. Undefined for an empty list.
 */
export function bestFailure<T extends ForkFailure>(failures: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const f of failures) {
    if (!best || rank(callerStatusOf(f)) < rank(callerStatusOf(best))) best = f;
  }
  return best;
}
