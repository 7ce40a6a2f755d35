import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { Call } from '../calls/call';
import { CallRegistry } from '../calls/call-registry';
import { SipConfig } from '../config/sip-config';
import { CallEvent, CallEventBus } from '../events/call-events';
import { Side } from '../kurento/call-media';
import { CallRecorder } from '../recording/call-recorder';
import { shouldRecord } from '../recording/recording-policy';
import { StateStore } from '../state/state-store';
import { buildCdr, Cdr } from './cdr';
import { CdrConfig } from './cdr-config';
import { CdrStore } from './cdr-store';
import { LegQuality } from './quality';
import { sampleQuality } from './quality-sampler';

/** what the service keeps per live call it drives */
interface Tracked {
  call: Call;
  /** the last periodic sample per leg */
  last: Partial<Record<Side, LegQuality>>;
  /** the end-path sample, started on the call's 'ending' */
  final?: Promise<Partial<Record<Side, LegQuality>>>;
  recorder?: CallRecorder;
  /** preparing (while ringing), then starting (on answer) */
  recorderStarting?: Promise<void>;
  recorderStarted?: boolean;
  recorderStopped?: Promise<void>;
}

export interface CdrServiceDeps {
  config: CdrConfig;
  sip: SipConfig;
  events: CallEventBus;
  registry: CallRegistry;
  /** the call records, for a call that ended without this gateway driving it (fallback) */
  store: StateStore;
  /** where CDRs are written; the first is also where they are read back from */
  stores: CdrStore[];
  clock: Clock;
  log: Logger;
  gatewayId: string;
}

/**
 * Writes one CDR per call when it ends (docs/cdr.md) and records the calls that ask for it
 * (docs/recording.md). It follows the calls this gateway drives: when one is answered it may start
 * its recording; every `statsIntervalMs` it samples each live call's quality (getStats of both
 * endpoints); on the call's end path ('ending', before the pipeline is released) it samples once more
 * and stops the recorders, each bounded so a dead media server delays nothing; on `call.ended` it
 * builds the CDR (the end-path figures, else the last periodic ones) and writes it to every store.
 */
export class CdrService {
  private readonly tracked = new Map<string, Tracked>();
  private unsubscribe: (() => void) | undefined;
  private ticker: TimerHandle | undefined;
  private readonly pending = new Set<Promise<void>>();
  readonly counters = { written: 0, writeFailures: 0, recordingsStarted: 0, recordingFailures: 0 };

  constructor(private readonly deps: CdrServiceDeps) {}

  /** the store CDRs are read back from (/api/cdrs, /api/recordings) */
  get reader(): CdrStore {
    return this.deps.stores[0]!;
  }

  start(): void {
    this.unsubscribe = this.deps.events.subscribe((e) => this.onEvent(e));
    if (this.deps.config.statsIntervalMs > 0) {
      this.ticker = this.deps.clock.setInterval(() => this.sampleAll(), this.deps.config.statsIntervalMs);
    }
  }

