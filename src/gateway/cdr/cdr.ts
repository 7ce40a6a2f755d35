import { CallRecord, CallRecordingRef } from '../state/call-record';
import { LegQuality } from './quality';

/** Where a call's recording is (docs/recording.md): one mono WAV per party, under the media files directory. */
export type RecordingRef = CallRecordingRef;

/** One call detail record: written once, when the call has ended (docs/cdr.md lists every field). */
export interface Cdr {
  /** the gateway's call id (CallRecord.id) */
  callId: string;
  /** the SIP Call-IDs of the caller's and the callee's dialogs (absent for a leg that never got one) */
  sipCallIds: { caller?: string; callee?: string };
  gatewayId: string;
  caller: { uri: string; party: string; kind: string };
  callee: { uri: string; party: string; kind: string };
  /** epoch ms: the call arrived, first rang, was answered, its end was decided, its media was released */
  createdAt: number;
  ringingAt?: number;
  answeredAt?: number;
  endedAt: number;
  releasedAt?: number;
  /** ms: first ring to answer (or to the end when never answered), answer to end, arrival to end */
  ringMs: number;
  talkMs: number;
  durationMs: number;
  answered: boolean;
  reason?: string;
  endedBy?: string;
  /** the audio codec the caller's leg agreed (from its SDP answer), e.g. PCMU */
  codec?: string;
  /** the transfers the call went through, oldest first (the call record's `transfers`: docs/transfer.md) */
  transfers: unknown[];
  recording?: RecordingRef;
  tags?: Record<string, string>;
  /** per leg: the media server's figures for the endpoint facing that party */
  quality: { caller?: LegQuality; callee?: LegQuality };
}

/** the timeline moment the end was decided ('ending'), else the record's end (call.ended's endedAt too) */
export function endDecidedAt(r: CallRecord): number {
  return r.timeline.find((e) => e.event === 'ending')?.t ?? r.endedAt ?? r.createdAt;
}

/** the first audio codec of an SDP's first m=audio line (its rtpmap name), if any */
export function audioCodec(sdp: string | undefined): string | undefined {
  if (!sdp) return undefined;
  const m = /^m=audio \d+ [^ ]+ ([0-9 ]+)/m.exec(sdp);
  const pt = m?.[1]?.trim().split(/\s+/)[0];
  if (pt === undefined) return undefined;
  const map = new RegExp(`^a=rtpmap:${pt} ([A-Za-z0-9_.-]+)/`, 'm').exec(sdp);
  if (map) return map[1]!.toUpperCase();
  return pt === '0' ? 'PCMU' : pt === '8' ? 'PCMA' : undefined;
}

export function buildCdr(r: CallRecord, extra: { gatewayId: string; quality: Cdr['quality']; recording?: RecordingRef }): Cdr {
  const endedAt = endDecidedAt(r);
  const ringingAt = r.timeline.find((e) => e.event === 'ringing')?.t;
  const ringMs = ringingAt !== undefined ? Math.max(0, (r.answeredAt ?? endedAt) - ringingAt) : 0;
  const talkMs = r.answeredAt !== undefined ? Math.max(0, endedAt - r.answeredAt) : 0;
  const party = (l: CallRecord['caller']): Cdr['caller'] => ({ uri: l.uri, party: l.party, kind: l.kind });
  // the answer on a leg decides its codec: the SDP we gave the caller answers its offer
  const codec = audioCodec(r.caller.localSdp) ?? audioCodec(r.callee.remoteSdp);
  return {
    callId: r.id,
    sipCallIds: {
      ...(r.caller.dialog?.callId ? { caller: r.caller.dialog.callId } : {}),
      ...(r.callee.dialog?.callId ? { callee: r.callee.dialog.callId } : {}),
    },
    gatewayId: extra.gatewayId,
    caller: party(r.caller),
    callee: party(r.callee),
    createdAt: r.createdAt,
    ...(ringingAt !== undefined ? { ringingAt } : {}),
    ...(r.answeredAt !== undefined ? { answeredAt: r.answeredAt } : {}),
    endedAt,
    ...(r.endedAt !== undefined ? { releasedAt: r.endedAt } : {}),
    ringMs,
    talkMs,
    durationMs: Math.max(0, endedAt - r.createdAt),
    answered: r.answeredAt !== undefined,
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.endedBy ? { endedBy: r.endedBy } : {}),
    ...(codec ? { codec } : {}),
    transfers: (r as CallRecord & { transfers?: unknown[] }).transfers ?? [],
    ...(extra.recording ?? r.recording ? { recording: extra.recording ?? r.recording } : {}),
    ...(r.tags ? { tags: { ...r.tags } } : {}),
    quality: extra.quality,
  };
}
