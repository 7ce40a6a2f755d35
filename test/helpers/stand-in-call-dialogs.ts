/**
 * Stand-ins for the two dialogs of a gateway Call, of srf's Dialog shape (DialogLike), for unit tests that drive
 * a real Call with in-dialog requests; the audio SDP such parties offer; and the record of an answered call
 * between them (caller 198.51.100.10, callee 198.51.100.20).
 */
import { EventEmitter } from 'node:events';
import type { DialogLike } from '../../src/gateway/calls/dialog-like';
import type { CallRecord } from '../../src/gateway/state/call-record';

/** a PCMU audio offer from `host` with direction `dir` */
export const partySdp = (dir = 'sendrecv', host = '198.51.100.10'): string =>
  ['v=0', `o=- 1 1 IN IP4 ${host}`, 's=-', `c=IN IP4 ${host}`, 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', `a=${dir}`, ''].join('\r\n');

export class StandInDialog extends EventEmitter implements DialogLike {
  readonly id = Math.random().toString(36).slice(2);
  readonly connected = true;
  /** re-INVITEs ferry sent this party */
  modified = 0;
  /** in-dialog requests (INFO, …) ferry sent this party */
  infos = 0;
  /** when set, the next modify() waits for it */
  hold: Promise<void> | undefined;
  sip = { callId: 'c', localTag: 'l', remoteTag: 'r' };
  constructor(public local: { sdp: string }, public remote: { sdp: string }) {
    super();
  }
  async destroy(): Promise<unknown> {
    return undefined;
  }
  async modify(): Promise<string> {
    this.modified++;
    if (this.hold) await this.hold;
    return this.remote.sdp;
  }
  async request(): Promise<{ status: number }> {
    this.infos++;
    return { status: 200 };
  }
}

/** the record of an answered call `id` from sip:a@d (198.51.100.10) to sip:b@d (198.51.100.20), the callee's SDP as given */
export function answeredCallRecord(id: string, createdAt: number, calleeRemoteSdp?: string): CallRecord {
  return {
    id, state: 'answered', createdAt,
    caller: { uri: 'sip:a@d', kind: 'rtp', party: 'a', remoteSdp: partySdp(), sipSource: '198.51.100.10' },
    callee: { uri: 'sip:b@d', kind: 'rtp', party: 'b', ...(calleeRemoteSdp !== undefined ? { remoteSdp: calleeRemoteSdp } : {}), sipSource: '198.51.100.20' },
    media: { mediaUrl: 'ws://x' }, owner: 'gw', timeline: [],
  };
}
