import { EndReason } from '../calls/end-reason';

/**
 * The call record kept in the state store (Redis key `<prefix>call:<id>`), written before the call
 * is answered and kept current. It holds everything another gateway needs to take the call over
 * or finish it: both dialogs, the media object ids, the owner and its lease. docs/gateway.md.
 */
export type CallState = 'routing' | 'ringing' | 'answered' | 'ending' | 'ended';
export type LegKind = 'webrtc' | 'rtp';

export interface DialogSnapshot {
  /** drachtio dialog id (stack-level) */
  dialogId: string;
  callId: string;
  localTag: string;
  remoteTag: string;
  /** our last CSeq number on this dialog (in-dialog requests we send use the next one) */
  localCseq: number;
  /** URI our in-dialog requests go to (the peer's Contact) */
  remoteTarget: string;
  /** Record-Route set in the order our requests must use */
  routeSet: string[];
  localUri: string;
  remoteUri: string;
  /** our side: 'uas' when the peer called us, 'uac' when we called the peer */
  role: 'uas' | 'uac';
}

export interface CallLeg {
  /** the party's SIP URI (AOR or trunk target) */
  uri: string;
  kind: LegKind;
  /** trunk name or user name */
  party: string;
  dialog?: DialogSnapshot;
  /** this leg's last SDP direction as the peer sent it */
  direction?: string;
  /**
   * the address this party's SIP comes from, recorded when the call is set up (the caller's INVITE,
   * the callee's answer): every SDP of the leg is judged by it (loopback media rule), on an adopted
   * call too
   */
  sipSource?: string;
  /** the SDP we last gave this party, and the one it gave us (an adopting gateway answers re-INVITEs with it) */
  localSdp?: string;
  remoteSdp?: string;
}

export interface TimelineEntry {
  /** epoch ms */
  t: number;
  event: string;
  detail?: string;
  by?: string;
}

export interface TransferEntry {
  /** epoch ms the new party was connected */
  at: number;
  /** blind (REFER or API), attended (REFER with Replaces), replaces (an INVITE with Replaces) */
  kind: 'blind' | 'attended' | 'replaces';
  /** who asked: the API, or the side whose party sent the REFER / was replaced */
  by: 'api' | 'caller' | 'callee';
  /** the side of the record that now holds the new party */
  side: 'caller' | 'callee';
  /** party names: the one that left, the one that stayed, the one that joined */
  left: string;
  stayed: string;
  joined: string;
  /** what was dialled (blind transfer) */
  target?: string;
}

/** Where a call's recording is: one mono WAV per party under the media files directory (docs/recording.md). */
export interface CallRecordingRef {
  /** `GET /api/recordings/<callId>` serves both parties as one 2-channel WAV (caller left, callee right) */
  url: string;
  format: 'wav';
  sampleRate: 8000;
  /** each party's mono WAV, relative to FERRY_MEDIA_FILES_DIR */
  files: { caller: string; callee: string };
  /** epoch ms the recorders were started */
  startedAt: number;
}

export interface CallRecord {
  id: string;
  state: CallState;
  createdAt: number;
  answeredAt?: number;
  endedAt?: number;
  caller: CallLeg;
  callee: CallLeg;
  media: { pipelineId?: string; callerEndpointId?: string; calleeEndpointId?: string; mediaUrl: string };
  owner: string;
  reason?: EndReason;
  /** set when the media server decided the end (reason came from a media event) */
  endedBy?: 'caller' | 'callee' | 'media' | 'gateway';
  /**
   * Set when the call was ended on silence (media-timeout, hold-timeout, ice-failed) on one party's
   * leg, yet that party answered our BYE at once: it was still there, so the end was probably false
   * (a mute, hold or blip taken for a dead peer). Counted in /metrics; lifecycle tests assert 0.
   */
  suspectedFalseEnd?: boolean;
  /**
   * Transfers this call went through, oldest first (src/gateway/transfer/, docs/transfer.md): who
   * asked, the party that left, the party that stayed and the party that joined.
   */
  transfers?: TransferEntry[];
  /** custom tags given at origination (REST API), echoed in every event of the call */
  tags?: Record<string, string>;
  /** 'api': placed by `POST /api/calls` (the caller leg is party A, rung first; the callee leg is B) */
  origin?: 'api';
  /** recording asked for at origination (`POST /api/calls` with `record: true`) */
  record?: boolean;
  /** the call's recording, once started (docs/recording.md): kept here so a gateway adopting the call names it in the CDR */
  recording?: CallRecordingRef;
  timeline: TimelineEntry[];
}
