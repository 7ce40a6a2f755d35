import type Srf from 'drachtio-srf';
import type { Routed } from './call-router';
import type { DialogLike } from './dialog-like';
import { endsSearch } from './fork-response';

/** RFC 3326: the Reason a fork that lost gets on its CANCEL (and on the BYE of a late 2xx) */
export const COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"';

/** one registration rung with its own offer */
export interface ForkTarget {
  to: Routed;
  offer: string;
}

/** a fork's INVITE failed: its SIP status, or none when it could not be sent */
export interface ForkError {
  status?: number;
  reason?: string;
  message?: string;
}

/** how a fork that did not win ended */
export type ForkEnd =
  | { kind: 'failed'; err: ForkError }
  /** cancelled (another fork answered, or the search ended) and answered 487 or anything else */
  | { kind: 'cancelled'; err: ForkError }
  /** answered after another fork had won or the search had ended: ACKed and hung up */
  | { kind: 'late-answer' };

export interface ForkSetHooks<F extends ForkTarget> {
  /** the fork's INVITE is on its way (the first one starts the ring time) */
  sent(fork: F): void;
  /** a 180/183 from the fork */
  ringing(fork: F, status: number): void;
  /** the fork is over and did not win (its resources may go); awaited before the set settles */
  ended(fork: F, end: ForkEnd): Promise<void>;
  /** a 6xx ended the search (the others are being cancelled; `outcome` settles once they are over) */
  globalFailure?(fork: F, err: ForkError): void;
  /**
   * the headers of the CANCEL the others get when `fork` answered; default the RFC 3326 Reason "Call
   * completed elsewhere" (not when the call cannot be completed after all, e.g. its media server is lost)
   */
  answeredCancelHeaders?(fork: F): Record<string, string>;
}

export interface ForkSetOptions {
  /** the From header every fork's INVITE carries */
  from: string;
  /** the connection to ferry sip the caller's INVITE came over (the forks go out the same way) */
  socket?: unknown;
}

/** what a fork set came to: the first fork to answer, or every fork's failure (a 6xx ends it early) */
export type ForkOutcome<F extends ForkTarget> =
  | { answered: true; fork: F; dialog: DialogLike }
  | { answered: false; failures: { fork: F; err: ForkError }[]; global?: { fork: F; err: ForkError } };

interface PendingRequest {
  cancel(opts?: { headers?: Record<string, string> }): void;
}

interface ForkState<F> {
  fork: F;
  req?: PendingRequest;
  /** a CANCEL is due (asked for before the INVITE was sent, or sent) */
  cancel?: Record<string, string>;
  cancelSent: boolean;
  done: boolean;
}

/**
 * Parallel forking (RFC 3261 16.7 for a B2BUA): every fork gets its own INVITE at once
 * (drachtio-srf createUAC); the first 2xx wins and every other fork still ringing is CANCELled with
 * `Reason: SIP;cause=200;text="Call completed elsewhere"`; a 2xx that comes after that is ACKed (by srf)
 * and BYEd here. A 6xx ends the search: the others are cancelled. Any other failure waits for the rest.
 * `outcome` settles once a fork won, or once every fork is over; `settled` once every fork is over.
 */
export class ForkSet<F extends ForkTarget> {
  private readonly forks: ForkState<F>[] = [];
  private winner: ForkState<F> | undefined;
  private stopped = false;
  /** every fork is over (no fork can join any more) */
  private over = false;
  /** forks whose run (their hooks included) is not over yet */
  private running = 0;
  private global: { fork: F; err: ForkError } | undefined;
  private readonly failures: { fork: F; err: ForkError }[] = [];
  private resolveOutcome!: (o: ForkOutcome<F>) => void;
  private resolveSettled!: () => void;
  readonly outcome: Promise<ForkOutcome<F>>;
  readonly settled: Promise<void>;

  constructor(private readonly srf: Srf, forks: readonly F[], private readonly hooks: ForkSetHooks<F>, private readonly opts: ForkSetOptions) {
    this.outcome = new Promise((r) => (this.resolveOutcome = r));
    this.settled = new Promise((r) => (this.resolveSettled = r));
    for (const fork of forks) this.start(fork);
    if (forks.length === 0) this.finish();
  }

