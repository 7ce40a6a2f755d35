import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { InDialogRequest, InDialogResponse } from '../calls/dialog-like';

export type DialogRequest = InDialogRequest & { stackDialogId?: string };
/** true when the request belonged to a dialog this gateway drives and was handled */
export type DispatchFn = (req: DialogRequest, res: InDialogResponse) => boolean;
/** true when the request belongs to a live call this gateway may still adopt (its owner is gone from ferry sip) */
export type AwaitsAdoptionFn = (req: DialogRequest) => Promise<boolean>;

interface Held {
  req: DialogRequest;
  res: InDialogResponse;
  at: number;
  deadline?: TimerHandle;
}

/**
 * In-dialog requests (BYE, re-INVITE, UPDATE, INFO) for dialogs srf does not know, that belong to a
 * call this gateway is about to adopt. Answering them 481 would end a party's call while the other
 * party is never told (or cut a healthy call), so they are held and handed to the call once it is
 * adopted (`deliver()`, after each adoption):
 * - every such request until the first adoption scan has finished (`open()`): a restarted gateway is
 *   offered what ferry sip held for it the moment it connects, before it has rebuilt its calls;
 * - after that, a request whose call record names another owner (ferry sip offers it to us because
 *   that owner is no longer connected), for at most `holdMs`: the owner's lease runs out and a scan
 *   adopts the call within that time.
 * Whatever is left then gets 481, as any request for an unknown dialog does.
 */
export class HeldInDialogRequests {
  private held: Held[] = [];
  private firstScanDone = false;

  constructor(
    private readonly dispatch: DispatchFn,
    private readonly awaitsAdoption: AwaitsAdoptionFn,
    private readonly holdMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.held.length;
  }

  /** a request for a dialog srf does not know: handled now, held for an adoption, or 481 */
  offer(req: DialogRequest, res: InDialogResponse): void {
    if (!this.firstScanDone) {
      this.hold(req, res, 'until the first adoption scan ends');
      return;
    }
    if (this.dispatch(req, res)) return;
    this.awaitsAdoption(req).then(
      (awaits) => {
        // an adoption may have finished while we looked
        if (this.dispatch(req, res)) return;
        if (awaits) this.hold(req, res, `until its call is adopted (at most ${this.holdMs} ms)`, this.holdMs);
        else this.refuse(req, res, 'matches no call');
      },
      (err: Error) => {
        this.log.warn('could not look up the call of an in-dialog request', { method: req.method, sipCallId: req.get('Call-ID'), err: err.message });
        if (!this.dispatch(req, res)) this.refuse(req, res, 'call lookup failed');
      },
    );
  }

  /** hands the held requests whose dialog is now driven by this gateway to it (after an adoption) */
  deliver(): void {
    const left: Held[] = [];
    for (const h of this.held) {
      if (this.dispatch(h.req, h.res)) {
        h.deadline?.cancel();
        this.log.info('held in-dialog request delivered', { method: h.req.method, sipCallId: h.req.get('Call-ID'), heldMs: this.clock.now() - h.at });
      } else left.push(h);
    }
    this.held = left;
  }

  /** the first adoption scan finished: deliver what belongs to an adopted call, answer the rest 481 */
  open(): void {
    this.firstScanDone = true;
    this.deliver();
    for (const h of this.held.filter((x) => !x.deadline)) this.expire(h, 'matches no call after the first adoption scan');
  }

  /** answers everything still held 481 (the gateway stops) */
  close(): void {
    for (const h of [...this.held]) this.expire(h, 'the gateway stops');
  }

  private hold(req: DialogRequest, res: InDialogResponse, why: string, forMs?: number): void {
    const h: Held = { req, res, at: this.clock.now() };
    if (forMs !== undefined) h.deadline = this.clock.setTimeout(() => this.expire(h, `not adopted within ${forMs} ms`), forMs);
    this.held.push(h);
    this.log.info(`in-dialog request held ${why}`, { method: req.method, sipCallId: req.get('Call-ID'), dialogId: req.stackDialogId });
  }

  private expire(h: Held, why: string): void {
    const i = this.held.indexOf(h);
    if (i < 0) return;
    this.held.splice(i, 1);
    h.deadline?.cancel();
    this.refuse(h.req, h.res, why);
  }

  private refuse(req: DialogRequest, res: InDialogResponse, why: string): void {
    this.log.info(`in-dialog request for an unknown dialog ${why}: 481`, { method: req.method, sipCallId: req.get('Call-ID') });
    try {
      res.send(481);
    } catch {
      /* transaction gone */
    }
  }
}
