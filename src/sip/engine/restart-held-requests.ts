import type { Clock, TimerHandle } from '../../common/clock';
import { dialogKey } from '../dialog/dialog';
import type { HeldRequest } from './orphan-dialogs';

/**
 * How long after ferry sip starts an in-dialog request for a dialog it does not know is held rather
 * than answered 481 (FERRY_SIP_RESTART_HOLD_MS). A restarted ferry sip knows no dialog until its
 * apps reconnect and claim them (docs/sip-control-extension.md §6); a party's BYE arriving in that
 * gap — sent, or retransmitted, while ferry sip was down — must reach the app, not be refused.
 */
export const DEFAULT_RESTART_HOLD_MS = 10_000;

/**
 * At most this many such requests are held at once: a flood of in-dialog requests naming dialogs
 * nobody knows costs bounded memory; beyond it they are answered 481 at once, as after the window.
 */
export const MAX_RESTART_HELD = 1024;

interface Entry extends HeldRequest {
  dialogKey: string;
}

/**
 * In-dialog requests for unknown dialogs received during the first `holdMs` after start. They wait
 * until a claim (or a request with X-Ferry-Dialog) rebuilds their dialog — `take` hands them over —
 * or until the window closes: then `onExpire` answers them (481) and later such requests get 481 at once.
 * At most `maxHeld` wait at once; more get 481 at once.
 */
export class RestartHeldRequests {
  private readonly entries: Entry[] = [];
  private readonly until: number;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    holdMs: number,
    private readonly onExpire: (held: HeldRequest) => void,
    private readonly maxHeld = MAX_RESTART_HELD,
  ) {
    this.until = clock.now() + holdMs;
  }

  /** true while ferry sip started less than `holdMs` ago */
  get open(): boolean {
    return this.until > this.clock.now();
  }

  /** true while the window is open and the hold not full: a request for an unknown dialog would be kept now */
  get accepting(): boolean {
    return this.open && this.entries.length < this.maxHeld;
  }

  /** true while the window is open and the hold not full: the request was kept */
  hold(req: HeldRequest, callId: string, localTag: string, remoteTag: string): boolean {
    const left = this.until - this.clock.now();
    if (left <= 0 || this.entries.length >= this.maxHeld) return false;
    this.entries.push({ ...req, dialogKey: dialogKey(callId, localTag, remoteTag) });
    this.timer ??= this.clock.setTimeout(() => this.expireAll(), left);
    return true;
  }

  /** the requests held for the dialog with these identifiers, removed from the hold */
  take(callId: string, localTag: string, remoteTag: string): HeldRequest[] {
    const key = dialogKey(callId, localTag, remoteTag);
    const taken: HeldRequest[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i]!.dialogKey !== key) continue;
      taken.unshift(this.entries[i]!);
      this.entries.splice(i, 1);
    }
    return taken;
  }

  get size(): number {
    return this.entries.length;
  }

  /** answers everything still held (window over, or engine stopping) */
  expireAll(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const e of this.entries.splice(0)) this.onExpire(e);
  }
}
