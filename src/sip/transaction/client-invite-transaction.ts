import type { Clock } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import { buildNon2xxAck } from './non2xx-ack';
import type { TimerConfig } from './timer-config';
import { TransactionBase } from './transaction-base';

export type IctState = 'calling' | 'proceeding' | 'accepted' | 'completed' | 'terminated';

/** RFC 3261 §17.1.1 Figure 5 as amended by RFC 6026 §7.2 (Accepted state, Timer M). */
export const ICT_TRANSITIONS: Record<IctState, readonly IctState[]> = {
  calling: ['proceeding', 'accepted', 'completed', 'terminated'],
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['terminated'],
  terminated: [],
};

export interface ClientTransactionUser {
  onResponse(response: SipResponse): void;
  /** Timer B/F fired, or the transport failed: the TU sees a 408. */
  onTimeout(): void;
}

/** INVITE client transaction: Timer A retransmits, Timer B gives up, non-2xx is ACKed here (Timer D). */
export class ClientInviteTransaction extends TransactionBase<IctState> {
  private aInterval: number;
  private readonly data: Buffer;
  private ack: Buffer | undefined;

  constructor(
    readonly request: SipRequest,
    flow: Flow,
    clock: Clock,
    config: TimerConfig,
    onTerminated: () => void,
    private readonly user: ClientTransactionUser,
  ) {
    super('calling', ICT_TRANSITIONS, 'terminated', clock, config, flow, onTerminated);
    this.aInterval = config.t1;
    this.data = serializeSipMessage(request);
  }

  start(): void {
    this.flow.send(this.data);
    if (!this.flow.reliable) this.armA();
    this.startTimer('B', 64 * this.config.t1, () => {
      this.transition('terminated');
      this.user.onTimeout();
    });
  }

  get finalReceived(): boolean {
    return this.state === 'accepted' || this.state === 'completed' || this.state === 'terminated';
  }

  receiveResponse(response: SipResponse): void {
    const s = response.status;
    if (s < 200) {
      if (this.state === 'calling') {
        this.transition('proceeding');
      }
      if (this.state === 'proceeding') this.user.onResponse(response);
      return;
    }
    if (s < 300) {
      if (this.state === 'calling' || this.state === 'proceeding') {
        this.transition('accepted');
        this.startTimer('M', 64 * this.config.t1, () => this.transition('terminated'));
      }
      if (this.state === 'accepted') this.user.onResponse(response); // 2xx retransmissions too: the TU re-ACKs
      return;
    }
    if (this.state === 'calling' || this.state === 'proceeding') {
      this.ack = serializeSipMessage(buildNon2xxAck(this.request, response));
      this.flow.send(this.ack);
      this.transition('completed');
      this.startTimer('D', this.flow.reliable ? 0 : Math.max(32_000, 64 * this.config.t1), () => this.transition('terminated'));
      this.user.onResponse(response);
      return;
    }
    if (this.state === 'completed' && this.ack) this.flow.send(this.ack);
  }

  private armA(): void {
    this.startTimer('A', this.aInterval, () => {
      if (this.state !== 'calling') return;
      this.flow.send(this.data);
      this.aInterval *= 2;
      this.armA();
    });
  }
}
