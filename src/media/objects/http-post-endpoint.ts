import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { TimerHandle } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import { TELEPHONE_RATE } from '../media-files/telephone-audio';
import { DEFAULT_HTTP_POST_MAX_BYTES, HTTP_POST_PATH, httpPostUrlBase } from '../http-post/http-post-settings';
import { UploadBody, UploadRefused } from '../http-post/upload-body';
import type { ElementType } from './element-type';
import { G711Pacer, SAMPLES_PER_PACKET, type PacedFrame } from './g711-pacer';
import { MediaElement, type MediaType } from './media-element';
import type { OperationParams } from './media-object';
import type { ElementContext } from './object-context';

/** `describe` hierarchy of HttpPostEndpoint (nearest ancestor first). */
const HTTP_POST_HIERARCHY: readonly string[] = ['kurento.HttpEndpoint', 'kurento.SessionEndpoint', 'kurento.Endpoint', 'kurento.MediaElement', 'kurento.MediaObject'];

/** The 7.x IDL's events of HttpPostEndpoint (MediaElement's, SessionEndpoint's, its own EndOfStream). */
const HTTP_POST_EVENTS: readonly string[] = [
  'Error',
  'ElementConnected',
  'ElementDisconnected',
  'MediaFlowInStateChanged',
  'MediaFlowOutStateChanged',
  'MediaTranscodingStateChanged',
  'MediaSessionStarted',
  'MediaSessionTerminated',
  'EndOfStream',
];

/**
 * The operation ferry media's HTTP listener (src/media/http-post/http-post-route.ts) drives an upload
 * with. Its `token` is bytes: a JSON-RPC client cannot send bytes, so it cannot reach it.
 */
export const HTTP_POST_OPERATION = 'ferry.httpPostUpload';

/** What the HTTP listener gets back from each step of an upload. */
export interface UploadStepResult {
  /** 100: go on; else the HTTP status to answer. */
  status: number;
  message?: string;
  session?: number;
  /** open: how long the body may pause before the POST is given up (the disconnection timeout). */
  idleMs?: number;
}

/** Frames buffered before playing starts (or starts again after running dry): 60 ms against upload jitter. */
const PREBUFFER_FRAMES = 3;

type SessionState = 'waiting' | 'posting' | 'between' | 'terminated';

/**
 * Kurento's HttpPostEndpoint for audio: a media source fed by HTTP POSTs to its URL (`getUrl`,
 * `http://<address>:<control port>/ferry-http-post/<id>.<secret>`). Each POST's body (raw, or the file
 * part of a multipart/form-data form) is WAV (as a PlayerEndpoint's file) or raw G.711 (by its
 * Content-Type); it is decoded as it arrives and played in real time into the connected AUDIO sinks
 * by the same pacer as a PlayerEndpoint (g711-pacer.ts).
 *
 * As KMS: the first POST raises `MediaSessionStarted`; when a POST ends (completely or cut), the
 * endpoint waits `disconnectionTimeout` seconds for another, then raises `MediaSessionTerminated` and
 * its URL is gone (404; `getUrl` then answers an empty string). A POST's audio, once played to its end,
 * raises `EndOfStream`. One POST at a time (another: 409). Audio it cannot play: 415 and an `Error`
 * event (INVALID_MEDIA). `useEncodedMedia` is accepted and has no effect.
 */
export class HttpPostEndpoint extends MediaElement {
  private readonly secret = randomBytes(32);
  private readonly path: string;
  private readonly disconnectionTimeoutS: number;
  private state: SessionState = 'waiting';
  private sessionStarted = false;
  private session = 0;
  private body: UploadBody | undefined;
  private expiry: TimerHandle | undefined;
  /** Decoded audio not played yet: whole chunks, the first read from `readAt`. */
  private readonly queue: Int16Array[] = [];
  private readAt = 0;
  private queued = 0;
  /** No POST is under way: what is queued is all there will be until the next. */
  private inputEnded = true;
  private readonly frame = new Int16Array(SAMPLES_PER_PACKET);
  private readonly pacer: G711Pacer;
  private posts = 0;
  private bytesReceived = 0;
  /** Samples waiting to be played at most (the upload size cap's worth): more is refused 413. */
  private maxQueued = DEFAULT_HTTP_POST_MAX_BYTES;
  private overflowed = false;
  /** Audio was played since the last EndOfStream (a run the pacer stopped when it ran dry counts). */
  private playedSinceEnd = false;

