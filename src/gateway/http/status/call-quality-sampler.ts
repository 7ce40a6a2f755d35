import { Clock, TimerHandle } from '../../../common/clock';
import { Logger } from '../../../common/logger';
import { guarded } from '../../../common/process-faults';
import { Call } from '../../calls/call';
import { CallRegistry } from '../../calls/call-registry';
import type { CallEventBus } from '../../events/call-events';
import type { KCallback, KSdpEndpoint } from '../../kurento/kurento-types';
import type { GatewayMetrics } from '../metrics';

/** One party's audio as the media server sees it (cumulative since the leg started). */
export interface LiveLegQuality {
  packetsReceived: number;
  packetsSent: number;
  /** packets of this party's stream the media server never received */
  packetsLost: number;
  /** packetsLost / (packetsReceived + packetsLost), percent */
  lossPercent: number;
  /** interarrival jitter of this party's stream, ms */
  jitterMs: number;
  /** round-trip time to this party from its RTCP reports, ms (absent until it reported) */
  rttMs?: number;
}

export interface LiveCallQuality {
  /** epoch ms of the sample */
  at: number;
  caller?: LiveLegQuality;
  callee?: LiveLegQuality;
}

export interface CallQualitySamplerDeps {
  registry: CallRegistry;
  events: CallEventBus;
  metrics: GatewayMetrics;
  clock: Clock;
  log: Logger;
  /** how often every live answered call is sampled (default 5 s) */
  intervalMs?: number;
  /** one getStats answer waited for at most this long (default 1.5 s) */
  timeoutMs?: number;
  /** at most this many calls sampled per round (default 500): the oldest first */
  maxCalls?: number;
}

type StatsEndpoint = KSdpEndpoint & { getStats(mediaType: string, callback: KCallback<Record<string, unknown>>): void };

/** a usable figure: a finite number in [0, 1e12] (anything bigger is not a real count or time) */
const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= 1e12 ? x : undefined);
const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** a leg's figures out of one Kurento getStats map (its inbound and outbound RTP entries) */
export function liveLegQuality(raw: unknown): LiveLegQuality | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  let inbound: Record<string, unknown> | undefined;
  let outbound: Record<string, unknown> | undefined;
  for (const entry of Object.values(raw as Record<string, unknown>)) {
    if (!entry || typeof entry !== 'object') continue;
    const e = entry as Record<string, unknown>;
    const type = String(e.type ?? '').toLowerCase().replace('-', '');
    if (type === 'inboundrtp') inbound = e;
    else if (type === 'outboundrtp') outbound = e;
  }
  if (!inbound && !outbound) return undefined;
  const received = num(inbound?.packetsReceived) ?? 0;
  const lost = num(inbound?.packetsLost) ?? 0;
  const rtt = num(outbound?.roundTripTime);
  return {
    packetsReceived: received,
    packetsSent: num(outbound?.packetsSent) ?? 0,
    packetsLost: lost,
    lossPercent: received + lost > 0 ? round((100 * lost) / (received + lost), 3) : 0,
    jitterMs: round((num(inbound?.jitter) ?? 0) * 1000, 2),
    ...(rtt !== undefined ? { rttMs: round(rtt * 1000, 2) } : {}),
  };
}

/**
 * Live quality of this gateway's answered calls, for the status page: every `intervalMs` it asks the
 * media server for both endpoints' getStats (bounded by a timeout, a round never overlaps the previous
 * one) and keeps the last sample per call. When a call ends (`call.ended` on the bus) its last sample
 * is observed once into the per-leg jitter, loss and RTT histograms of /metrics, and forgotten; its
 * set-up and answer times are observed too.
 */
export class CallQualitySampler {
  private readonly latestByCall = new Map<string, LiveCallQuality>();
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly maxCalls: number;

  constructor(private readonly d: CallQualitySamplerDeps) {
    this.intervalMs = d.intervalMs ?? 5000;
    this.timeoutMs = d.timeoutMs ?? 1500;
    this.maxCalls = d.maxCalls ?? 500;
  }

  start(): void {
    this.unsubscribe = this.d.events.subscribe((e) => {
      if (e.type !== 'call.ended' || !e.callId) return;
      const data = e.data as { createdAt?: number; ringingAt?: number; answeredAt?: number };
      if (typeof data.createdAt === 'number') this.d.metrics.observeCallTimes(data as { createdAt: number; ringingAt?: number; answeredAt?: number });
      const last = this.latestByCall.get(e.callId);
      this.latestByCall.delete(e.callId);
      if (!last) return;
      for (const side of ['caller', 'callee'] as const) {
        const q = last[side];
        if (!q || q.packetsReceived + q.packetsLost === 0) continue;
        this.d.metrics.observeLegQuality(side, {
          jitterSeconds: q.jitterMs / 1000,
          lossRatio: q.lossPercent / 100,
          ...(q.rttMs !== undefined ? { rttSeconds: q.rttMs / 1000 } : {}),
        });
      }
    });
    this.schedule();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** the last sample of a call this gateway drives, if any */
  latest(callId: string): LiveCallQuality | undefined {
    return this.latestByCall.get(callId);
  }

  /** samples every live answered call now (a round already running is awaited instead) */
  sampleNow(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(): void {
    this.timer = this.d.clock.setTimeout(
      guarded('gateway.quality-sampler', () => {
        void this.sampleNow().finally(() => {
          if (this.unsubscribe) this.schedule();
        });
      }),
      this.intervalMs,
    );
  }

  private async round(): Promise<void> {
    const calls = this.d.registry.all().filter((c) => c.state === 'answered' && c.media && !c.isEnding).slice(0, this.maxCalls);
    const live = new Set(calls.map((c) => c.record.id));
    for (const id of this.latestByCall.keys()) if (!live.has(id) && !this.d.registry.has(id)) this.latestByCall.delete(id);
    await Promise.all(calls.map((c) => this.sample(c)));
  }

  private async sample(call: Call): Promise<void> {
    const media = call.media;
    if (!media) return;
    const [caller, callee] = await Promise.all([this.stats(media.caller), this.stats(media.callee)]);
    if (!caller && !callee) return;
    if (!this.d.registry.has(call.record.id)) return; // ended while we asked
    this.latestByCall.set(call.record.id, { at: this.d.clock.now(), ...(caller ? { caller } : {}), ...(callee ? { callee } : {}) });
  }

  private stats(ep: KSdpEndpoint): Promise<LiveLegQuality | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), this.timeoutMs);
      timer.unref?.();
      try {
        (ep as StatsEndpoint).getStats('AUDIO', (err, raw) => {
          clearTimeout(timer);
          if (err) {
            this.d.log.debug('getStats failed', { endpointId: ep.id, err: err.message });
            return resolve(undefined);
          }
          resolve(liveLegQuality(raw));
        });
      } catch (err) {
        clearTimeout(timer);
        this.d.log.debug('getStats failed', { endpointId: ep.id, err: (err as Error).message });
        resolve(undefined);
      }
    });
  }
}