  /** stops following calls; CDRs being written are finished first */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.ticker?.cancel();
    await Promise.all([...this.pending]);
    for (const s of this.deps.stores) await s.close();
  }

  metricLines(): string[] {
    return [
      '# HELP ferry_cdrs_written_total CDRs written (to every configured store).',
      '# TYPE ferry_cdrs_written_total counter',
      `ferry_cdrs_written_total ${this.counters.written}`,
      '# HELP ferry_cdr_write_failures_total CDR writes that failed (one per store and CDR).',
      '# TYPE ferry_cdr_write_failures_total counter',
      `ferry_cdr_write_failures_total ${this.counters.writeFailures}`,
      '# HELP ferry_recordings_started_total Calls whose recording started.',
      '# TYPE ferry_recordings_started_total counter',
      `ferry_recordings_started_total ${this.counters.recordingsStarted}`,
      '# HELP ferry_recording_failures_total Recordings asked for that the media server refused.',
      '# TYPE ferry_recording_failures_total counter',
      `ferry_recording_failures_total ${this.counters.recordingFailures}`,
    ];
  }

  private onEvent(e: CallEvent): void {
    if (!e.callId) return;
    // any event of a call this gateway drives (an adopted call publishes no ringing/answered here)
    if (e.type !== 'call.ended') this.track(e.callId);
    if (e.type === 'call.ringing' || e.type === 'call.answered') {
      const t = this.track(e.callId);
      // recorders are made while the call rings, started when it is answered
      if (t) this.maybeRecord(t, e.type === 'call.answered');
    } else if (e.type === 'call.transferred') {
      const t = this.tracked.get(e.callId);
      if (t?.recorder && t.call.media) {
        const recorder = t.recorder;
        void (t.recorderStarting ?? Promise.resolve()).then(() => recorder.follow()).catch((err: Error) => t.call.log.warn('recording: following the transferred leg failed', { err: err.message }));
      }
    } else if (e.type === 'call.ended') {
      this.finish(e.callId);
    }
  }

  /** starts following a call this gateway drives (once) */
  private track(callId: string): Tracked | undefined {
    const existing = this.tracked.get(callId);
    if (existing) return existing;
    const call = this.deps.registry.get(callId);
    if (!call || call.isEnding) return undefined;
    const t: Tracked = { call, last: {} };
    this.tracked.set(callId, t);
    call.once('ending', () => {
      // before the pipeline is released: the requests go out now, ahead of the release (FIFO per pipeline)
      const media = call.media;
      if (media && !media.isReleased) t.final = sampleQuality({ caller: media.caller, callee: media.callee }, this.deps.clock, this.deps.config.endStatsWaitMs, true);
      if (t.recorder && t.recorderStarted) {
        const recorder = t.recorder;
        t.recorderStopped = (t.recorderStarting ?? Promise.resolve()).then(() => recorder.stop());
      }
    });
    return t;
  }

  private maybeRecord(t: Tracked, answered: boolean): void {
    const { call } = t;
    if (!call.media || !shouldRecord(call.record, this.deps.sip)) return;
    if (!t.recorder) {
      t.recorder = new CallRecorder(call.record.id, call.media, this.deps.clock, call.log);
      t.recorderStarting = t.recorder.prepare().catch((err: Error) => this.recordingFailed(t, err));
    }
    if (!answered || t.recorderStarted) return;
    t.recorderStarted = true;
    const recorder = t.recorder;
    t.recorderStarting = (t.recorderStarting ?? Promise.resolve())
      .then(() => {
        if (t.recorder !== recorder) return; // preparing failed
        call.note('recording-started', `${recorder.ref.files.caller} ${recorder.ref.files.callee}`);
        return recorder.start().then(() => {
          this.counters.recordingsStarted++;
          // on the record too: a gateway adopting the call names the recording in its CDR
          call.record.recording = recorder.ref;
          void call.persist();
        });
      })
      .catch((err: Error) => this.recordingFailed(t, err));
  }

  private recordingFailed(t: Tracked, err: Error): void {
    if (!t.recorder) return;
    this.counters.recordingFailures++;
    t.recorder = undefined;
    t.call.note('recording-failed', err.message);
    t.call.log.warn('recording failed to start', { err: err.message });
  }

  /** the periodic sample of every live answered call (and following calls adopted from another gateway) */
  private sampleAll(): void {
    for (const call of this.deps.registry.all()) {
      if (call.state !== 'answered' || !call.media || call.media.isReleased) continue;
      const t = this.track(call.record.id);
      if (!t) continue;
      const media = call.media;
      void sampleQuality({ caller: media.caller, callee: media.callee }, this.deps.clock, this.deps.config.endStatsWaitMs, false).then((q) => {
        t.last = { ...t.last, ...q };
      });
    }
  }

  private finish(callId: string): void {
    const t = this.tracked.get(callId);
    this.tracked.delete(callId);
    const job = this.writeCdr(callId, t).catch((err: Error) => {
      this.deps.log.error('CDR not written', { callId, err: err.message });
    });
    this.pending.add(job);
    void job.finally(() => this.pending.delete(job));
  }

  private async writeCdr(callId: string, t: Tracked | undefined): Promise<void> {
    const record = t?.call.record ?? this.deps.registry.get(callId)?.record ?? (await this.deps.store.getCall(callId));
    if (!record) throw new Error('no call record');
    const final = (await t?.final) ?? {};
    await t?.recorderStopped;
    const quality: Cdr['quality'] = {};
    for (const side of ['caller', 'callee'] as const) {
      const q = final[side] ?? t?.last[side];
      if (q) quality[side] = q;
    }
    const cdr = buildCdr(record, { gatewayId: this.deps.gatewayId, quality, ...(t?.recorder && t.recorderStarted ? { recording: t.recorder.ref } : {}) });
    // every store at once: a slow or dead one delays none of the others
    await Promise.all(
      this.deps.stores.map((store) =>
        store.write(cdr).catch((err: Error) => {
          this.counters.writeFailures++;
          this.deps.log.error('CDR write failed', { callId, store: store.name, err: err.message });
        }),
      ),
    );
    this.counters.written++;
    this.deps.log.info('CDR written', { callId, reason: cdr.reason, talkMs: cdr.talkMs, stores: this.deps.stores.map((s) => s.name).join(',') });
  }
}
