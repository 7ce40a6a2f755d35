import { KurentoError } from '../errors/kurento-error';
import { MediaSourceError } from '../media-files/media-file-access';
import { TELEPHONE_RATE } from '../media-files/telephone-audio';
import { loadTelephoneAudio } from '../media-files/telephone-audio-loader';
import { MediaFormatError } from '../media-files/wav-format';
import type { ElementType } from './element-type';
import { G711Pacer, PCMA, PCMU, SAMPLES_PER_PACKET, type PacedFrame } from './g711-pacer';
import { MediaElement, type MediaType } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import { URI_ENDPOINT_EVENTS, URI_ENDPOINT_HIERARCHY, UriEndpoint } from './uri-endpoint';

/** Kurento's PLAYER_SEEK_FAIL. */
const seekFail = (msg: string) => new KurentoError(40700, 'PLAYER_SEEK_FAIL', msg);

/** A sink that wants to hear about a connected player reaching the end of its media (RecorderEndpoint's stopOnEndOfStream). */
export interface EndOfStreamListener {
  sourceReachedEndOfStream(): void;
}

function listensForEndOfStream(e: unknown): e is EndOfStreamListener {
  return typeof (e as Partial<EndOfStreamListener>).sourceReachedEndOfStream === 'function';
}

/**
 * Kurento's PlayerEndpoint for audio: plays a WAV file (PCM, float, µ-law, A-law; 8-48 kHz, resampled to
 * 8 kHz; channels mixed down), a raw G.711 file, from `file://` (inside the media files directory) or
 * `http(s)://` (size limit and timeout), as 20 ms G.711 packets paced by the clock into every AUDIO sink,
 * each in the codec that sink negotiated (PCMU, else PCMA).
 *
 * The media is loaded at the first `play` (or `getVideoInfo`) and kept (a file's decoded audio is shared
 * by every player of the same file, telephone-audio-loader.ts); `play` answers at once, and an
 * unreadable source is reported as KMS does, by an `Error` event (type INVALID_URI or INVALID_MEDIA, with
 * a description saying why), after which the player is stopped. At the end of the media: `EndOfStream`,
 * then the player is stopped with its position back at 0, so `play` starts again from the beginning.
 * `pause` keeps the position; `stop` returns it to 0. `getPosition`/`setPosition` in ms (seeking needs
 * loaded media: else, or outside 0..duration, PLAYER_SEEK_FAIL 40700). `useEncodedMedia` and
 * `networkCache` are accepted and have no effect.
 */
export class PlayerEndpoint extends UriEndpoint {
  private audio: Int16Array | undefined;
  private loading: Promise<Int16Array> | undefined;
  private readonly abort = new AbortController();
  /** Index of the next sample to send. */
  private position = 0;
  /** Sends the audio from `position` into the player's AUDIO sinks (g711-pacer.ts). */
  private readonly pacer: G711Pacer;

