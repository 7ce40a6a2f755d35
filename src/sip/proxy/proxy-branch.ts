import type { TimerHandle } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import type { Flow } from '../transport/flow';
import { buildCancel } from '../engine/in-dialog-request-builder';
import type { ProxyServices } from '../engine/proxy-dispatch';
import type { ClientTransaction } from '../transaction/client-transaction-table';

/** RFC 3261 §16.6 step 11: Timer C, how long an INVITE branch may ring without a final response. */
export const PROXY_TIMER_C_MS = 180_000;

/** why a branch gave up when its transaction timed out (Timer B/F) */
export const TRANSACTION_TIMEOUT = 'no response (transaction timeout)';

export type BranchState = 'waiting' | 'calling' | 'proceeding' | 'settled';

/** What a branch tells its proxy session. */
export interface BranchEvents {
  onProvisional(branch: ProxyBranch, response: SipResponse): void;
  /** a final response from the network */
  onFinal(branch: ProxyBranch, response: SipResponse): void;
  /** gave up without a final response: no answer in time, cancelled before any answer, or unreachable */
  onGaveUp(branch: ProxyBranch, status: number, why: string): void;
}

export interface BranchTimeouts {
  provisionalMs: number | undefined;
  finalMs: number | undefined;
}

/**
 * One target of a proxied request: its client transaction, its timers (no response within the
 * provisional timeout, no final within the final timeout or Timer C), and its CANCEL (RFC 3261 §9.1:
 * only once a provisional response arrived; a branch cancelled before that is cancelled when one does).
 */
export class ProxyBranch {
  state: BranchState = 'waiting';
  /** final status: a network response's, or the one the proxy stands in for (408, 503, 487) */
  status: number | undefined;
  /** the final response received from the network, if any */
  finalResponse: SipResponse | undefined;
  flow: Flow | undefined;
  request: SipRequest | undefined;
  /** a provisional response arrived (the target has the request: a timeout is not a dead target) */
  heardProvisional = false;
  private txn: ClientTransaction | undefined;
  private cancelWanted = false;
  private cancelSent = false;
  private readonly timers = new Map<string, TimerHandle>();

  constructor(
    readonly target: string,
    private readonly services: ProxyServices,
    private readonly timeouts: BranchTimeouts,
    private readonly events: BranchEvents,
  ) {}

  get sent(): boolean {
    return this.request !== undefined;
  }

  get settled(): boolean {
    return this.state === 'settled';
  }

  /** Sends `request` over `flow` in a client transaction and starts the branch's timers. */
  send(request: SipRequest, flow: Flow): void {
    if (this.state !== 'waiting') return;
    this.request = request;
    this.flow = flow;
    this.state = 'calling';
    const invite = request.method === 'INVITE';
    if (this.timeouts.provisionalMs !== undefined) {
      this.arm('provisional', this.timeouts.provisionalMs, () => this.giveUp(408, 'no response within the provisional timeout'));
    }
    if (this.timeouts.finalMs !== undefined) {
      this.arm('final', this.timeouts.finalMs, () => this.giveUp(408, 'no final response within the final timeout'));
    }
    if (invite) this.arm('C', PROXY_TIMER_C_MS, () => this.giveUp(408, 'no final response within Timer C'));
    this.txn = this.services.sendRequest(request, flow, {
      onResponse: (res) => this.onResponse(res),
      onTimeout: () => this.giveUp(408, TRANSACTION_TIMEOUT),
    });
  }

  /** The target could not be reached (no route, connection refused): as a 503 from it (RFC 3261 §16.9). */
  unreachable(why: string): void {
    if (this.state !== 'waiting') return;
    this.settle(503);
    this.events.onGaveUp(this, 503, why);
  }

  /**
   * Stops the branch: a waiting one never starts, a ringing INVITE gets a CANCEL, one that has heard
   * nothing yet is cancelled when its first provisional response arrives.
   */
  cancel(): void {
    if (this.state === 'waiting') {
      this.settle(487);
      return;
    }
    if (this.state === 'settled' || this.request?.method !== 'INVITE') return;
    this.cancelWanted = true;
    if (this.state === 'proceeding') {
      this.sendCancel();
      return;
    }
    // nothing heard yet: the branch is over for the proxy; a late provisional response gets the CANCEL
    this.settle(487);
  }

  /** Stops every timer (engine shutdown). */
  stop(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }

  private onResponse(res: SipResponse): void {
    const late = this.state === 'settled';
    if (res.status < 200) {
      this.heardProvisional = true;
      if (late && !this.cancelWanted) return;
      if (this.state === 'calling') {
        this.state = 'proceeding';
        this.disarm('provisional');
      }
      if (this.cancelWanted) {
        this.sendCancel();
        return;
      }
      if (res.status > 100 && this.request?.method === 'INVITE') this.arm('C', PROXY_TIMER_C_MS, () => this.giveUp(408, 'no final response within Timer C'));
      if (!late) this.events.onProvisional(this, res);
      return;
    }
    this.disarm('cancel');
    if (late) {
      // a 2xx after the branch was given up: still passed upstream (RFC 3261 §16.7 step 5); others dropped
      if (res.status < 300) this.events.onFinal(this, res);
      return;
    }
    this.finalResponse = res;
    this.settle(res.status);
    this.events.onFinal(this, res);
  }

  private giveUp(status: number, why: string): void {
    if (this.state === 'settled') return;
    const heardSomething = this.state === 'proceeding';
    this.settle(status);
    if (this.request?.method === 'INVITE') {
      this.cancelWanted = true;
      if (heardSomething) this.sendCancel();
    } else {
      this.txn?.abort();
    }
    this.events.onGaveUp(this, status, why);
  }

  private sendCancel(): void {
    if (this.cancelSent || !this.request || !this.flow || this.txn?.terminated) return;
    this.cancelSent = true;
    const cancel = buildCancel(this.request, undefined);
    this.services.sendRequest(cancel, this.flow, { onResponse: () => {}, onTimeout: () => {} });
    // RFC 3261 §9.1: no final response within 64*T1 of the CANCEL ends the INVITE transaction
    this.arm('cancel', 64 * this.services.timers.t1, () => {
      this.txn?.abort();
      if (this.state !== 'settled') {
        this.settle(487);
        this.events.onGaveUp(this, 487, 'no final response after CANCEL');
      }
    });
  }

  private settle(status: number): void {
    this.state = 'settled';
    this.status = status;
    for (const name of ['provisional', 'final', 'C']) this.disarm(name);
  }

  private arm(name: string, ms: number, fn: () => void): void {
    this.disarm(name);
    this.timers.set(name, this.services.clock.setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, ms));
  }

  private disarm(name: string): void {
    this.timers.get(name)?.cancel();
    this.timers.delete(name);
  }
}
