/**
 * The slice of the npm kurento-client 7.3.0 API the benchmark drives (the package ships no
 * TypeScript types). Loaded with require() so no ambient module declaration is needed.
 */
export interface KurentoIceCandidate {
  candidate: string;
  sdpMid: string | null;
  sdpMLineIndex: number | null;
}

export interface KurentoMediaObject {
  readonly id: string;
  release(): Promise<void>;
  on(event: string, listener: (event: Record<string, unknown>) => void): unknown;
}

export interface KurentoEndpoint extends KurentoMediaObject {
  connect(sink: KurentoEndpoint, mediaType?: string): Promise<void>;
  processOffer(sdp: string): Promise<string>;
  gatherCandidates(): Promise<void>;
  addIceCandidate(candidate: unknown): Promise<void>;
}

export interface KurentoPipeline extends KurentoMediaObject {
  create(type: 'WebRtcEndpoint' | 'RtpEndpoint', params?: Record<string, unknown>): Promise<KurentoEndpoint>;
}

export interface KurentoClientInstance {
  create(type: 'MediaPipeline'): Promise<KurentoPipeline>;
  close(): void;
}

export interface KurentoClientFactory {
  (wsUri: string, options?: Record<string, unknown>): Promise<KurentoClientInstance>;
  getComplexType(name: string): (dict: Record<string, unknown>) => unknown;
}

export function loadKurentoClient(): KurentoClientFactory {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('kurento-client') as KurentoClientFactory;
}

/** Connect the real kurento-client to a media server (fail fast instead of reconnecting forever). */
export async function connectKurento(wsUri: string): Promise<KurentoClientInstance> {
  const kurento = loadKurentoClient();
  return kurento(wsUri, { failAfter: 3, request_timeout: 30000 });
}