  constructor(ctx: ElementContext) {
    super(ctx, 'HttpPostEndpoint');
    const p = ctx.constructorParams;
    const timeout = p.disconnectionTimeout;
    if (timeout !== undefined && timeout !== null && (typeof timeout !== 'number' || !Number.isInteger(timeout))) {
      throw KurentoErrors.marshall("'disconnectionTimeout' parameter should be an integer");
    }
    if (typeof timeout === 'number' && timeout < 0) throw KurentoErrors.marshall("'disconnectionTimeout' parameter should be a non-negative integer");
    const encoded = p.useEncodedMedia;
    if (encoded !== undefined && encoded !== null && typeof encoded !== 'boolean') throw KurentoErrors.marshall("'useEncodedMedia' parameter should be a boolean");
    this.disconnectionTimeoutS = typeof timeout === 'number' ? timeout : 2;
    this.path = `${HTTP_POST_PATH}${Buffer.from(ctx.id).toString('base64url')}.${this.secret.toString('base64url')}`;
    this.pacer = new G711Pacer(ctx.clock, { next: () => this.nextFrame() }, {
      flowing: (flowing) => this.emitEvent('MediaFlowOutStateChanged', { state: flowing ? 'FLOWING' : 'NOT_FLOWING', padName: 'default', mediaType: 'AUDIO' }),
      ended: () => this.endOfStream(),
    });
  }

  override negotiatedCodecKeys(): string[] {
    return ['pcmu/8000', 'pcma/8000'];
  }

  override connectTo(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.connectTo(sink, mediaType);
    this.pacer.followSink(sink, mediaType, true);
  }

  override disconnectFrom(sink: MediaElement, mediaType: MediaType | undefined): void {
    super.disconnectFrom(sink, mediaType);
    this.pacer.followSink(sink, mediaType, false);
  }

