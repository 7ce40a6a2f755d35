import { randomInt } from 'node:crypto';
import type { TimerHandle } from '../../common/clock';
import { KurentoError } from '../errors/kurento-error';
import { encodeG711, type G711Law } from '../media-files/g711';
import { MediaSourceError } from '../media-files/media-file-access';
import { TELEPHONE_RATE } from '../media-files/telephone-audio';
import { loadTelephoneAudio } from '../media-files/telephone-audio-loader';
import { MediaFormatError } from '../media-files/wav-format';
import type { ElementType } from './element-type';
import { MediaElement, type MediaType } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import { URI_ENDPOINT_EVENTS, URI_ENDPOINT_HIERARCHY, UriEndpoint } from './uri-endpoint';

const PACKET_MS = 20;
const SAMPLES_PER_PACKET = (TELEPHONE_RATE * PACKET_MS) / 1000;
/** Packets sent at once to catch up after a late timer; further behind, the schedule restarts (a gap, no burst). */
const MAX_CATCH_UP_PACKETS = 10;
const PCMU = 'pcmu/8000';
const PCMA = 'pcma/8000';

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
  private timer: TimerHandle | undefined;
  private scheduleStart = 0;
  private sentSinceStart = 0;
  private readonly playerSinks = new Set<MediaElement>();
  private readonly ssrc = randomInt(1, 0xffffffff);
  private seq = randomInt(0, 0x10000);
  private timestamp = randomInt(0, 0xffffffff);
  private lastSentAt: number | undefined;
  private markNext = true;
  private packetsSent = 0;
  private sendingOut = false;

  constructor(ctx: ElementContext) {
    super(ctx, 'PlayerEndpoint', true);
  }

  override negotiatedCodecKeys(): string[] {
    return [PCMU, PCMA];
  }

  // The player's AUDIO sinks, followed through every connect and disconnect (also those a sink's release makes).
  override connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.connectTo(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') this.playerSinks.add(sink);
  }

  override disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.disconnectFrom(sink, mediaType);
    if (mediaType === undefined || mediaType === 'AUDIO') this.playerSinks.delete(sink);
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
        return (params.mediaType === undefined || params.mediaType === null || params.mediaType === 'AUDIO') && this.sendingOut;
      default:
        return super.invoke(operation, params);
    }
  }

  private play(): void {
    if (this.state === 'START') return;
    this.setState('START');
    if (this.audio) {
      this.startPacing();
      return;
    }
    this.ensureLoaded().then(
      () => {
        if (this.state === 'START' && !this.released && !this.timer) this.startPacing();
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
    this.stopPacing();
    this.setState('PAUSE');
  }

  protected override async stopMedia(): Promise<void> {
    this.stopPacing();
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
    this.markNext = true;
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

  // ---- pacing: packet n of a run is due at scheduleStart + n * 20 ms --------------------------------

  private startPacing(): void {
    if (this.timer || this.released) return;
    const now = this.clock.now();
    if (this.lastSentAt !== undefined) {
      // the RTP clock keeps running while paused, so receivers see the gap
      const elapsed = Math.max(SAMPLES_PER_PACKET, Math.round(((now - this.lastSentAt) * TELEPHONE_RATE) / 1000));
      this.timestamp = (this.timestamp + elapsed - SAMPLES_PER_PACKET) >>> 0;
    }
    this.markNext = true;
    this.scheduleStart = now;
    this.sentSinceStart = 0;
    this.setFlowingOut(true);
    this.timer = this.clock.setInterval(() => this.tick(), PACKET_MS);
    this.tick();
  }

  private stopPacing(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.setFlowingOut(false);
  }

  private setFlowingOut(flowing: boolean): void {
    if (this.sendingOut === flowing) return;
    this.sendingOut = flowing;
    this.emitEvent('MediaFlowOutStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' });
  }

  private tick(): void {
    const audio = this.audio;
    if (!audio || !this.timer) return;
    const now = this.clock.now();
    let due = Math.floor((now - this.scheduleStart) / PACKET_MS) + 1;
    if (due - this.sentSinceStart > MAX_CATCH_UP_PACKETS) {
      this.scheduleStart = now - this.sentSinceStart * PACKET_MS;
      due = this.sentSinceStart + 1;
    }
    while (this.sentSinceStart < due && this.timer) {
      if (this.position >= audio.length) {
        this.endOfStream();
        return;
      }
      this.sendPacket(audio, now);
      this.sentSinceStart++;
    }
  }

  private sendPacket(audio: Int16Array, now: number): void {
    const packets = new Map<G711Law, Buffer>();
    for (const sink of this.playerSinks) {
      const codec = chooseCodec(sink);
      const law: G711Law = codec === PCMA ? 'alaw' : 'mulaw';
      let packet = packets.get(law);
      if (!packet) packets.set(law, (packet = this.buildPacket(law, audio, law === 'alaw' ? 8 : 0)));
      sink.deliverFromPipeline(Buffer.from(packet), codec);
    }
    this.position += SAMPLES_PER_PACKET;
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + SAMPLES_PER_PACKET) >>> 0;
    this.markNext = false;
    this.lastSentAt = now;
    this.packetsSent++;
  }

  private buildPacket(law: G711Law, audio: Int16Array, pt: number): Buffer {
    const b = Buffer.alloc(12 + SAMPLES_PER_PACKET);
    b[0] = 0x80;
    b[1] = (this.markNext ? 0x80 : 0) | pt;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE(this.timestamp, 4);
    b.writeUInt32BE(this.ssrc, 8);
    encodeG711(law, audio, this.position, SAMPLES_PER_PACKET, b, 12);
    return b;
  }

  private endOfStream(): void {
    this.stopPacing();
    this.position = 0;
    this.ctx.logger.info('player end of stream', { element: this.id, packetsSent: this.packetsSent });
    this.emitEvent('EndOfStream');
    this.setState('STOP');
    for (const sink of this.playerSinks) if (listensForEndOfStream(sink)) sink.sourceReachedEndOfStream();
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), positionMs: Math.floor((this.position * 1000) / TELEPHONE_RATE), durationMs: this.durationMs(), packetsSent: this.packetsSent };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.abort.abort();
    this.timer?.cancel();
    this.timer = undefined;
    await super.teardown(options);
    this.playerSinks.clear();
  }
}

/** The G.711 codec a sink negotiated (its own preference order), PCMU when it has negotiated neither yet. */
function chooseCodec(sink: MediaElement): string {
  for (const key of sink.negotiatedCodecKeys()) if (key === PCMU || key === PCMA) return key;
  return PCMU;
}

export const playerEndpointType: ElementType = {
  type: 'PlayerEndpoint',
  hierarchy: URI_ENDPOINT_HIERARCHY,
  events: [...URI_ENDPOINT_EVENTS, 'EndOfStream'],
  create: (ctx) => new PlayerEndpoint(ctx),
};
