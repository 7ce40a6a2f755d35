import { randomUUID } from 'node:crypto';
import type { AppConnection } from '../control/app-connection';
import type { AppSipMessage } from '../control/control-server';
import type { Dialog } from '../dialog/dialog';
import { dialogFromSnapshot } from '../dialog/dialog-factory';
import type { SipRequest } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import { parseSipUri } from '../message/sip-uri';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import type { Flow } from '../transport/flow';
import { guarded } from '../../common/process-faults';
import type { DialogOwners } from './dialog-owners';
import type { EngineContext } from './engine-context';
import { FERRY_DIALOG_HEADER } from './engine-reasons';
import { makeResponse } from './message-builders';

/** What the claims part asks of the rest of the engine. */
export interface ClaimPeers {
  owners: DialogOwners;
  /** a request held since the restart, handled now that its dialog is rebuilt */
  inDialogRequest(req: SipRequest, flow: Flow, key: string, txn: ServerTransaction, dialog: Dialog): void;
}

/**
 * The surviving-app extension's dialog claims (docs/sip-control-extension.md §3, §4): an app takes a
 * dialog over with an in-dialog OPTIONS carrying `X-Ferry-Claim: true` (answered by ferry sip, nothing
 * on the wire), and a dialog this engine does not know — it restarted — is rebuilt from the identifiers
 * a claim or a request with `X-Ferry-Dialog` carries. Requests held since the restart then reach it.
 */
export class DialogClaims {
  constructor(private readonly ctx: EngineContext, private readonly peers: ClaimPeers) {}

  /** The dialog a request with `X-Ferry-Dialog: <id>` names; rebuilt from the request when unknown (throws when it cannot be). */
  fromSnapshot(app: AppConnection, dialogId: string, req: SipRequest): Dialog {
    const known = this.ctx.dialogs.get(dialogId);
    if (known) return known;
    const dialog = this.ctx.dialogs.create(dialogFromSnapshot(dialogId, req, app.id), 'snapshot', true);
    this.ctx.log.info('dialog rebuilt from snapshot', { dialogId: dialog.id, callId: dialog.callId, app: app.id });
    setImmediate(guarded('sip.restart-held-release', () => this.releaseRestartHeld(dialog)));
    return dialog;
  }

  /**
   * `sip||<dialogId>` OPTIONS with `X-Ferry-Claim: true`. Nothing goes on the wire: the engine answers
   * it itself (200, or 481 for a dialog it does not know), and the app becomes the dialog's owner.
   */
  onAppClaim(app: AppConnection, m: AppSipMessage, req: SipRequest): void {
    const dialog = this.ctx.dialogs.get(m.dialogId) ?? this.rebuildClaimedDialog(app, m.dialogId, req);
    req.headers.remove(FERRY_DIALOG_HEADER);
    if (dialog) {
      req.headers.set('Call-ID', dialog.callId);
      req.headers.set('From', dialog.localParty);
      req.headers.set('To', dialog.remoteParty);
      req.uri = dialog.remoteTarget;
    }
    if (!req.headers.has('CSeq')) req.headers.set('CSeq', '1 OPTIONS');
    const flow = dialog?.flow ?? this.claimMetaFlow(dialog);
    req.headers.remove('Via');
    req.headers.prepend('Via', this.ctx.local.via(flow));
    const txnId = randomUUID();
    this.ctx.appPort.requestSent(app, m.rid, serializeSipMessage(req), flow, txnId);
    const res = makeResponse(req, dialog ? 200 : 481, undefined);
    // a separate turn of the event loop, so the answer to the claim arrives after srf has seen "sent"
    setImmediate(guarded('sip.claim-answer', () => this.ctx.appPort.networkMessage(app, res, flow, txnId, dialog ? dialog.id : '')));
    if (!dialog) {
      this.ctx.log.info('claim of an unknown dialog answered 481', { dialogId: m.dialogId, app: app.id });
      return;
    }
    const previous = dialog.ownerId;
    const wasOrphaned = this.peers.owners.isOrphaned(dialog);
    this.peers.owners.setOwner(dialog, app);
    this.ctx.log.info('dialog claimed by app', { callId: dialog.callId, dialogId: dialog.id, app: app.id, from: previous, wasOrphaned });
    // requests held since the restart for this dialog go to the app after the claim's answer
    setImmediate(guarded('sip.restart-held-release', () => this.releaseRestartHeld(dialog)));
  }

  /**
   * A claim of a dialog this engine does not know (it restarted since the dialog began) that carries
   * `X-Ferry-Dialog` and the dialog's identifiers (Call-ID, From and To with tags, CSeq; the
   * Request-URI is the peer's target) rebuilds the dialog, as a request with those headers would (§4).
   * A dialog this engine itself saw end is never rebuilt: that claim gets 481.
   */
  private rebuildClaimedDialog(app: AppConnection, dialogId: string, req: SipRequest): Dialog | undefined {
    if (!req.headers.has(FERRY_DIALOG_HEADER) || this.ctx.dialogs.wasEnded(dialogId)) return undefined;
    let dialog: Dialog;
    try {
      dialog = dialogFromSnapshot(dialogId, req, app.id);
    } catch (err) {
      this.ctx.log.info('claim could not rebuild the dialog', { dialogId, app: app.id, reason: (err as Error).message });
      return undefined;
    }
    this.ctx.dialogs.create(dialog, 'claim', true);
    this.ctx.log.info('dialog rebuilt from a claim', { callId: dialog.callId, dialogId, app: app.id });
    return dialog;
  }

  /** Requests held since the restart for a dialog just rebuilt: handled as in-dialog requests now. */
  private releaseRestartHeld(dialog: Dialog): void {
    if (!this.ctx.dialogs.isLive(dialog)) return;
    for (const h of this.ctx.restartHeld.take(dialog.callId, dialog.localTag, dialog.remoteTag)) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      this.ctx.log.info('request held since the restart handed to its rebuilt dialog', { callId: dialog.callId, dialogId: dialog.id, method: h.request.method });
      this.peers.inDialogRequest(h.request, h.flow, h.key, h.txn, dialog);
    }
  }

  /** What the drachtio meta tokens of a claim name as the peer: the dialog's remote target (nothing is sent there). */
  private claimMetaFlow(dialog: Dialog | undefined): Flow {
    const uri = dialog ? parseSipUri(dialog.remoteTarget) : undefined;
    const host = this.ctx.local.host({ localAddress: '127.0.0.1' } as Flow);
    return {
      id: 'claim', protocol: 'udp', reliable: false, remoteAddress: uri?.host ?? host, remotePort: uri?.port ?? 5060,
      localAddress: host, localPort: 0, closed: false, send: () => {},
    };
  }
}
