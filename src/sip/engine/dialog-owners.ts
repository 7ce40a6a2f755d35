import type { AppConnection } from '../control/app-connection';
import type { Dialog } from '../dialog/dialog';
import type { EngineContext } from './engine-context';
import { ORPHAN_BYE_REASON } from './engine-reasons';
import { makeResponse } from './message-builders';
import { OrphanDialogs, type HeldRequest } from './orphan-dialogs';

/** What DialogOwners asks of the cores. */
export interface DialogOwnerActions {
  /** hands a held in-dialog request to the dialog's new owner */
  deliver(app: AppConnection, held: HeldRequest, dialog: Dialog): void;
  /** ends a dialog with a BYE the engine sends itself */
  engineBye(dialog: Dialog, reason: string): Promise<number>;
}

/**
 * Which app owns each dialog, and what happens to a dialog whose app is gone (the "surviving the app"
 * extension, docs/sip-control-extension.md §6): it is orphaned with a deadline, in-dialog requests no
 * app takes are held for it, a new owner gets them, and at the deadline ferry sip ends it. Whatever is
 * held for a dialog is answered when the dialog ends (a BYE 200, anything else 481).
 */
export class DialogOwners {
  private readonly orphans: OrphanDialogs;

  constructor(private readonly ctx: EngineContext, deadlineMs: number, private readonly actions: DialogOwnerActions) {
    this.orphans = new OrphanDialogs(ctx.clock, deadlineMs, (d, held, ms) => this.onDeadline(d, held, ms));
    ctx.dialogs.on('ended', (dialog) => this.answerHeld(dialog, this.orphans.release(dialog)));
  }

  get deadlineMs(): number {
    return this.orphans.deadlineMs;
  }

  /** `app` owns the dialog from now on: its orphan deadline stops and the requests held for it go to the app. */
  setOwner(dialog: Dialog, app: AppConnection): void {
    dialog.ownerId = app.id;
    for (const h of this.orphans.release(dialog)) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      this.ctx.log.info('held request offered to app', { callId: dialog.callId, dialogId: dialog.id, method: h.request.method, app: app.id });
      this.actions.deliver(app, h, dialog);
    }
  }

  /** The dialog has no connected owner any more: its deadline starts. */
  orphan(dialog: Dialog, goneAppId?: string): void {
    dialog.ownerId = undefined;
    this.orphans.watch(dialog);
    this.ctx.log.info('dialog orphaned: its app is gone', { callId: dialog.callId, dialogId: dialog.id, app: goneAppId, deadlineMs: this.orphans.deadlineMs });
  }

  isOrphaned(dialog: Dialog): boolean {
    return this.orphans.isOrphaned(dialog);
  }

  /** An in-dialog request no connected app can take waits for one (or for the dialog's orphan deadline). */
  hold(dialog: Dialog, held: HeldRequest): void {
    this.orphans.hold(dialog, held);
    this.ctx.log.info('in-dialog request held: no connected app takes it', {
      callId: dialog.callId, dialogId: dialog.id, method: held.request.method, deadlineMs: this.orphans.deadlineMs,
    });
  }

  /** A new app routed `verb`: it takes every orphaned dialog holding a request of that method, at once. */
  onAppRoute(app: AppConnection, verb: string): void {
    const method = verb.toUpperCase();
    for (const d of this.orphans.holdingMethod(method)) {
      if (!this.ctx.dialogs.isLive(d) || !this.ctx.router.find(app.id)) continue;
      this.ctx.log.info('orphaned dialog adopted by an app that routes its held request', { callId: d.callId, dialogId: d.id, app: app.id, method });
      this.setOwner(d, app);
    }
  }

  /** Stops the dialog's deadline and returns what was held for it, for the caller to answer (engine stop). */
  release(dialog: Dialog): HeldRequest[] {
    return this.orphans.release(dialog);
  }

  /** Engine stop: every deadline stops, nothing held is answered. */
  releaseAll(): void {
    for (const d of this.orphans.dialogs()) this.orphans.release(d);
  }

  get size(): number {
    return this.orphans.size;
  }

  get heldCount(): number {
    return this.orphans.heldCount;
  }

  /** The orphan deadline passed and nobody took the dialog: answer what was held, end the dialog. */
  private onDeadline(dialog: Dialog, held: HeldRequest[], orphanedMs: number): void {
    let peerHungUp = false;
    for (const h of held) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      const status = h.request.method === 'BYE' ? 200 : 481;
      if (status === 200) peerHungUp = true;
      h.txn.respond(makeResponse(h.request, status, dialog.localTag));
      this.ctx.log.info('held request answered by ferry sip at the orphan deadline', { callId: dialog.callId, method: h.request.method, status });
    }
    if (!this.ctx.dialogs.isLive(dialog)) return;
    if (peerHungUp) {
      this.ctx.dialogs.end(dialog, 'peer-hung-up-orphaned');
      this.ctx.log.info('orphan dialog ended: the peer hung up', { callId: dialog.callId, dialogId: dialog.id, orphanedMs });
      return;
    }
    this.ctx.log.info('orphan dialog ended by ferry sip: BYE sent', { callId: dialog.callId, dialogId: dialog.id, orphanedMs, reason: ORPHAN_BYE_REASON });
    void this.actions.engineBye(dialog, ORPHAN_BYE_REASON);
  }

  /** A dialog ended: what was held for it is answered (a held BYE 200, others 481). */
  private answerHeld(dialog: Dialog, held: HeldRequest[]): void {
    for (const h of held) {
      if (h.txn.finalSent || h.txn.terminated) continue;
      h.txn.respond(makeResponse(h.request, h.request.method === 'BYE' ? 200 : 481, dialog.localTag));
    }
  }
}
