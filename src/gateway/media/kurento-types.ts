import { EventEmitter } from 'node:events';

/**
 * The part of kurento-client 7.3.0's API the gateway uses (the package ships no TypeScript types).
 * Every method returns a promise when called without a callback.
 */
export interface KMediaObject extends EventEmitter {
  readonly id: string;
  release(): Promise<void>;
}

export interface KMediaElement extends KMediaObject {
  connect(sink: KMediaElement, mediaType?: 'AUDIO' | 'VIDEO' | 'DATA'): Promise<void>;
  getMediaState(): Promise<string>;
}

export interface KSdpEndpoint extends KMediaElement {
  processOffer(offer: string): Promise<string>;
  processAnswer(answer: string): Promise<string>;
  generateOffer(): Promise<string>;
}

export interface KWebRtcEndpoint extends KSdpEndpoint {
  gatherCandidates(): Promise<void>;
}

export interface KMediaPipeline extends KMediaObject {
  create(type: 'WebRtcEndpoint' | 'RtpEndpoint', params?: Record<string, unknown>): Promise<KSdpEndpoint>;
}

export interface KClient extends EventEmitter {
  create(type: 'MediaPipeline'): Promise<KMediaPipeline>;
  getMediaobjectById(id: string): Promise<KMediaObject>;
  close(): void;
  readonly sessionId?: string;
  readonly _re?: EventEmitter;
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
  candidate?: { candidate: string; sdpMid?: string; sdpMLineIndex?: number };
}
