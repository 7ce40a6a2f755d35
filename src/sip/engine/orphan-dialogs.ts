import type { Clock, TimerHandle } from '../../common/clock';
import type { Dialog } from '../dialog/dialog';
import type { SipRequest } from '../message/sip-message';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import type { Flow } from '../transport/flow';

/** An in-dialog request from the network that no connected app can take yet; its server transaction stays open. */
export interface HeldRequest {
  request: SipRequest;
  flow: Flow;
  key: string;
  txn: ServerTransaction;
}

interface OrphanEntry {
  since: number;
  timer: TimerHandle;
  held: HeldRequest[];
}

/**
 * Dialogs with no connected owner (docs/sip-control-extension.md §6): each has a deadline timer and
 * the in-dialog requests held for it. `onDeadline` runs once when nobody took the dialog in time;
 * the entry is gone by then. Keyed by the Dialog object, so a dialog replaced under the same id is
 * never confused with the old one.
 */
export class OrphanDialogs {
  private readonly entries = new Map<Dialog, OrphanEntry>();

  constructor(
    private readonly clock: Clock,
    readonly deadlineMs: number,
    private readonly onDeadline: (dialog: Dialog, held: HeldRequest[], orphanedMs: number) => void,
  ) {}

  /** Starts the dialog's deadline unless it already runs. */
  watch(dialog: Dialog): void {
    if (this.entries.has(dialog)) return;
    const since = this.clock.now();
    const entry: OrphanEntry = {
      since,
      held: [],
      timer: this.clock.setTimeout(() => {
        if (this.entries.get(dialog) !== entry) return;
        this.entries.delete(dialog);
        this.onDeadline(dialog, entry.held, this.clock.now() - since);
      }, this.deadlineMs),
    };
    this.entries.set(dialog, entry);
  }

  isOrphaned(dialog: Dialog): boolean {
    return this.entries.has(dialog);
  }

  /** Keeps `req` until the dialog gets an owner or reaches its deadline (the dialog must be watched). */
  hold(dialog: Dialog, req: HeldRequest): void {
    this.watch(dialog);
    this.entries.get(dialog)!.held.push(req);
  }

  /** The dialog has an owner again (or is gone): stops its deadline and returns what was held for it. */
  release(dialog: Dialog): HeldRequest[] {
    const entry = this.entries.get(dialog);
    if (!entry) return [];
    entry.timer.cancel();
    this.entries.delete(dialog);
    return entry.held;
  }

  /** Orphaned dialogs holding a request of `method` (upper case), oldest first. */
  holdingMethod(method: string): Dialog[] {
    const out: Dialog[] = [];
    for (const [d, e] of this.entries) if (e.held.some((h) => h.request.method === method)) out.push(d);
    return out;
  }

  dialogs(): Dialog[] {
    return [...this.entries.keys()];
  }

  get size(): number {
    return this.entries.size;
  }

  get heldCount(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.held.length;
    return n;
  }
}