  /** Nothing is played into it: packets from a source connected to it are counted and dropped. */
  override deliverFromPipeline(): void {}

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    if (operation === HTTP_POST_OPERATION && params.token instanceof Uint8Array) return this.uploadStep(params);
    switch (operation) {
      case 'getUrl':
        return this.state === 'terminated' ? '' : `${httpPostUrlBase(this.ctx.config)}${this.path}`;
      case 'isMediaFlowingOut':
        return (params.mediaType === undefined || params.mediaType === null || params.mediaType === 'AUDIO') && this.pacer.flowing;
      case 'getGstreamerDot':
      case 'getElementGstreamerDot':
        return `digraph "${this.id}" {}`;
      default:
        return super.invoke(operation, params);
    }
  }

  // ---- the upload, step by step (http-post-route.ts) -------------------------------------------

  private async uploadStep(params: OperationParams): Promise<UploadStepResult> {
    const token = params.token as Uint8Array;
    const expected = Buffer.from(this.path.slice(this.path.lastIndexOf('.') + 1), 'base64url');
    if (token.length !== expected.length || !timingSafeEqual(token, expected) || this.state === 'terminated' || this.released) return { status: 404 };
    switch (params.step) {
      case 'open':
        if (typeof params.maxBytes === 'number' && params.maxBytes > 0) this.maxQueued = params.maxBytes;
        return this.open(typeof params.contentType === 'string' ? params.contentType : undefined);
      case 'data':
        if (params.session !== this.session || this.state !== 'posting' || !(params.bytes instanceof Uint8Array)) return { status: 409, message: 'this upload is no longer the current one' };
        return this.data(Buffer.from(params.bytes.buffer, params.bytes.byteOffset, params.bytes.byteLength));
      case 'end':
        if (params.session !== this.session || this.state !== 'posting') return { status: 409, message: 'this upload is no longer the current one' };
        return this.end(params.complete === true);
      default:
        return { status: 400 };
    }
  }

  private open(contentType: string | undefined): UploadStepResult {
    if (this.state === 'posting') return { status: 409, message: 'another upload to this endpoint is under way (one at a time)' };
    let body: UploadBody;
    try {
      body = new UploadBody(contentType, (samples) => this.enqueue(samples));
    } catch (err) {
      return this.refuse(err);
    }
    this.expiry?.cancel();
    this.expiry = undefined;
    this.body = body;
    this.session++;
    this.posts++;
    this.state = 'posting';
    this.inputEnded = false;
    this.ctx.logger.info('http post upload started', { element: this.id, contentType: contentType ?? null });
    if (!this.sessionStarted) {
      this.sessionStarted = true;
      this.emitEvent('MediaSessionStarted');
    }
    return { status: 100, session: this.session, idleMs: Math.max(1, this.disconnectionTimeoutS) * 1000 };
  }

  private data(bytes: Buffer): UploadStepResult {
    this.bytesReceived += bytes.length;
    try {
      this.body!.push(bytes);
    } catch (err) {
      this.finish(false);
      return this.refuse(err);
    }
    if (this.overflowed) return this.overflow();
    return { status: 100 };
  }

  private async end(complete: boolean): Promise<UploadStepResult> {
    const body = this.body!;
    if (!complete) {
      this.finish(false);
      return { status: 400, message: 'the upload was cut off' };
    }
    try {
      const { samples } = await body.end();
      if (this.overflowed) return this.overflow();
      this.finish(true);
      return { status: 200, message: `received ${Math.round((samples * 1000) / TELEPHONE_RATE)} ms of audio` };
    } catch (err) {
      this.finish(false);
      return this.refuse(err);
    }
  }

  /** The POST is over: what was decoded plays to its end; the session ends if no POST follows in time. */
  private finish(complete: boolean): void {
    if (this.state !== 'posting') return;
    this.body = undefined;
    this.state = 'between';
    this.inputEnded = true;
    this.ctx.logger.info('http post upload ended', { element: this.id, complete, queuedMs: Math.round((this.queued * 1000) / TELEPHONE_RATE) });
    if (!this.pacer.running) {
      if (this.queued > 0) this.pacer.start();
      else if (this.playedSinceEnd) this.endOfStream(); // it ran dry just before the end of the body
    }
    this.expiry = this.clock.setTimeout(() => this.terminate(), this.disconnectionTimeoutS * 1000);
  }

  private terminate(): void {
    this.expiry = undefined;
    if (this.state !== 'between') return;
    this.state = 'terminated';
    this.ctx.logger.info('http post session terminated', { element: this.id, posts: this.posts });
    if (this.sessionStarted) this.emitEvent('MediaSessionTerminated');
  }

  /** More audio waiting than the cap: posted faster than it plays, POST after POST. */
  private overflow(): UploadStepResult {
    this.overflowed = false;
    this.finish(false);
    const seconds = Math.round(this.maxQueued / TELEPHONE_RATE);
    this.ctx.logger.warn('http post upload refused', { element: this.id, status: 413, reason: 'audio waiting to be played over the cap' });
    return { status: 413, message: `more than ${seconds} s of audio would be waiting to be played (FERRY_MEDIA_HTTP_POST_MAX_BYTES)` };
  }

  private refuse(err: unknown): UploadStepResult {
    const r = err instanceof UploadRefused ? err : new UploadRefused(415, 'the upload could not be read as audio');
    this.ctx.logger.warn('http post upload refused', { element: this.id, status: r.status, reason: r.message });
    if (r.status === 415) this.emitError('INVALID_MEDIA', `Invalid Media: ${r.message}`, 0);
    return { status: r.status, message: r.message };
  }

  // ---- playing ---------------------------------------------------------------------------------

  private enqueue(samples: Int16Array): void {
    if (samples.length === 0 || this.released) return;
    if (this.queued + samples.length > this.maxQueued) {
      this.overflowed = true;
      return;
    }
    this.queue.push(samples);
    this.queued += samples.length;
    if (!this.pacer.running && this.queued >= PREBUFFER_FRAMES * SAMPLES_PER_PACKET) this.pacer.start();
  }

  private endOfStream(): void {
    this.playedSinceEnd = false;
    this.ctx.logger.info('http post endpoint end of stream', { element: this.id, packetsSent: this.pacer.packetsSent });
    this.emitEvent('EndOfStream');
  }

  private nextFrame(): PacedFrame | 'wait' | 'end' {
    if (this.queued === 0) return this.inputEnded ? 'end' : 'wait';
    if (this.queued < SAMPLES_PER_PACKET && !this.inputEnded) return 'wait';
    this.frame.fill(0);
    let filled = 0;
    while (filled < SAMPLES_PER_PACKET && this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = Math.min(SAMPLES_PER_PACKET - filled, head.length - this.readAt);
      this.frame.set(head.subarray(this.readAt, this.readAt + n), filled);
      filled += n;
      this.readAt += n;
      if (this.readAt >= head.length) {
        this.queue.shift();
        this.readAt = 0;
      }
    }
    this.queued -= filled;
    this.playedSinceEnd = true;
    return { audio: this.frame, offset: 0 };
  }

  override describeForStats(): Record<string, unknown> {
    return {
      ...super.describeForStats(),
      httpPost: { session: this.state, posts: this.posts, bytesReceived: this.bytesReceived, queuedMs: Math.round((this.queued * 1000) / TELEPHONE_RATE) },
      packetsSent: this.pacer.packetsSent,
    };
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    this.expiry?.cancel();
    this.expiry = undefined;
    this.state = 'terminated';
    this.body = undefined;
    this.pacer.dispose();
    this.queue.length = 0;
    this.queued = 0;
    await super.teardown(options);
  }
}

export const httpPostEndpointType: ElementType = {
  type: 'HttpPostEndpoint',
  hierarchy: HTTP_POST_HIERARCHY,
  events: HTTP_POST_EVENTS,
  create: (ctx) => new HttpPostEndpoint(ctx),
};
