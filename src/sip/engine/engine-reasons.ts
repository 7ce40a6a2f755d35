/** Header name the surviving-app extension uses (docs/sip-control-extension.md). */
export const FERRY_DIALOG_HEADER = 'X-Ferry-Dialog';
/** An in-dialog OPTIONS from an app carrying `X-Ferry-Claim: true` claims the dialog; nothing goes on the wire. */
export const FERRY_CLAIM_HEADER = 'X-Ferry-Claim';
/** Default time an orphaned dialog waits for an app before the engine ends it (FERRY_SIP_ORPHAN_DIALOG_MS). */
export const DEFAULT_ORPHAN_DIALOG_MS = 30_000;
/** `Reason` (RFC 3326) on the BYE that ends a dialog no app took within the orphan deadline. */
export const ORPHAN_BYE_REASON = 'SIP;cause=480;text="no app owns this dialog"';
/** `Reason` on the CANCEL of an outgoing INVITE whose app went away, and on the BYE of its late 2xx. */
export const APP_GONE_REASON = 'SIP;cause=480;text="the app that placed this call is gone"';
/** `Reason` on the BYE sent when the ACK to a 2xx never came, byte for byte as drachtio-server writes it (srf reports the text). */
export const ACK_TIMEOUT_REASON = 'SIP ;cause=200 ;text="ACK timeout"';
/** `Reason` on the BYE of every dialog when ferry sip stops. */
export const SHUTDOWN_BYE_REASON = 'SIP;cause=503;text="ferry sip is shutting down"';
