import type { Clock } from '../../common/clock';

/** How long the engine remembers that it ended a dialog (a claim that would rebuild it gets 481 meanwhile). */
export const ENDED_DIALOG_MEMORY_MS = 60 * 60_000;
/** At most this many ended dialog ids are remembered; the oldest are forgotten first. */
export const ENDED_DIALOG_MEMORY_MAX = 50_000;

/**
 * Ids of dialogs this engine ended (a BYE either way, the orphan deadline, a failed INVITE's cleanup).
 * A claim carrying the dialog's identifiers rebuilds a dialog the engine does not know — the case of
 * a restarted engine — but must never bring back one this engine itself saw end: such a claim gets
 * 481 as before. Bounded in time and count; insertion order is age order.
 */
export class EndedDialogIds {
  private readonly endedAt = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly memoryMs = ENDED_DIALOG_MEMORY_MS,
    private readonly max = ENDED_DIALOG_MEMORY_MAX,
  ) {}

  remember(dialogId: string): void {
    this.endedAt.delete(dialogId);
    this.endedAt.set(dialogId, this.clock.now());
    this.forgetOld();
  }

  has(dialogId: string): boolean {
    this.forgetOld();
    return this.endedAt.has(dialogId);
  }

  get size(): number {
    return this.endedAt.size;
  }

  private forgetOld(): void {
    const cutoff = this.clock.now() - this.memoryMs;
    for (const [id, at] of this.endedAt) {
      if (at > cutoff && this.endedAt.size <= this.max) break;
      this.endedAt.delete(id);
    }
  }
}
