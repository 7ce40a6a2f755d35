import { randomUUID } from 'node:crypto';
import { Logger } from '../../common/logger';

/**
 * The gateway's call event bus: every call and registration change the gateway sees is published
 * here once, and the consumers (webhook delivery, the `/api/events` WebSocket, the CDR writer)
 * subscribe. Publishing is synchronous and never throws into the publisher: a subscriber that
 * throws is logged and the others still run. A slow consumer queues its own work (the bus never
 * waits), so a call never waits on a consumer. docs/webhooks.md lists the events and their data.
 */
export type CallEventType =
  | 'call.ringing'
  | 'call.answered'
  | 'call.held'
  | 'call.resumed'
  | 'call.transferred'
  | 'call.ended'
  | 'registration.changed'
  | 'registration.unreachable'
  | 'registration.reachable';

export const callEventTypes: readonly CallEventType[] = [
  'call.ringing',
  'call.answered',
  'call.held',
  'call.resumed',
  'call.transferred',
  'call.ended',
  'registration.changed',
  'registration.unreachable',
  'registration.reachable',
];

export interface CallEvent {
  /** unique event id (the idempotency id webhook receivers deduplicate on) */
  id: string;
  type: CallEventType;
  /** epoch ms */
  at: number;
  gatewayId: string;
  /** the gateway's call record id (CallRecord.id); absent on registration events */
  callId?: string;
  /** custom tags given at origination, echoed in every event of the call */
  tags?: Record<string, string>;
  /** type-specific: parties, reason, endedBy, durations, transfer target, registration aor/contacts… */
  data: Record<string, unknown>;
}

export type CallEventInput = Omit<CallEvent, 'id' | 'at' | 'gatewayId'>;

export interface CallEventBus {
  publish(e: CallEventInput): void;
  /** returns the unsubscribe function */
  subscribe(fn: (e: CallEvent) => void): () => void;
}

/** The in-process bus the Gateway owns (`gateway.events`). */
export class LocalCallEventBus implements CallEventBus {
  private readonly subscribers = new Set<(e: CallEvent) => void>();

  constructor(
    private readonly gatewayId: string,
    private readonly now: () => number,
    private readonly log?: Logger,
  ) {}

  publish(e: CallEventInput): void {
    const event: CallEvent = { id: randomUUID(), at: this.now(), gatewayId: this.gatewayId, ...e };
    for (const fn of [...this.subscribers]) {
      try {
        fn(event);
      } catch (err) {
        this.log?.warn('call event subscriber failed', { eventType: event.type, callId: event.callId, err: (err as Error).message });
      }
    }
  }

  subscribe(fn: (e: CallEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => {
      this.subscribers.delete(fn);
    };
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
