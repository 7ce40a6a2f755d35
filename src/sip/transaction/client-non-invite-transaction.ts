import type { Clock } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import type { ClientTransactionUser } from './client-invite-transaction';
import type { TimerConfig } from './timer-config';
import { TransactionBase } from './transaction-base';

export type NictState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** RFC 3261 §17.1.2 Figure 6. */
export const NICT_TRANSITIONS: Record<NictState, readonly NictState[]> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

/** Non-INVITE client transaction: Timer E retransmits (capped at T2), Timer F gives up, Timer K absorbs. */
export class ClientNonInviteTransaction extends TransactionBase<NictState> {
  private eInterval: number;
  private readonly data: Buffer;

  constructor(
    readonly request: SipRequest,
    flow: Flow,
    clock: Clock,
    config: TimerConfig,
    onTerminated: () => void,
    private readonly user: ClientTransactionUser,
  ) {
    super('trying', NICT_TRANSITIONS, 'terminated', clock, config, flow, onTerminated);
    this.eInterval = config.t1;
    this.data = serializeSipMessage(request);
  }

  start(): void {
    this.flow.send(this.data);
    if (!this.flow.reliable) this.armE();
    this.armF();
  }

  get finalReceived(): boolean {
    return this.state === 'completed' || this.state === 'terminated';
  }

  receiveResponse(response: SipResponse): void {
    if (this.state === 'completed' || this.state === 'terminated') return; // absorbed (Timer K)
    if (response.status < 200) {
      if (this.state === 'trying') {
        this.transition('proceeding');
        if (!this.flow.reliable) {
          this.eInterval = this.config.t2;
          this.armE();
        }
        this.armF();
      }
      this.user.onResponse(response);
      return;
    }
    this.transition('completed');
    this.startTimer('K', this.flow.reliable ? 0 : this.config.t4, () => this.transition('terminated'));
    this.user.onResponse(response);
  }

  private armF(): void {
    // Timer F runs from the start; re-arming in Proceeding keeps the original deadline.
    if (this.fDeadline === undefined) this.fDeadline = this.clock.now() + 64 * this.config.t1;
    this.startTimer('F', Math.max(0, this.fDeadline - this.clock.now()), () => {
      this.transition('terminated');
      this.user.onTimeout();
    });
  }

  private fDeadline: number | undefined;

  private armE(): void {
    this.startTimer('E', this.eInterval, () => {
      if (this.state !== 'trying' && this.state !== 'proceeding') return;
      this.flow.send(this.data);
      this.eInterval = this.state === 'trying' ? Math.min(2 * this.eInterval, this.config.t2) : this.config.t2;
      this.armE();
    });
  }
}
