import type { Clock } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import type { TimerConfig } from './timer-config';
import { TransactionBase } from './transaction-base';

export type NistState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** RFC 3261 §17.2.2 Figure 8. */
export const NIST_TRANSITIONS: Record<NistState, readonly NistState[]> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

/** Non-INVITE server transaction: answers retransmitted requests with the last response; Timer J. */
export class ServerNonInviteTransaction extends TransactionBase<NistState> {
  private lastResponse: Buffer | undefined;

  constructor(readonly request: SipRequest, flow: Flow, clock: Clock, config: TimerConfig, onTerminated: () => void) {
    super('trying', NIST_TRANSITIONS, 'terminated', clock, config, flow, onTerminated);
  }

  get finalSent(): boolean {
    return this.state === 'completed' || this.state === 'terminated';
  }

  receiveRetransmission(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.lastResponse) this.flow.send(this.lastResponse);
  }

  respond(response: SipResponse): void {
    if (this.state === 'completed' || this.state === 'terminated') return;
    const data = serializeSipMessage(response);
    this.lastResponse = data;
    this.flow.send(data);
    if (response.status < 200) {
      if (this.state === 'trying') this.transition('proceeding');
      return;
    }
    this.transition('completed');
    this.startTimer('J', this.flow.reliable ? 0 : 64 * this.config.t1, () => this.transition('terminated'));
  }
}
