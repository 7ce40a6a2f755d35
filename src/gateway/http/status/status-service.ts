import { Clock, TimerHandle } from '../../../common/clock';
import { Logger } from '../../../common/logger';
import { guarded } from '../../../common/process-faults';
import { CallRegistry } from '../../calls/call-registry';
import type { CallEventBus } from '../../events/call-events';
import type { CallRecord, LegKind } from '../../state/call-record';
import type { GatewayMetrics } from '../metrics';
import { CallQualitySampler, LiveCallQuality } from './call-quality-sampler';
import { MinuteSample, StatusHistory } from './status-history';

/** One live call as `GET /api/status` shows it: who, what state, since when, and its last quality sample. */
export interface StatusCall {
  id: string;
  state: CallRecord['state'];
  createdAt: number;
  answeredAt?: number;
  owner: string;
  caller: { party: string; uri: string; kind: LegKind };
  callee: { party: string; uri: string; kind: LegKind };
  /** the last sample, for calls this gateway drives (another gateway's calls have none here) */
  quality?: LiveCallQuality;
}

export interface StatusSnapshot {
  now: number;
  gatewayId: string;
  calls: StatusCall[];
  /** the last hour, a minute per entry, oldest first */
  history: MinuteSample[];
}

export interface StatusServiceDeps {
  registry: CallRegistry;
  events: CallEventBus;
  metrics: GatewayMetrics;
  clock: Clock;
  log: Logger;
  gatewayId: string;
  /** every live call in the state store (all gateways) */
  listCalls: () => Promise<CallRecord[]>;
  /** quality sampling period (default 5 s) */
  sampleIntervalMs?: number;
}

/** at most this many live calls in one answer (oldest first) */
const MAX_CALLS = 200;

/**
 * What `/status` shows: the live calls with their state and quality (CallQualitySampler), and the
 * last hour's live-call and end counts (StatusHistory, one sample of the live calls every 10 s).
 */
export class StatusService {
  readonly sampler: CallQualitySampler;
  readonly history: StatusHistory;
  private tick: TimerHandle | undefined;

  constructor(private readonly d: StatusServiceDeps) {
    this.sampler = new CallQualitySampler({ registry: d.registry, events: d.events, metrics: d.metrics, clock: d.clock, log: d.log, ...(d.sampleIntervalMs ? { intervalMs: d.sampleIntervalMs } : {}) });
    this.history = new StatusHistory(() => d.clock.now());
  }

  start(): void {
    this.sampler.start();
    this.history.start(this.d.events);
    // the store's count (all gateways), as the page shows; this gateway's own calls while the store does not answer
    this.tick = this.d.clock.setInterval(guarded('gateway.status-history', async () => {
      const live = await this.d.listCalls().then((calls) => calls.filter((c) => c.state !== 'ended').length, () => this.d.registry.size);
      this.history.noteActive(live);
    }), 10_000);
  }

  stop(): void {
    this.tick?.cancel();
    this.tick = undefined;
    this.sampler.stop();
    this.history.stop();
  }

  async snapshot(): Promise<StatusSnapshot> {
    const live = (await this.d.listCalls()).filter((c) => c.state !== 'ended').sort((a, b) => a.createdAt - b.createdAt);
    const now = this.d.clock.now();
    this.history.noteActive(live.length, now);
    const calls = live.slice(0, MAX_CALLS).map((c): StatusCall => {
      const quality = this.sampler.latest(c.id);
      return {
        id: c.id,
        state: c.state,
        createdAt: c.createdAt,
        ...(c.answeredAt !== undefined ? { answeredAt: c.answeredAt } : {}),
        owner: c.owner,
        caller: { party: c.caller.party, uri: c.caller.uri, kind: c.caller.kind },
        callee: { party: c.callee.party, uri: c.callee.uri, kind: c.callee.kind },
        ...(quality ? { quality } : {}),
      };
    });
    return { now, gatewayId: this.d.gatewayId, calls, history: this.history.snapshot(now) };
  }
}
