import { CallLeg, CallRecord } from '../state/call-record';

/** A call leg as the list view shows it: who and what kind, no dialog (Call-ID, tags) and no SDP. */
export type CallLegSummary = Pick<CallLeg, 'uri' | 'kind' | 'party' | 'direction'>;

export type CallSummary = Omit<CallRecord, 'caller' | 'callee' | 'media'> & { caller: CallLegSummary; callee: CallLegSummary };

function leg(l: CallLeg): CallLegSummary {
  return { uri: l.uri, kind: l.kind, party: l.party, ...(l.direction ? { direction: l.direction } : {}) };
}

/**
 * `GET /api/calls` lists summaries: no SDPs (addresses, ICE credentials, SRTP keys), no dialog
 * identifiers and no media object ids, which would let a reader act on someone else's call; the
 * whole record stays at `GET /api/calls/:id`.
 */
export function summarizeCall(r: CallRecord): CallSummary {
  const { caller, callee, media: _media, timeline, ...rest } = r;
  return {
    ...rest,
    caller: leg(caller),
    callee: leg(callee),
    timeline: timeline.map((e) => (e.event === 'media-created' ? { t: e.t, event: e.event, ...(e.by ? { by: e.by } : {}) } : e)),
  };
}