  constructor(ctx: ElementContext) {
    super(ctx, 'PlayerEndpoint', true);
    this.pacer = new G711Pacer(ctx.clock, { next: () => this.nextFrame() }, {
      flowing: (flowing) => this.emitEvent('MediaFlowOutStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' }),
      ended: () => this.endOfStream(),
    });
  }

  override negotiatedCodecKeys(): string[] {
    return [PCMU, PCMA];
  }

  // The player's AUDIO sinks, followed through every connect and disconnect (also those a sink's release makes).
  override connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.connectTo(sink, mediaType);
    this.pacer.followSink(sink, mediaType, true);
  }

  override disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.disconnectFrom(sink, mediaType);
    this.pacer.followSink(sink, mediaType, false);
  }

  /** Nothing is played into a player: packets from a source connected to it are counted and dropped. */
  override deliverFromPipeline(): void {}

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'play':
        this.play();
        return null;
      case 'getPosition':
        return Math.floor((this.position * 1000) / TELEPHONE_RATE);
      case 'setPosition':
        this.seek(params.position);
        return null;
      case 'getVideoInfo':
        return this.videoInfo();
      case 'getElementGstreamerDot':
        return `digraph "${this.id}" {}`;
      case 'isMediaFlowingOut':
        return (params.mediaType === undefined || params.mediaType === null || params.mediaType === 'AUDIO') && this.pacer.flowing;
      default:
        return super.invoke(operation, params);
    }
  }

  private play(): void {
    if (this.state === 'START') return;
    this.setState('START');
    if (this.audio) {
      this.pacer.start();
      return;
    }
    this.ensureLoaded().then(
      () => {
        if (this.state === 'START' && !this.released) this.pacer.start();
      },
      (err: unknown) => {
        if (this.released) return;
        const kind = err instanceof MediaSourceError ? err.kind : 'INVALID_MEDIA';
        const why = err instanceof MediaSourceError || err instanceof MediaFormatError ? err.message : 'media could not be read';
        this.ctx.logger.warn('player media not playable', { element: this.id, kind, reason: why });
        this.emitError(kind, `${kind === 'INVALID_URI' ? 'Invalid URI' : 'Invalid Media'}: ${why}`, 0);
        this.setState('STOP');
      },
    );
  }

  /** The decoded media, loaded once (a failed load is forgotten, so a later play tries again). */
  private ensureLoaded(): Promise<Int16Array> {
    if (this.audio) return Promise.resolve(this.audio);
    if (!this.loading) {
      this.loading = (async () => {
        const { audio, shared } = await loadTelephoneAudio(this.location, this.files, this.abort.signal);
        this.audio = audio;
        this.ctx.logger.info('player media loaded', { element: this.id, media: this.location.kind, shared, durationMs: Math.round((audio.length * 1000) / TELEPHONE_RATE) });
        return audio;
      })();
      this.loading.catch(() => {
        this.loading = undefined;
      });
    }
    return this.loading;
  }

  protected override async pauseMedia(): Promise<void> {
    if (this.state !== 'START') return;
    this.pacer.stop();
    this.setState('PAUSE');
  }

  protected override async stopMedia(): Promise<void> {
    this.pacer.stop();
    this.position = 0;
    this.setState('STOP');
  }

  private seek(value: unknown): void {
    const ms = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
    if (!Number.isInteger(ms)) throw seekFail("Seek fails: 'position' must be an integer number of milliseconds");
    if (!this.audio) throw seekFail('Seek fails: the media is not loaded yet (play first)');
    const sample = Math.round((ms * TELEPHONE_RATE) / 1000);
    if (sample < 0 || sample > this.audio.length) throw seekFail(`Seek fails: position ${ms} ms is outside 0..${this.durationMs()} ms`);
    this.position = sample;
    this.pacer.markDiscontinuity();
  }

  private durationMs(): number {
    return this.audio ? Math.floor((this.audio.length * 1000) / TELEPHONE_RATE) : -1;
  }

  private async videoInfo(): Promise<Record<string, unknown>> {
    await this.ensureLoaded().catch(() => undefined);
    const loaded = this.audio !== undefined;
    const duration = this.durationMs();
    return { __module__: 'kurento', __type__: 'VideoInfo', isSeekable: loaded, seekableInit: 0, seekableEnd: loaded ? duration : 0, duration };
  }

  /** The pacer's feed: the next 20 ms from `position`, 'end' past the end of the media. */
  private nextFrame(): PacedFrame | 'end' {
    const audio = this.audio;
    if (!audio || this.position >= audio.length) return 'end';
    const frame = { audio, offset: this.position };
    this.position += SAMPLES_PER_PACKET;
    return frame;
  }

  private endOfStream(): void {
    this.position = 0;
    this.ctx.logger.info('player end of stream', { element: this.id, packetsSent: this.pacer.packetsSent });
    this.emitEvent('EndOfStream');
    this.setState('STOP');
    for (const sink of this.pacer.sinks) if (listensForEndOfStream(sink)) sink.sourceReachedEndOfStream();
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), positionMs: Math.floor((this.position * 1000) / TELEPHONE_RATE), durationMs: this.durationMs(), packetsSent: this.pacer.packetsSent };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.abort.abort();
    this.pacer.dispose();
    await super.teardown(options);
  }
}

export const playerEndpointType: ElementType = {
  type: 'PlayerEndpoint',
  hierarchy: URI_ENDPOINT_HIERARCHY,
  events: [...URI_ENDPOINT_EVENTS, 'EndOfStream'],
  create: (ctx) => new PlayerEndpoint(ctx),
};
