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
  settleBufferDeprecationCheck();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('kurento-client') as KurentoClientFactory;
}

/** Connect the real kurento-client to a media server (fail fast instead of reconnecting forever). */
export async function connectKurento(wsUri: string): Promise<KurentoClientInstance> {
  const kurento = loadKurentoClient();
  return kurento(wsUri, { failAfter: 3, request_timeout: 30000 });
}

/**
 * kurento-client's transport (websocket-stream) calls the deprecated `new Buffer()` for every frame it receives.
 * Until the DEP0005 warning has been emitted once, Node decides for each such call (its first 10 000) whether it
 * comes from inside node_modules by capturing a stack trace: ≈ 18 µs a frame, ≈ 10 % of the orchestrator's CPU
 * while it sets calls up. One call from outside node_modules, with deprecation warnings silenced for that
 * moment, settles it: Node marks the warning as emitted (nothing is printed) and stops checking.
 */
function settleBufferDeprecationCheck(): void {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    // the deprecated constructor on purpose: this call is the one that settles Node's check
    new (Buffer as unknown as new (size: number) => Buffer)(0);
  } finally {
    process.noDeprecation = quiet;
  }
}
