import type { Dialog } from '../dialog/dialog';
import type { SipRequest } from '../message/sip-message';
import type { ClientTransaction } from '../transaction/client-transaction-table';
import type { Flow } from '../transport/flow';
import type { TargetFailover } from './target-failover';

/** A request the engine sent: for an app (appId set), for itself (unsolicited BYE, CANCEL), or for the proxy core. */
export interface ClientRequest {
  /** drachtio transaction id the app knows the request by ('' when no app sees its responses) */
  txnId: string;
  appId: string | undefined;
  request: SipRequest;
  txn: ClientTransaction;
  flow: Flow;
  dialog: Dialog | undefined;
  finalForwarded: boolean;
  /** the dialog was created early, by a reliable 1xx (RFC 3262), and is dropped if the INVITE fails */
  earlyDialog?: boolean;
  /** a provisional response arrived (a CANCEL may be sent, RFC 3261 §9.1) */
  provisionalSeen?: boolean;
  /** an INVITE whose app went away before its final response: the engine cancels it, and ACKs then BYEs a 2xx */
  abandoned?: boolean;
  /** a CANCEL of this INVITE is on its way (the app's or the engine's): at most one per INVITE (RFC 3261 §9.1) */
  cancelSent?: boolean;
  /** that CANCEL */
  cancel?: SipRequest;
  /** a request the engine sent for itself: told its final status once (-1 when it could not be sent) */
  onFinal?: (status: number) => void;
  /** a new request's further targets (RFC 3263 §4.3): where it is retried when this target fails */
  failover?: TargetFailover;
}
