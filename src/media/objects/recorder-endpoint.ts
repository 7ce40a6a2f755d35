import type { TimerHandle } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import { decodeG711 } from '../media-files/g711';
import { MediaSourceError, openRecordingFile, openUploadSpool, uploadRecording } from '../media-files/media-file-access';
import { TELEPHONE_RATE } from '../media-files/telephone-audio';
import { WavRecordingWriter } from '../media-files/wav-recording-writer';
import type { ElementType } from './element-type';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';
import type { EndOfStreamListener } from './player-endpoint';
import { URI_ENDPOINT_EVENTS, URI_ENDPOINT_HIERARCHY, UriEndpoint } from './uri-endpoint';

/** How often gathered samples are written and the WAV header's sizes brought up to date. */
const FLUSH_MS = 1000;
/** Silence is filled in by the clock alone only up to this far behind it (samples): later audio still finds its place. */
const FILL_BEHIND_SAMPLES = 3200;
/** Audio more than this far ahead of the recording's clock (samples) is dropped: a peer cannot make the file grow faster than time. */
const AHEAD_SAMPLES = TELEPHONE_RATE;
/** A stream whose timestamps put it further than this from the clock (samples) is placed afresh at the clock. */
const REANCHOR_SAMPLES = TELEPHONE_RATE;
/** Largest payload taken from one packet (samples): 200 ms of G.711. */
const MAX_PACKET_SAMPLES = 1600;

/**
 * Kurento's RecorderEndpoint for audio: records the AUDIO connected into it as a WAV file (16-bit PCM,
 * mono, 8 kHz; PCMU and PCMA both decode to it without loss) at a `file://` (or relative) URI inside the
 * media files directory, or at an `http(s)://` URI: recorded into a private temporary file and POSTed
 * there once complete (see `upload`). `mediaProfile` must be absent: ferry media writes WAV only, and every Kurento
 * profile names a container it does not write (40006 NOT_IMPLEMENTED says so).
 *
 * The file is on the recording's clock: time while recording is filled with the audio received, placed
 * by its RTP timestamps, and with silence where none came (lost packets, hold, no source connected), so
 * its length is the time spent recording; paused time is left out. `record` creates/truncates the file and answers once it is open
 * (`Recording`); `pause` (`Paused`); `stop` and `stopAndWait` answer once the file is complete
 * (`Stopped`). The header is kept valid while recording (sizes rewritten every second) and finalised on
 * stop and on every end: the element or pipeline released, the owner gone and the pipeline released, the
 * server shut down. With `stopOnEndOfStream`, a connected PlayerEndpoint reaching its end stops it.
 */
export class RecorderEndpoint extends UriEndpoint implements EndOfStreamListener {
  private readonly stopOnEndOfStream: boolean;
  private writer: WavRecordingWriter | undefined;
  /** For an http(s):// URI: the temporary file being recorded, uploaded when it is complete. */
  private spool: { path: string; remove: () => Promise<void> } | undefined;
  /** The upload of the last recording to an http(s):// URI, while it runs (stopAndWait waits for it). */
  private uploading: Promise<void> | undefined;
  /** The close of the last file, while and after it runs. */
  private finishing: Promise<void> | undefined;
  private flushTimer: TimerHandle | undefined;
  /** Recording time before the current run (ms), and when the current run started. */
  private recordedMs = 0;
  private runStartedAt = 0;
  /** Samples placed in the file so far (audio and silence). */
  private cursor = 0;
  private packetsRecorded = 0;
  private packetsDroppedAhead = 0;
  private packetsDroppedLate = 0;
  /** Where the current stream's RTP timestamps are placed in the file: `ts` is at sample `at`. Reset by a new SSRC, a resume, a jump. */
  private anchor: { ssrc: number; ts: number; at: number } | undefined;
  private decodeBuffer = new Int16Array(MAX_PACKET_SAMPLES);

