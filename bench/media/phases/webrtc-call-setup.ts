/**
 * One gateway-shaped WebRTC↔RTP call through ferry media, negotiated through the real kurento-client the
 * way a gateway does it: MediaPipeline, WebRtcEndpoint + RtpEndpoint connected both ways, phone offer ->
 * RtpEndpoint.processOffer, browser offer -> WebRtcEndpoint.processOffer, gatherCandidates with
 * IceCandidateFound trickled to the browser, until the browser's PeerConnection is connected (ICE + DTLS).
 * Shared by bench:media's ferry-webrtc target and bench/media/webrtc-call-memory.ts; the latter also reads
 * the phase marks (ms since the pipeline create was sent).
 */
import type { LoadWorker } from '../load/load-worker';
import type { Phone, PhonePool } from '../load/phone-pool';
import type { KurentoClientInstance, KurentoIceCandidate, KurentoPipeline } from '../kurento/kurento-types';
import { audioTarget, phoneSdp } from '../sdp/phone-sdp';

/** When each step of a call's set-up finished, in ms since the MediaPipeline create was sent. */
export interface WebRtcCallMarks {
  pipeline?: number;
  endpoints?: number;
  connected?: number;
  rtpOffer?: number;
  processOffer?: number;
  /** the browser had applied ferry's answer (its own clock, epoch-aligned) */
  browserAnswer?: number;
  gatherCandidates?: number;
  firstCandidate?: number;
  /** the browser's ICE connection state 'connected' (its own clock, epoch-aligned) */
  iceConnected?: number;
  /** the browser's PeerConnection 'connected' (ICE + DTLS) */
  dtlsConnected?: number;
  /** the browser worker answered waitConnected (what bench:media times as the call's set-up) */
  done?: number;
  /** ferry media's ICE CONNECTED (the event's timestampMillis: ferry's own clock, ms resolution) */
  serverIceConnected?: number;
  /** ferry media's DTLS CONNECTED, SRTP keyed (the event's timestampMillis) */
  serverDtlsConnected?: number;
}

/** What the browser worker's waitConnected answers (epoch ms on its clock; absent from older workers). */
export interface BrowserConnectTimes {
  iceConnectedAt?: number;
  connectedAt?: number;
  /** when the browser had applied ferry's answer (an 'answer' request that also waited for the connection) */
  answeredAt?: number;
}

export interface WebRtcCallParts {
  kurento: KurentoClientInstance;
  phones: PhonePool;
  phone: Phone;
  browser: LoadWorker;
  /** the browser's stream id (its offer was already made with this id) */
  streamId: number;
  offer: string;
  connectTimeoutMs: number;
  /** called as soon as the pipeline exists (so a failed set-up still gets released) */
  onPipeline?: (pipeline: KurentoPipeline) => void;
  marks?: WebRtcCallMarks;
  /**
   * Also subscribe to the WebRtcEndpoint's IceComponentStateChanged and DtlsConnectionStateChange and mark
   * when ferry media itself saw ICE and DTLS connected (two more subscribe requests per call).
   */
  serverMarks?: boolean;
}

/** Epoch ms with sub-ms resolution, comparable across processes on one host. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export async function setUpWebRtcCall(p: WebRtcCallParts): Promise<void> {
  const t0 = epochMs();
  const marks = p.marks;
  const mark = (k: keyof WebRtcCallMarks): void => {
    if (marks) marks[k] = epochMs() - t0;
  };
  const pipeline = await p.kurento.create('MediaPipeline');
  p.onPipeline?.(pipeline);
  mark('pipeline');
  const [webrtc, rtp] = await Promise.all([pipeline.create('WebRtcEndpoint'), pipeline.create('RtpEndpoint')]);
  mark('endpoints');
  webrtc.on('IceCandidateFound', (ev) => {
    const c = ev.candidate as KurentoIceCandidate | undefined;
    if (!c?.candidate) return;
    if (marks && marks.firstCandidate === undefined) mark('firstCandidate');
    p.browser
      .request({ op: 'candidate', streamId: p.streamId, candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null })
      .catch(() => undefined);
  });
  if (marks && p.serverMarks) {
    // ferry's own time of the state change: the event's timestampMillis (epoch ms), not when it got here
    const serverAt = (ev: Record<string, unknown>): number => {
      const at = Number(ev.timestampMillis);
      return Number.isFinite(at) && at > 0 ? at - t0 : epochMs() - t0;
    };
    webrtc.on('IceComponentStateChanged', (ev) => {
      if (ev.state === 'CONNECTED' && marks.serverIceConnected === undefined) marks.serverIceConnected = serverAt(ev);
    });
    webrtc.on('DtlsConnectionStateChange', (ev) => {
      if (ev.state === 'CONNECTED' && marks.serverDtlsConnected === undefined) marks.serverDtlsConnected = serverAt(ev);
    });
  }
  // Independent requests go out together, as the gateway sends them (src/gateway/kurento/call-media.ts): the two
  // connects, the phone's negotiation and the browser's. Once ferry answered the browser's offer, the answer goes to
  // the browser (one request that returns once the browser is connected, with the time it had applied the answer)
  // while gatherCandidates goes to ferry. Each mark is when its own step was answered.
  const connected = Promise.all([webrtc.connect(rtp), rtp.connect(webrtc)]).then(() => mark('connected'));
  const phoneReady = rtp.processOffer(phoneSdp(p.phone.port, p.phone.streamId)).then(async (phoneAnswer) => {
    const toPhone = audioTarget(phoneAnswer);
    await p.phones.target(p.phone, toPhone.host, toPhone.port);
    mark('rtpOffer');
  });
  const browserConnected = webrtc.processOffer(p.offer).then((answer) => {
    mark('processOffer');
    const gathering = webrtc.gatherCandidates().then(() => mark('gatherCandidates'));
    const up = p.browser.request<BrowserConnectTimes | undefined>({ op: 'answer', streamId: p.streamId, sdp: answer, waitConnectedMs: p.connectTimeoutMs });
    return Promise.all([up, gathering]).then(([times]) => times);
  });
  const [times] = await Promise.all([browserConnected, connected, phoneReady]);
  mark('done');
  if (marks && times?.answeredAt !== undefined) marks.browserAnswer = times.answeredAt - t0;
  if (marks && times?.iceConnectedAt !== undefined) marks.iceConnected = times.iceConnectedAt - t0;
  if (marks && times?.connectedAt !== undefined) marks.dtlsConnected = times.connectedAt - t0;
}
