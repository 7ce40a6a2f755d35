import { EventEmitter } from 'node:events';

/**
 * The part of kurento-client 7.3.0's API the gateway uses (the package ships no TypeScript types).
 * Every method returns a promise when called without a callback.
 */
export interface KMediaObject extends EventEmitter {
  readonly id: string;
  /** with a callback its error is ours only (the promise form also prints it with a stack trace) */
  release(callback?: (err?: Error | null) => void): Promise<void>;
  /**
   * A cheap request on the object; with a callback, since the promise form of kurento-client's
   * generated getters swallows errors. Fails with "not found" when the server no longer has it.
   */
  getName(callback: (err: Error | null | undefined, name?: string) => void): void;
}

export interface KMediaElement extends KMediaObject {
  /** callback form only, as the SDP methods below */
  connect(sink: KMediaElement, callback: KCallback<void>): void;
  disconnect(sink: KMediaElement, callback: KCallback<void>): void;
}

/** kurento-client's completion callback: the error is the caller's alone (no console trace, nothing swallowed). */
export type KCallback<T> = (err: Error | null | undefined, result?: T) => void;

/**
 * The SDP methods take a callback: their promise form (no callback) prints a failure with
 * `console.trace` and then RESOLVES with undefined, so an error could be neither caught nor kept out
 * of the log. Call them through `kurentoCall` (./kurento-call.ts).
 */
export interface KSdpEndpoint extends KMediaElement {
  processOffer(offer: string, callback: KCallback<string>): void;
  processAnswer(answer: string, callback: KCallback<string>): void;
  generateOffer(callback: KCallback<string>): void;
}

export interface KWebRtcEndpoint extends KSdpEndpoint {
  gatherCandidates(callback: KCallback<void>): void;
}

/** kurento-client's PlayerEndpoint (audio files), as the transfer's ring-back uses it */
export interface KPlayerEndpoint extends KMediaElement {
  play(callback: KCallback<void>): void;
}

export interface KMediaPipeline extends KMediaObject {
  create(type: 'WebRtcEndpoint' | 'RtpEndpoint', params?: Record<string, unknown>): Promise<KSdpEndpoint>;
  create(type: 'PlayerEndpoint', params: { uri: string }): Promise<KPlayerEndpoint>;
}

export interface KClient extends EventEmitter {
  create(type: 'MediaPipeline'): Promise<KMediaPipeline>;
  getMediaobjectById(id: string): Promise<KMediaObject>;
  close(): void;
  readonly sessionId?: string;
  readonly _re?: KReconnector;
}

/** kurento-client's reconnector (reconnect-core): emits 'reconnect' per attempt, 'connect', 'disconnect', 'error' */
export interface KReconnector extends EventEmitter {
  readonly connected: boolean;
  /** false: a lost transport is not retried by the reconnector itself */
  reconnect: boolean;
  /** start a new attempt now (and restart its own back-off) */
  reset(): void;
  /** close the transport now (with `reconnect` false: for good) */
  disconnect(): void;
  /** the current transport: websocket-stream's duplex stream (its `socket` is the ws WebSocket) */
  readonly _connection?: unknown;
}

export type KurentoFactory = (url: string, options?: Record<string, unknown>) => PromiseLike<KClient>;

/** data of a media event as kurento-client hands it to listeners; `reason` is ferry media's addition */
export interface KEventData {
  source?: string;
  type?: string;
  newState?: string;
  oldState?: string;
  state?: string;
  reason?: string;
  /** ferry media's addition to a `control-release`: who released (`released-by-other-session`) */
  detail?: string;
  candidate?: { candidate: string; sdpMid?: string; sdpMLineIndex?: number };
}
