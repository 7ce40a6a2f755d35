import { endDecidedAt } from '../cdr/cdr';
import { CallLeg, CallRecord } from '../state/call-record';

/** One party of a call as events show it. */
export interface EventParty {
  uri: string;
  party: string;
  kind: CallLeg['kind'];
}

export function callParties(r: CallRecord): { caller: EventParty; callee: EventParty } {
  const party = (l: CallLeg): EventParty => ({ uri: l.uri, party: l.party, kind: l.kind });
  return { caller: party(r.caller), callee: party(r.callee) };
}

/** when the call started ringing (the first 'ringing' timeline entry), if it did */
function ringingAt(r: CallRecord): number | undefined {
  return r.timeline.find((e) => e.event === 'ringing')?.t;
}

/**
 * `call.ended`'s data: reason, who ended it, times and durations (ms), parties. Ring time runs
 * from the first 180/183 to the answer (or to the end, for a call never answered); talk time from
 * the answer to the end. The end is the moment it was decided ('ending'), as in the call's CDR, so
 * the event and the CDR give the same times; `releasedAt` is when the release finished.
 */
export function callEndedData(r: CallRecord): Record<string, unknown> {
  const endedAt = endDecidedAt(r);
  const ringing = ringingAt(r);
  const ringMs = ringing !== undefined ? Math.max(0, (r.answeredAt ?? endedAt) - ringing) : 0;
  const talkMs = r.answeredAt !== undefined ? Math.max(0, endedAt - r.answeredAt) : 0;
  return {
    reason: r.reason,
    endedBy: r.endedBy,
    answered: r.answeredAt !== undefined,
    createdAt: r.createdAt,
    ...(ringing !== undefined ? { ringingAt: ringing } : {}),
    ...(r.answeredAt !== undefined ? { answeredAt: r.answeredAt } : {}),
    endedAt,
    ...(r.endedAt !== undefined ? { releasedAt: r.endedAt } : {}),
    ringMs,
    talkMs,
    durationMs: Math.max(0, endedAt - r.createdAt),
    parties: callParties(r),
  };
}
