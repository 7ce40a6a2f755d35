import type { Clock } from '../../common/clock';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import type { TimerConfig } from './timer-config';
import { TransactionBase } from './transaction-base';

export type IstState = 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

/** RFC 3261 §17.2.1 Figure 7 as amended by RFC 6026 §7.1 (Accepted state). */
export const IST_TRANSITIONS: Record<IstState, readonly IstState[]> = {
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['confirmed', 'terminated'],
  confirmed: ['terminated'],
  terminated: [],
};

export interface IstUser {
  /** Timer H fired: no ACK for our 3xx-6xx response. */
  onAckTimeout?(): void;
}

/**
 * Final answers to an INVITE sent once, without Timer G: refusals of a questionable request, whose UDP
 * source may be forged (Timer G made one forged datagram worth a 100 and eleven answers at the address it
 * named). 401/407: a challenge; 403: the gateway's answer to a locked-out source (and other refusals);
 * 481: an INVITE with a To tag of no dialog (in-dialog requests are not held to the per-source rate);
 * 488: the gateway's answer to a hostile SDP, checked before authentication.
 */
const SENT_ONCE: ReadonlySet<number> = new Set([401, 403, 407, 481, 488]);

/**
 * INVITE server transaction: absorbs retransmitted INVITEs, retransmits non-2xx finals (Timer G) until ACK,
 * except the answers to questionable requests, sent once (SENT_ONCE, RFC 3261 §26.3.2.4).
 */
export class ServerInviteTransaction extends TransactionBase<IstState> {
  private lastResponse: Buffer | undefined;
  private gInterval: number;
  /** Told once, of the first final response sent (the engine's call records). */
  onFinal: ((response: SipResponse) => void) | undefined;

  constructor(
    readonly request: SipRequest,
    flow: Flow,
    clock: Clock,
    config: TimerConfig,
    onTerminated: () => void,
    private readonly user: IstUser = {},
  ) {
    super('proceeding', IST_TRANSITIONS, 'terminated', clock, config, flow, onTerminated);
    this.gInterval = config.t1;
  }

  get finalSent(): boolean {
    return this.state !== 'proceeding';
  }

  /** A retransmitted INVITE: resend the last response (none in Accepted: the TU retransmits its 2xx). */
  receiveRetransmission(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.lastResponse) this.flow.send(this.lastResponse);
  }

  /** ACK for a non-2xx final response. Returns true if it was absorbed here. */
  receiveAck(): boolean {
    if (this.state === 'completed') {
      this.transition('confirmed');
      const i = this.flow.reliable ? 0 : this.config.t4;
      this.startTimer('I', i, () => this.transition('terminated'));
      return true;
    }
    return this.state === 'confirmed';
  }

  respond(response: SipResponse): void {
    const data = serializeSipMessage(response);
    if (response.status >= 200 && this.state === 'proceeding' && this.onFinal) {
      const tell = this.onFinal;
      this.onFinal = undefined;
      tell(response);
    }
    if (response.status < 200) {
      if (this.state !== 'proceeding') return;
      this.lastResponse = data;
      this.flow.send(data);
      return;
    }
    if (response.status < 300) {
      if (this.state === 'proceeding') {
        this.transition('accepted');
        this.startTimer('L', 64 * this.config.t1, () => this.transition('terminated'));
      }
      if (this.state === 'accepted') this.flow.send(data); // RFC 6026: 2xx retransmissions pass through
      return;
    }
    if (this.state !== 'proceeding') return;
    this.lastResponse = data;
    this.flow.send(data);
    this.transition('completed');
    // RFC 3261 §26.3.2.4: a challenge (401/407) goes out once, without the retransmission algorithm, so a
    // stranger's INVITEs from forged UDP sources are not answered five times over; a retransmitted INVITE
    // is still answered with it (Timer H keeps absorbing them), and a client that lost it retransmits.
    // The same for the other refusals of requests a stranger forges at will (SENT_ONCE)
    if (!this.flow.reliable && !SENT_ONCE.has(response.status)) this.armG();
    this.startTimer('H', 64 * this.config.t1, () => {
      this.transition('terminated');
      this.user.onAckTimeout?.();
    });
  }

  private armG(): void {
    this.startTimer('G', this.gInterval, () => {
      if (this.state !== 'completed' || !this.lastResponse) return;
      this.flow.send(this.lastResponse);
      this.gInterval = Math.min(2 * this.gInterval, this.config.t2);
      this.armG();
    });
  }
}