  /** a fork has answered */
  get answered(): boolean {
    return this.winner !== undefined;
  }

  /** the forks not over yet */
  get pending(): number {
    return this.forks.filter((s) => !s.done).length;
  }

  /** every fork the set has rung (over or not) */
  get size(): number {
    return this.forks.length;
  }

  /** the forks the set has rung (over or not) */
  get all(): readonly F[] {
    return this.forks.map((s) => s.fork);
  }

  /**
   * A fork joins while the others ring (a registration made during the ring): it gets its INVITE at once
   * and counts as any other. Refused (false) once a fork answered, the search ended or every fork is over.
   */
  add(fork: F): boolean {
    if (this.winner || this.stopped || this.over) return false;
    this.start(fork);
    return true;
  }

  private start(fork: F): void {
    const s: ForkState<F> = { fork, cancelSent: false, done: false };
    this.forks.push(s);
    this.running++;
    void this.run(s).catch(() => undefined).finally(() => {
      this.running--;
      if (this.running === 0) this.finish();
    });
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    if (!this.winner) this.resolveOutcome({ answered: false, failures: this.failures, ...(this.global ? { global: this.global } : {}) });
    this.resolveSettled();
  }

  /**
   * Ends the search: every fork still ringing (but `except`) is CANCELled with `headers` (a fork whose
   * INVITE is not sent yet is cancelled as soon as it is); any 2xx after this is hung up.
   */
  cancelAll(headers: Record<string, string> = {}, except?: F): void {
    this.stopped = true;
    for (const s of this.forks) {
      if (s.fork === except || s.done || s.cancel) continue;
      s.cancel = headers;
      this.sendCancel(s);
    }
  }

  private sendCancel(s: ForkState<F>): void {
    if (!s.req || s.cancelSent || s.done || !s.cancel) return;
    s.cancelSent = true;
    try {
      s.req.cancel(Object.keys(s.cancel).length > 0 ? { headers: s.cancel } : {});
    } catch {
      /* the INVITE's transaction is over already: its final response is on its way */
    }
  }

  private async run(s: ForkState<F>): Promise<void> {
    const { to, offer } = s.fork;
    let dialog: DialogLike;
    try {
      dialog = (await this.srf.createUAC(to.uri, {
        localSdp: offer,
        headers: { From: this.opts.from },
        ...(to.nextHop ? { proxy: to.nextHop } : {}),
        ...(this.opts.socket ? { _socket: this.opts.socket } : {}),
      } as never, {
        cbRequest: (err: unknown, r: unknown) => {
          if (err || !r) return;
          s.req = r as PendingRequest;
          this.hooks.sent(s.fork);
          // cancelled before its INVITE went out: cancelled now
          this.sendCancel(s);
        },
        cbProvisional: (p: unknown) => {
          const status = (p as { status: number }).status;
          if ((status === 180 || status === 183) && !s.cancel) this.hooks.ringing(s.fork, status);
        },
      } as never)) as unknown as DialogLike;
    } catch (e) {
      s.done = true;
      const err = e as ForkError;
      if (s.cancel) {
        await this.hooks.ended(s.fork, { kind: 'cancelled', err });
        return;
      }
      this.failures.push({ fork: s.fork, err });
      if (endsSearch(err.status) && !this.stopped) {
        // a 6xx: nobody else rings (RFC 3261 16.7, step 5)
        this.global = { fork: s.fork, err };
        this.cancelAll();
        this.hooks.globalFailure?.(s.fork, err);
      }
      await this.hooks.ended(s.fork, { kind: 'failed', err });
      return;
    }
    s.done = true;
    if (this.winner || this.stopped) {
      // a late 2xx: srf has ACKed it; the dialog is hung up at once
      await dialog.destroy(this.winner ? { headers: { Reason: COMPLETED_ELSEWHERE } } : {}).catch(() => undefined);
      await this.hooks.ended(s.fork, { kind: 'late-answer' });
      return;
    }
    this.winner = s;
    this.cancelAll(this.hooks.answeredCancelHeaders?.(s.fork) ?? { Reason: COMPLETED_ELSEWHERE }, s.fork);
    this.resolveOutcome({ answered: true, fork: s.fork, dialog });
  }
}
