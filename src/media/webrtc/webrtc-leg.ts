import type { MediaLeg } from '../relay/media-leg';

/**
 * ferry's own WebRTC-leg interface: what a WebRtcEndpoint needs from a WebRTC stack (ICE agent, DTLS-SRTP,
 * SDP offer/answer for one audio m-line). `WeriftLeg` implements it on werift; a node-datachannel leg could
 * implement the same interface without the element noticing. Packets still cross as plain RTP (MediaLeg).
 */

/** A trickle candidate as the browser and kurento-client carry it (RTCIceCandidateInit). */
export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

/** Kurento's IceComponentState enum. */
export type IceComponentState = 'DISCONNECTED' | 'GATHERING' | 'CONNECTING' | 'CONNECTED' | 'READY' | 'FAILED';

/** Kurento's DtlsConnectionState enum. */
export type DtlsConnectionState = 'NEW' | 'CONNECTING' | 'CONNECTED' | 'CLOSED' | 'FAILED';

export type G711Codec = 'PCMU' | 'PCMA';

/** What the SDP exchange settled for the audio m-line, so the relay can map payload types and SSRCs. */
export interface NegotiatedAudio {
  codec: { name: G711Codec; payloadType: number; clockRate: 8000 };
  telephoneEvent: { payloadType: number } | undefined;
  /** The SSRC this leg signalled and sends with (the leg stamps it on every packet it sends). */
  localSsrc: number;
  /** Direction of our m-line, from our side. */
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

export interface SelectedCandidatePair {
  localCandidate: string;
  remoteCandidate: string;
}

export interface WebRtcLegEvents {
  rtp: [packet: Buffer];
  rtcp: [packet: Buffer, info: { bye: boolean }];
  connected: [];
  signal: [reason: import('../relay/media-leg').LegEndReason];
  closed: [];
  /** A local ICE candidate (emitted only after gatherCandidates(), as in KMS). */
  'local-candidate': [candidate: IceCandidateInit];
  /** Gathering finished (after gatherCandidates()). */
  'gathering-done': [];
  'ice-state': [state: IceComponentState];
  'candidate-pair': [pair: SelectedCandidatePair];
  'dtls-state': [state: DtlsConnectionState];
}

export interface WebRtcLeg extends MediaLeg {
  readonly kind: 'webrtc';
  /** Apply a remote offer and return our answer (audio sendrecv, `preferred` G.711 first, telephone-event). */
  processOffer(offer: string, preferred: G711Codec): Promise<string>;
  /** Create our offer (audio sendrecv, G.711 + telephone-event). */
  generateOffer(preferred: G711Codec): Promise<string>;
  /** Apply the remote answer to our offer. */
  processAnswer(answer: string): Promise<void>;
  /** Add a remote trickle candidate; may be called before the remote description is known (it is buffered). */
  addRemoteCandidate(candidate: IceCandidateInit): Promise<void>;
  /** Start reporting local candidates ('local-candidate' ... 'gathering-done'). */
  gatherCandidates(): Promise<void>;
  localDescription(): string | undefined;
  remoteDescription(): string | undefined;
  negotiated(): NegotiatedAudio | undefined;
  iceState(): IceComponentState;
  dtlsState(): DtlsConnectionState;
  selectedPair(): SelectedCandidatePair | undefined;
}
