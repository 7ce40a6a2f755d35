import { Logger } from '../../common/logger';
import { InDialogRequest, InDialogResponse } from '../calls/dialog-like';

export type DialogRequest = InDialogRequest & { stackDialogId?: string };
/** true when the request belonged to a dialog this gateway drives and was handled */
export type DispatchFn = (req: DialogRequest, res: InDialogResponse) => boolean;

interface Held {
  req: DialogRequest;
  res: InDialogResponse;
  at: number;
}

/**
 * In-dialog requests (BYE, re-INVITE, UPDATE, INFO) for dialogs srf does not know, arriving while
 * this gateway's first adoption scan is still running. A restarted gateway is offered the requests
 * ferry sip held for it the moment it connects, before it has rebuilt its calls from the state
 * store; answering them 481 then would cut a call that is about to be adopted (or leave its other
 * party in a dead call). So they are held here: each adoption delivers the ones that belong to it
 * (`deliver()`), and when the first scan has finished (`open()`) whatever is left gets 481, as any
 * later request for an unknown dialog does.
 */
export class HeldInDialogRequests {
  private held: Held[] | undefined = [];

  constructor(
    private readonly dispatch: DispatchFn,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get isOpen(): boolean {
    return this.held === undefined;
  }

  get size(): number {
    return this.held?.length ?? 0;
  }

  /** a request for a dialog srf does not know: handled now, held until the first scan ends, or 481 */
  offer(req: DialogRequest, res: InDialogResponse): void {
    if (this.held) {
      this.held.push({ req, res, at: this.now() });
      this.log.info('in-dialog request held until adoption', { method: req.method, sipCallId: req.get('Call-ID'), dialogId: req.stackDialogId });
      return;
    }
    if (!this.dispatch(req, res)) res.send(481);
  }

  /** hands the held requests whose dialog is now driven by this gateway to it (after an adoption) */
  deliver(): void {
    if (!this.held) return;
    const left: Held[] = [];
    for (const h of this.held) {
      if (this.dispatch(h.req, h.res)) this.logDelivered(h);
      else left.push(h);
    }
    this.held = left;
  }

  /** the first adoption scan finished: deliver what belongs to an adopted call, answer the rest 481 */
  open(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const h of held) {
      if (this.dispatch(h.req, h.res)) {
        this.logDelivered(h);
        continue;
      }
      this.log.info('held in-dialog request matches no call: 481', { method: h.req.method, sipCallId: h.req.get('Call-ID') });
      try {
        h.res.send(481);
      } catch {
        /* transaction gone */
      }
    }
  }

  private logDelivered(h: Held): void {
    this.log.info('held in-dialog request delivered', { method: h.req.method, sipCallId: h.req.get('Call-ID'), heldMs: this.now() - h.at });
  }
}
