import { processFaultCounts } from '../../common/process-faults';
import { EndReason } from '../calls/end-reason';
import { sdpRejectionCounts } from '../calls/sdp-validator';
import { AuthCounters } from '../registrar/auth-counters';
import { Histogram } from './histogram';

/** one leg's quality as the media server measured it over the call (what a call's end observes) */
export interface LegQualityFigures {
  /** interarrival jitter of what the media server received from this party, in seconds */
  jitterSeconds?: number;
  /** packets lost / packets expected from this party, 0..1 */
  lossRatio?: number;
  /** round-trip time to this party from RTCP, in seconds */
  rttSeconds?: number;
}

/** Counters behind GET /metrics (Prometheus text format). */
export class GatewayMetrics {
  private readonly endedByReason = new Map<EndReason, number>();
  private readonly suspectedFalseEndsByReason = new Map<EndReason, number>();
  callsStarted = 0;
  callsAdopted = 0;
  /** authentication failures and lockouts (SipAuthenticator) */
  readonly auth = new AuthCounters();
  /** more metric families rendered by other parts (e.g. webhook delivery), each a list of text lines */
  private readonly sections: (() => string[])[] = [];
  /** INVITE received to the first 180/183 sent back (post-dial delay), per call that rang */
  readonly setupTime = new Histogram('ferry_call_setup_seconds', 'Call set-up time: from the INVITE the gateway received to the first 180/183 it sent back, per call that rang.', [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10]);
  /** answer time: INVITE received to 200 OK (includes the callee's ringing) */
  readonly answerTime = new Histogram('ferry_call_answer_seconds', 'From the INVITE the gateway received to the answer, per answered call (includes the time the callee let it ring).', [0.5, 1, 2, 5, 10, 20, 30, 60]);
  readonly jitter = new Histogram('ferry_call_jitter_seconds', 'Per call leg, at the end of an answered call: interarrival jitter of the audio the media server received from that party (last RTCP figure).', [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2], 'leg');
  readonly loss = new Histogram('ferry_call_packet_loss_ratio', 'Per call leg, at the end of an answered call: packets lost / packets expected from that party over the call (0..1).', [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5], 'leg');
  readonly rtt = new Histogram('ferry_call_rtt_seconds', 'Per call leg, at the end of an answered call: round-trip time to that party from RTCP (legs without an RTT figure are not observed).', [0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1], 'leg');

  addSection(render: () => string[]): void {
    this.sections.push(render);
  }

  /** a call leg's quality at the call's end (one observation per leg and figure) */
  observeLegQuality(leg: 'caller' | 'callee', q: LegQualityFigures): void {
    if (q.jitterSeconds !== undefined) this.jitter.observe(q.jitterSeconds, leg);
    if (q.lossRatio !== undefined) this.loss.observe(q.lossRatio, leg);
    if (q.rttSeconds !== undefined) this.rtt.observe(q.rttSeconds, leg);
  }

  /** set-up and answer times of an ended call (ms epoch times from its record) */
  observeCallTimes(t: { createdAt: number; ringingAt?: number; answeredAt?: number }): void {
    if (t.ringingAt !== undefined) this.setupTime.observe((t.ringingAt - t.createdAt) / 1000);
    if (t.answeredAt !== undefined) this.answerTime.observe((t.answeredAt - t.createdAt) / 1000);
  }

  callEnded(record: { reason?: EndReason; suspectedFalseEnd?: boolean }): void {
    const r = record.reason ?? 'failed';
    this.endedByReason.set(r, (this.endedByReason.get(r) ?? 0) + 1);
    if (record.suspectedFalseEnd) this.suspectedFalseEndsByReason.set(r, (this.suspectedFalseEndsByReason.get(r) ?? 0) + 1);
  }

