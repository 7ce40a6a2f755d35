import { SipConfig } from '../config/sip-config';
import { CallRecord } from '../state/call-record';

/**
 * Whether a call is recorded (docs/recording.md): the call record's `record` flag (set by
 * `POST /api/calls` with `record: true`, or by a sip-config route with `record: true` the call was
 * routed by), or either party being a sip-config user with `record: true`.
 */
export function shouldRecord(record: CallRecord, sip: Pick<SipConfig, 'users'>): boolean {
  if (record.record) return true;
  const recordedUsers = new Set(sip.users.filter((u) => u.record === true).map((u) => u.user));
  return recordedUsers.has(record.caller.party) || recordedUsers.has(record.callee.party);
}
