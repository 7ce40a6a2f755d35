import type Srf from 'drachtio-srf';
import { DialogSnapshot } from '../state/call-record';

/** header of ferry sip's "surviving the app" extension (docs/sip-control-extension.md) */
export const FERRY_DIALOG_HEADER = 'X-Ferry-Dialog';
/** header that makes an in-dialog OPTIONS a claim of the dialog, answered by ferry sip itself (docs/sip-control-extension.md) */
export const FERRY_CLAIM_HEADER = 'X-Ferry-Claim';
/** a claim's CSeq is this far above the stored one: the dialog's owner may have sent requests after its last write */
export const CLAIM_CSEQ_MARGIN = 100;

interface SentRequest {
  on(event: 'response', cb: (res: { status: number }) => void): void;
}

/** srf.request addressed by drachtio dialog id (the engine answers a claim itself; nothing goes on the wire) */
type ClaimRequestFn = (
  opts: { uri: string; method: string; stackDialogId: string; headers: Record<string, string> },
  callback: (err: Error | null, sent: SentRequest) => void,
) => void;

/**
 * Makes this gateway the dialog's owner in ferry sip, without anything going on the wire: an
 * in-dialog OPTIONS addressed by the engine's dialog id and marked `X-Ferry-Claim`. It also carries
 * the dialog's identifiers (`X-Ferry-Dialog`, Call-ID, From/To with tags, CSeq, Request-URI = the
 * peer's target), so a ferry sip that restarted since the dialog began rebuilds it instead of
 * answering 481. Resolves with ferry sip's status: 200, or 481 when the dialog is gone (ended).
 */
export function claimDialog(srf: Srf, s: DialogSnapshot, cseq = s.localCseq + CLAIM_CSEQ_MARGIN): Promise<number> {
  const request = srf.request.bind(srf) as unknown as ClaimRequestFn;
  const headers: Record<string, string> = {
    [FERRY_CLAIM_HEADER]: 'true',
    [FERRY_DIALOG_HEADER]: s.dialogId,
    'Call-ID': s.callId,
    From: `<${s.localUri}>;tag=${s.localTag}`,
    To: `<${s.remoteUri}>;tag=${s.remoteTag}`,
    CSeq: `${cseq} OPTIONS`,
  };
  if (s.routeSet.length) headers.Route = s.routeSet.join(', ');
  return new Promise((resolve, reject) => {
    request({ uri: s.remoteTarget, method: 'OPTIONS', stackDialogId: s.dialogId, headers }, (err, sent) => {
      if (err) return reject(err);
      // before anything else arrives on this connection (ferry sip answers the claim, then hands over
      // requests it held for the dialog), so a BYE relayed because of them already goes the right way
      unpinSrfDialog(srf, s.dialogId);
      sent.on('response', (res) => {
        if (res.status >= 200) resolve(res.status);
      });
    });
  });
}

/**
 * drachtio-srf ties each Dialog to the control connection it began on and sends its requests (BYE,
 * re-INVITE) over that socket only; after a reconnection that socket is destroyed and every request
 * would fail with "provided socket has been destroyed". Unpinning the Dialog (when this gateway has
 * one: an adopted call's dialogs are not srf's) makes srf send over its current connection, the only
 * one a gateway has.
 */
export function unpinSrfDialog(srf: Srf, dialogId: string): void {
  const dlg = (srf as unknown as { findDialogById(id: string): { req?: { socket?: unknown } } | undefined }).findDialogById(dialogId);
  if (dlg?.req) dlg.req.socket = undefined;
}