  /**
   * `store` is the state store's health; when it is down, `activeCalls` and `registrations` are what
   * this gateway knows itself (its own live calls, the bindings it accepted): see docs/gateway.md.
   * `httpRefused`: connections the HTTP and HTTPS listeners closed on accept (HttpConnectionGuard.refused).
   */
  render(g: {
    activeCalls: number; ownedCalls: number; registrations: number; instanceId: string; store?: { up: boolean; errorsTotal: number };
    httpRefused?: { perSource: number; total: number; handshakeRate: number };
  }): string {
    const store = g.store ?? { up: true, errorsTotal: 0 };
    const lines = [
      '# HELP ferry_store_up 1 when the state store answers, 0 while it does not (then the other gauges are what this gateway knows itself).',
      '# TYPE ferry_store_up gauge',
      `ferry_store_up ${store.up ? 1 : 0}`,
      '# HELP ferry_store_errors_total State store operations that failed or timed out (FERRY_STORE_TIMEOUT_MS).',
      '# TYPE ferry_store_errors_total counter',
      `ferry_store_errors_total ${store.errorsTotal}`,
      '# HELP ferry_active_calls Calls not yet ended, in the state store (all gateways).',
      '# TYPE ferry_active_calls gauge',
      `ferry_active_calls ${g.activeCalls}`,
      '# HELP ferry_owned_calls Calls driven by this gateway instance.',
      '# TYPE ferry_owned_calls gauge',
      `ferry_owned_calls{instance="${g.instanceId}"} ${g.ownedCalls}`,
      '# HELP ferry_registrations Live registrations (bindings).',
      '# TYPE ferry_registrations gauge',
      `ferry_registrations ${g.registrations}`,
      '# HELP ferry_calls_started_total Calls this instance created (caller identified, number routed): one per call, the digest-challenged INVITE and its retry are one call.',
      '# TYPE ferry_calls_started_total counter',
      `ferry_calls_started_total ${this.callsStarted}`,
      '# HELP ferry_calls_adopted_total Calls this instance took over from a dead gateway.',
      '# TYPE ferry_calls_adopted_total counter',
      `ferry_calls_adopted_total ${this.callsAdopted}`,
      '# HELP ferry_calls_ended_total Calls ended by this instance, by end reason.',
      '# TYPE ferry_calls_ended_total counter',
    ];
    for (const [reason, n] of [...this.endedByReason].sort()) lines.push(`ferry_calls_ended_total{reason="${reason}"} ${n}`);
    lines.push(
      '# HELP ferry_calls_suspected_false_end_total Calls ended on silence (media-timeout, hold-timeout, ice-failed) whose silent party then answered our BYE at once: probably a mute, hold or blip taken for a dead peer.',
      '# TYPE ferry_calls_suspected_false_end_total counter',
    );
    const falseEnds = [...this.suspectedFalseEndsByReason].sort();
    if (falseEnds.length === 0) lines.push('ferry_calls_suspected_false_end_total 0');
    for (const [reason, n] of falseEnds) lines.push(`ferry_calls_suspected_false_end_total{reason="${reason}"} ${n}`);
    lines.push(
      '# HELP ferry_process_faults_total Faults this gateway process survived (logged, not fatal), by kind.',
      '# TYPE ferry_process_faults_total counter',
    );
    for (const [kind, n] of Object.entries(processFaultCounts())) lines.push(`ferry_process_faults_total{kind="${kind}"} ${n}`);
    const http = g.httpRefused ?? { perSource: 0, total: 0, handshakeRate: 0 };
    lines.push(
      '# HELP ferry_http_connections_refused_total Connections to the page, API and /metrics (HTTP and HTTPS) closed on accept, by the limit that refused them (FERRY_HTTP_MAX_CONNECTIONS_PER_SOURCE, FERRY_HTTP_MAX_CONNECTIONS, FERRY_HTTPS_HANDSHAKES_PER_SOURCE_PER_SECOND).',
      '# TYPE ferry_http_connections_refused_total counter',
      `ferry_http_connections_refused_total{reason="per-source-cap"} ${http.perSource}`,
      `ferry_http_connections_refused_total{reason="connection-cap"} ${http.total}`,
      `ferry_http_connections_refused_total{reason="handshake-rate"} ${http.handshakeRate}`,
    );
    lines.push(...this.auth.render());
    lines.push(
      '# HELP ferry_sdp_rejected_total SDP offers refused with 488 before anything was created, by problem.',
      '# TYPE ferry_sdp_rejected_total counter',
    );
    const sdp = [...sdpRejectionCounts()].sort();
    if (sdp.length === 0) lines.push('ferry_sdp_rejected_total 0');
    for (const [problem, n] of sdp) lines.push(`ferry_sdp_rejected_total{problem="${problem}"} ${n}`);
    for (const h of [this.setupTime, this.answerTime, this.jitter, this.loss, this.rtt]) lines.push(...h.render());
    for (const section of this.sections) lines.push(...section());
    return `${lines.join('\n')}\n`;
  }
}