  constructor(ctx: ElementContext) {
    super(ctx, 'RecorderEndpoint', true);
    const profile = ctx.constructorParams.mediaProfile;
    if (profile !== undefined && profile !== null) {
      throw KurentoErrors.notImplemented(`mediaProfile ${JSON.stringify(profile)}: ferry media records audio as WAV (16-bit PCM, 8 kHz, mono) only; leave mediaProfile unset`);
    }
    const stop = ctx.constructorParams.stopOnEndOfStream;
    if (stop !== undefined && stop !== null && typeof stop !== 'boolean') throw KurentoErrors.marshall("'stopOnEndOfStream' parameter should be a boolean");
    this.stopOnEndOfStream = stop === true;
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'record':
        await this.record();
        return null;
      case 'stopAndWait':
        await this.stopMedia();
        await this.uploading;
        return null;
      default:
        return super.invoke(operation, params);
    }
  }

  private async record(): Promise<void> {
    if (this.state === 'START') return;
    if (this.state === 'STOP') {
      let fh;
      let spool: { path: string; remove: () => Promise<void> } | undefined;
      try {
        if (this.location.kind === 'file') {
          fh = await openRecordingFile(this.location.path, this.files);
        } else {
          const opened = await openUploadSpool();
          fh = opened.fh;
          spool = opened;
        }
      } catch (err) {
        const why = err instanceof MediaSourceError ? err.message : 'cannot open the recording file';
        throw KurentoErrors.illegalParam(`RecorderEndpoint: ${why}`);
      }
      if (this.released || this.state !== 'STOP') {
        // released while the file was being opened: leave a valid (empty) WAV, not a truncated file
        await new WavRecordingWriter(fh, TELEPHONE_RATE, () => undefined).close();
        await spool?.remove();
        if (this.released) throw KurentoErrors.objectNotFound(this.id);
        return;
      }
      this.spool = spool;
      this.writer = new WavRecordingWriter(fh, TELEPHONE_RATE, (err) => this.writeFailed(err));
      this.recordedMs = 0;
      this.cursor = 0;
      this.ctx.logger.info('recording started', { element: this.id });
    }
    this.runStartedAt = this.clock.now();
    this.anchor = undefined;
    this.flushTimer ??= this.clock.setInterval(() => this.flushTick(), FLUSH_MS);
    this.setState('START');
    this.emitEvent('Recording');
  }

  /** Samples the file should hold by now on the recording's clock. */
  private clockSamples(now = this.clock.now()): number {
    const ms = this.recordedMs + (this.state === 'START' ? now - this.runStartedAt : 0);
    return Math.floor((ms * TELEPHONE_RATE) / 1000);
  }

  /** Silence up to `target` samples. */
  private fillTo(target: number): void {
    const w = this.writer;
    if (!w || target <= this.cursor) return;
    const n = target - this.cursor;
    if (!w.fits(n)) return this.sizeLimitReached();
    w.append(undefined, n);
    this.cursor = target;
  }

  /**
   * A packet of the connected source: placed in the file by its RTP timestamp relative to the stream's
   * anchor (so jitter neither inserts silence nor shifts the audio, and lost packets leave silence of
   * their exact length), the anchor being set at the recording's clock for a new stream (SSRC), after
   * a resume, or when the timestamps stray more than a second from the clock. Audio overlapping what
   * the file already holds (duplicates, very late packets) is cut; audio more than a second ahead of
   * the clock is dropped.
   */
  override deliverFromPipeline(packet: Buffer, codec: string): void {
    super.deliverFromPipeline(packet, codec); // flow-in state and counts; a recorder has no leg to send to
    const w = this.writer;
    if (this.state !== 'START' || !w) return;
    if (codec !== 'pcmu/8000' && codec !== 'pcma/8000') return;
    const payload = rtpPayload(packet);
    if (!payload || payload.length === 0) return;
    const n = Math.min(payload.length, MAX_PACKET_SAMPLES);
    const clock = this.clockSamples();
    if (this.cursor > clock + AHEAD_SAMPLES) {
      this.packetsDroppedAhead++;
      return;
    }
    const ts = packet.readUInt32BE(4);
    const ssrc = packet.readUInt32BE(8);
    let at: number | undefined;
    const a = this.anchor;
    if (a && a.ssrc === ssrc) {
      at = a.at + ((ts - a.ts) | 0);
      if (at > clock + REANCHOR_SAMPLES || at + n < clock - REANCHOR_SAMPLES) at = undefined;
    }
    if (at === undefined) {
      at = Math.max(this.cursor, clock - n);
      this.anchor = { ssrc, ts, at };
    }
    const skip = Math.max(0, this.cursor - at);
    if (skip >= n) {
      this.packetsDroppedLate++;
      return;
    }
    this.fillTo(at);
    const count = n - skip;
    if (!w.fits(count)) return this.sizeLimitReached();
    const pcm = this.decodeBuffer.subarray(0, count);
    decodeG711(codec === 'pcmu/8000' ? 'mulaw' : 'alaw', payload.subarray(skip, n), pcm, 0);
    w.append(pcm, count);
    this.cursor += count;
    this.packetsRecorded++;
  }

  private flushTick(): void {
    if (this.state === 'START') this.fillTo(this.clockSamples() - FILL_BEHIND_SAMPLES);
    void this.writer?.flush();
  }

  sourceReachedEndOfStream(): void {
    if (this.stopOnEndOfStream && this.state !== 'STOP') void this.stopMedia();
  }

  protected override async pauseMedia(): Promise<void> {
    if (this.state !== 'START') return;
    const now = this.clock.now();
    this.fillTo(this.clockSamples(now));
    this.recordedMs += now - this.runStartedAt;
    this.setState('PAUSE');
    this.emitEvent('Paused');
  }

  protected override async stopMedia(): Promise<void> {
    if (this.state === 'STOP' && !this.writer) return;
    await this.finish();
    this.setState('STOP');
    this.emitEvent('Stopped');
  }

  /**
   * Brings the file to the recording's clock, finalises and closes it. Idempotent: a second caller (a
   * release arriving while a stop is closing the file) waits for the same close.
   */
  private finish(): Promise<void> {
    const w = this.writer;
    if (!w) return this.finishing ?? Promise.resolve();
    if (this.state === 'START') this.fillTo(this.clockSamples());
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    this.writer = undefined;
    const durationMs = Math.round((this.cursor * 1000) / TELEPHONE_RATE);
    const spool = this.spool;
    this.spool = undefined;
    this.finishing = w.close().then(() => {
      this.ctx.logger.info('recording finished', { element: this.id, durationMs, packetsRecorded: this.packetsRecorded, packetsDroppedAhead: this.packetsDroppedAhead });
      if (spool && this.location.kind === 'http') this.upload(this.location.url, spool);
    });
    return this.finishing;
  }

  /**
   * Sends a complete recording to the element's http(s):// URI (one POST, as KMS's curlhttpsink),
   * then deletes the temporary file. It runs after `stop` has answered (KMS's `stop` does not wait for
   * its sink either; `stopAndWait` does) and after a release; a failure is an `Error` event
   * (`RESOURCE_ERROR_WRITE`), not a failed operation.
   */
  private upload(url: URL, spool: { path: string; remove: () => Promise<void> }): void {
    const previous = this.uploading ?? Promise.resolve();
    const run = previous
      .then(() => uploadRecording(url, spool.path, this.files))
      .then(
        () => {
          this.ctx.logger.info('recording uploaded', { element: this.id, host: url.host });
        },
        (err: unknown) => {
          const why = err instanceof Error ? err.message : String(err);
          this.ctx.logger.warn('recording upload failed', { element: this.id, error: why });
          if (!this.released) this.emitError('RESOURCE_ERROR_WRITE', `Recording not stored: ${why}`, 0);
        },
      )
      .finally(() => spool.remove().catch(() => undefined));
    this.uploading = run;
    void run.finally(() => {
      if (this.uploading === run) this.uploading = undefined;
    });
  }

  private writeFailed(err: Error): void {
    this.ctx.logger.warn('recording write failed', { element: this.id, error: err.message });
    this.emitError('RESOURCE_ERROR_WRITE', `Recording stopped: the file could not be written (${(err as NodeJS.ErrnoException).code ?? err.message})`, 0);
    void this.stopMedia();
  }

  private sizeLimitReached(): void {
    this.emitError('RESOURCE_ERROR_NO_SPACE_LEFT', 'Recording stopped: a WAV file holds at most 4 GiB', 0);
    void this.stopMedia();
  }

  override describeForStats(): Record<string, unknown> {
    return {
      ...super.describeForStats(),
      recordedMs: Math.round((this.cursor * 1000) / TELEPHONE_RATE),
      packetsRecorded: this.packetsRecorded,
      packetsDroppedAhead: this.packetsDroppedAhead,
      packetsDroppedLate: this.packetsDroppedLate,
    };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    await this.finish();
    await super.teardown(options);
  }
}

/** The payload of a valid RTP packet (CSRCs, header extension and padding skipped), or undefined. */
function rtpPayload(p: Buffer): Buffer | undefined {
  if (p.length < 12) return undefined;
  let offset = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.length < offset + 4) return undefined;
    offset += 4 + p.readUInt16BE(offset + 2) * 4;
  }
  let end = p.length;
  if (p[0]! & 0x20) end -= p[p.length - 1]!;
  return offset <= end ? p.subarray(offset, end) : undefined;
}

export const recorderEndpointType: ElementType = {
  type: 'RecorderEndpoint',
  hierarchy: URI_ENDPOINT_HIERARCHY,
  events: [...URI_ENDPOINT_EVENTS, 'Recording', 'Paused', 'Stopped'],
  create: (ctx) => new RecorderEndpoint(ctx),
};
