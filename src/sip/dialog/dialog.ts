import type { Flow } from '../transport/flow';
import type { TimerHandle } from '../../common/clock';

/**
 * One dialog as the engine keeps it (RFC 3261 §12; an INVITE session or a SUBSCRIBE subscription): a
 * plain record plus the owning app connection id. Owner `undefined` = orphaned (its app went away).
 */
export class Dialog {
  ownerId: string | undefined;
  /** false while early (created by a reliable 1xx); the engine's DialogLifetime sets it */
  confirmed = false;
  /** what the dialog is for: an INVITE session, or a subscription (RFC 6665) that ends with a NOTIFY `terminated` */
  usage: 'invite' | 'subscribe' = 'invite';
  /** CSeq of our last request in this dialog */
  localCSeq: number;
  remoteCSeq: number | undefined;
  /** CSeq number of the last INVITE we sent (for the ACK), and the ACK bytes for re-ACKing 2xx retransmissions */
  lastInviteCSeq: number | undefined;
  lastAck: { cseq: number; data: Buffer } | undefined;
  /** UAS: 2xx retransmission until ACK (cseq of the INVITE it answers) */
  pending2xx: { cseq: number; timer: TimerHandle; cancel(): void } | undefined;
  /** our BYE was challenged (401/407): the dialog waits this long for the retry with credentials */
  challengedBye: TimerHandle | undefined;
  /**
   * where the peer's INVITE (UAS) or 2xx (UAC) came from: in-dialog requests go there instead of a route or
   * remote target naming an address the peer may not send ferry sip to (dialog-flow.ts, `peerOnlyTarget`);
   * unknown for a dialog rebuilt from an app's snapshot
   */
  peer: { address: string; port: number; protocol: string } | undefined;

  constructor(
    readonly id: string,
    readonly role: 'uas' | 'uac',
    readonly callId: string,
    readonly localTag: string,
    readonly remoteTag: string,
    /** our From (uac) / To (uas) header value, with tag */
    readonly localParty: string,
    readonly remoteParty: string,
    public remoteTarget: string,
    readonly routeSet: string[],
    public flow: Flow | undefined,
    public localContact: string,
    localCSeq: number,
  ) {
    this.localCSeq = localCSeq;
  }

  get key(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\n${localTag}\n${remoteTag}`;
}

/** drachtio-server's convention, relied on by srf's findDialogByCallIDAndFromTag: `<Call-ID>;from-tag=<From tag of the INVITE>`. */
export function makeDialogId(callId: string, inviteFromTag: string): string {
  return `${callId};from-tag=${inviteFromTag}`;
}
