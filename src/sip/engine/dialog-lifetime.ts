import { EventEmitter } from 'node:events';
import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { Dialog } from '../dialog/dialog';
import { DialogTable } from '../dialog/dialog-table';
import { EndedDialogIds } from './ended-dialog-ids';

/** How a dialog came to be (for the log and the `created` event). */
export type DialogOrigin =
  | 'uas-2xx' // the app answered a network INVITE 2xx (or a SUBSCRIBE 200/202)
  | 'uac-2xx' // a 2xx (or 200/202 to SUBSCRIBE) answered the app's request
  | 'uac-reliable-1xx' // an early dialog: a reliable provisional answered the app's INVITE
  | 'snapshot' // rebuilt from a request carrying X-Ferry-Dialog
  | 'claim'; // rebuilt from a claim of a dialog this engine did not know

/** Why a dialog ended (for the log and the `ended` event). */
export type DialogEndCause =
  | 'bye' // a BYE either way was answered (or a BYE the app sent got its final response)
  | 'engine-bye' // ferry sip BYEd it itself: ACK timeout, orphan deadline, app gone, shutdown
  | 'peer-hung-up-orphaned' // the peer's BYE for a dialog no app owned was answered by ferry sip
  | 'early-dialog-failed' // the INVITE of an early dialog got a failure response
  | 'challenged-bye-not-retried' // the app's BYE was challenged and no retry came in time
  | 'subscription-terminated' // a NOTIFY with Subscription-State: terminated was answered
  | 'replaced' // a new dialog took its id
  | 'shutdown'; // ferry sip stopped

export interface DialogLifetimeEvents {
  created: [dialog: Dialog, origin: DialogOrigin];
  confirmed: [dialog: Dialog];
  ended: [dialog: Dialog, cause: DialogEndCause];
}

/**
 * The one owner of dialog lifetime: a dialog enters the engine only through `create` and leaves only
 * through `end`, each announced as a named event (`created`, `confirmed`, `ended`). The table of live
 * dialogs and the memory of ended dialog ids (a claim must never bring back a dialog this engine saw
 * end) are kept here and nowhere else; everything kept per dialog elsewhere (orphan deadlines, held
 * requests) is released by listening to `ended`.
 */
export class DialogLifetime extends EventEmitter<DialogLifetimeEvents> {
  private readonly table = new DialogTable();
  private readonly ended: EndedDialogIds;

  constructor(clock: Clock, private readonly log: Logger) {
    super();
    this.ended = new EndedDialogIds(clock);
  }

  /** Adds `dialog`; a live dialog with the same id ends first ('replaced'). */
  create(dialog: Dialog, origin: DialogOrigin, confirmed: boolean): Dialog {
    const old = this.table.get(dialog.id);
    if (old && old !== dialog) this.end(old, 'replaced');
    this.table.add(dialog);
    this.log.debug('dialog created', { dialogId: dialog.id, callId: dialog.callId, origin });
    this.emit('created', dialog, origin);
    if (confirmed) this.confirm(dialog);
    return dialog;
  }

  /** An early dialog is confirmed (or a dialog is created confirmed). */
  confirm(dialog: Dialog): void {
    if (dialog.confirmed || !this.isLive(dialog)) return;
    dialog.confirmed = true;
    this.emit('confirmed', dialog);
  }

  /** Removes `dialog` if it is still live; false when it had already ended. */
  end(dialog: Dialog, cause: DialogEndCause): boolean {
    if (!this.isLive(dialog)) return false;
    this.table.remove(dialog);
    if (cause !== 'replaced' && cause !== 'shutdown') this.ended.remember(dialog.id);
    this.log.debug('dialog ended', { dialogId: dialog.id, callId: dialog.callId, cause });
    this.emit('ended', dialog, cause);
    return true;
  }

  /** true while `dialog` (this very object) is in the table */
  isLive(dialog: Dialog): boolean {
    return this.table.get(dialog.id) === dialog;
  }

  /** true when this engine ended a dialog with this id (within the memory's time and count bounds) */
  wasEnded(dialogId: string): boolean {
    return this.ended.has(dialogId);
  }

  get(id: string): Dialog | undefined {
    return this.table.get(id);
  }

  find(callId: string, localTag: string, remoteTag: string): Dialog | undefined {
    return this.table.find(callId, localTag, remoteTag);
  }

  findByCallId(callId: string, localTag: string | undefined): Dialog | undefined {
    return this.table.findByCallId(callId, localTag);
  }

  all(): Dialog[] {
    return this.table.all();
  }

  get size(): number {
    return this.table.size;
  }
}
