import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { Side } from '../kurento/call-media';
import { kurentoCall } from '../kurento/kurento-call';
import { KCallback, KMediaElement, KSdpEndpoint } from '../kurento/kurento-types';
import { guardErrors } from '../kurento/media-connection';
import { RecordingRef } from '../cdr/cdr';
import { recordingFiles } from './recording-files';

/** kurento-client's RecorderEndpoint, the part used here */
interface KRecorderEndpoint extends KMediaElement {
  record(callback: KCallback<void>): void;
  stopAndWait(callback: KCallback<void>): void;
}

interface RecorderPipeline {
  create(type: 'RecorderEndpoint', params: { uri: string }): Promise<KRecorderEndpoint>;
}

/** the media of a call as the recorder needs it (a CallMedia) */
export interface RecordableMedia {
  readonly pipeline: unknown;
  caller: KSdpEndpoint;
  callee: KSdpEndpoint;
}

/** how long stopping the recorders may take on a call's end (a dead media server must not hold anything) */
const STOP_WAIT_MS = 1500;

/**
 * Records one call as two mono WAVs, one per party (docs/recording.md): a RecorderEndpoint per
 * party in the call's pipeline, fed by the endpoint facing that party (what the party says). The
 * files are stopped on the call's end; releasing the pipeline also finalises them (ferry media).
 */
export class CallRecorder {
  private recorders: Partial<Record<Side, KRecorderEndpoint>> = {};
  /** the endpoint each recorder is fed from (a transfer swaps a leg's endpoint) */
  private sources: Partial<Record<Side, KSdpEndpoint>> = {};
  private stopped: Promise<void> | undefined;
  readonly ref: RecordingRef;

  constructor(
    callId: string,
    private readonly media: RecordableMedia,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    const startedAt = clock.now();
    this.ref = { url: `/api/recordings/${callId}`, format: 'wav', sampleRate: 8000, files: recordingFiles(callId, startedAt), startedAt };
  }

  private prepared: Promise<void> | undefined;

  /**
   * Creates both recorders and connects each party's endpoint into its own (done while the call rings,
   * so the answer only has to start them); rejects (after releasing what it made) when the media server refuses.
   */
  prepare(): Promise<void> {
    this.prepared ??= (async () => {
      const pipeline = this.media.pipeline as RecorderPipeline;
      try {
        await Promise.all(
          (['caller', 'callee'] as const).map(async (side) => {
            const rec = await pipeline.create('RecorderEndpoint', { uri: this.ref.files[side] });
            guardErrors(rec, (err) => this.log.warn('recorder error', { side, recorderId: rec.id, err: err?.message }));
            this.recorders[side] = rec;
          }),
        );
        await this.follow();
      } catch (err) {
        await this.release();
        throw err;
      }
    })();
    return this.prepared;
  }

  /** starts both recorders (preparing them first if that was not done); rejects when the media server refuses */
  async start(): Promise<void> {
    await this.prepare();
    this.ref.startedAt = this.clock.now();
    try {
      await Promise.all((['caller', 'callee'] as const).map((side) => kurentoCall<void>((cb) => this.recorders[side]!.record(cb))));
    } catch (err) {
      await this.release();
      throw err;
    }
    this.log.info('recording started', { files: `${this.ref.files.caller} ${this.ref.files.callee}` });
  }

  /** connects each party's current endpoint into its recorder (again after a transfer replaced one) */
  async follow(): Promise<void> {
    await Promise.all(
      (['caller', 'callee'] as const).map(async (side) => {
        const ep = this.media[side];
        const rec = this.recorders[side];
        if (!rec || this.sources[side] === ep) return;
        this.sources[side] = ep;
        await kurentoCall<void>((cb) => ep.connect(rec, cb));
      }),
    );
  }

  /** stops both recorders (the files are complete when it resolves), bounded by STOP_WAIT_MS; idempotent */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      let timer: TimerHandle | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = this.clock.setTimeout(() => r('timeout'), STOP_WAIT_MS)));
      const stops = Object.entries(this.recorders).map(([side, rec]) =>
        kurentoCall<void>((cb) => rec!.stopAndWait(cb)).catch((err: Error) => this.log.warn('recorder stop failed', { side, err: err.message })),
      );
      const done = await Promise.race([Promise.all(stops).then(() => 'stopped' as const), timeout]);
      timer?.cancel();
      if (done === 'timeout') this.log.warn('recorder stop unanswered (the pipeline release finalises the files)', { waitedMs: STOP_WAIT_MS });
    })();
    return this.stopped;
  }

  private async release(): Promise<void> {
    for (const rec of Object.values(this.recorders)) {
      await kurentoCall<void>((cb) => void rec!.release(cb)).catch(() => undefined);
    }
    this.recorders = {};
  }
}
