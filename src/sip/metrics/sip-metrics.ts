import type { ProcessFaultCounts } from '../../common/process-faults';
import type { IntakeCounts } from '../engine/network-intake';
import type { RequestRateStats } from '../engine/request-rate-guard';
import type { ConnectionStats } from '../transport/connection-guard';

/** The engine's live counts (SipEngine.stats()). */
export interface EngineCounts {
  serverTransactions: number;
  clientTransactions: number;
  pending: number;
  dialogs: number;
  bindings: number;
  orphanedDialogs: number;
  heldRequests: number;
  proxySessions?: number;
  proxyForwards?: number;
}

/** Everything GET /metrics shows, read at scrape time. */
export interface SipMetricsSnapshot {
  engine: EngineCounts;
  /** new requests answered 503 without a transaction because the server transaction table was full */
  tableFull: number;
  intake: IntakeCounts;
  connections: ConnectionStats;
  requests: RequestRateStats;
  /** drachtio control port connections (apps), and how many of them have not authenticated yet */
  apps: { total: number; unauthenticated: number };
  faults: ProcessFaultCounts;
  /** the metrics listener's own refused connections (HttpConnectionGuard; plain HTTP, so no handshake rate) */
  http: { perSource: number; total: number };
}

/** statuses the intake refuses with, always shown (0 until one happens) */
const REFUSAL_STATUSES = [400, 413, 416, 420, 483, 501, 505];

type Sample = [labels: Record<string, string | number> | undefined, value: number];

/** One metric family: HELP, TYPE, then its samples (Prometheus text format 0.0.4). */
function family(name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const l = labels ? Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') : '';
    lines.push(`${name}${l ? `{${l}}` : ''} ${value}`);
  }
  return lines;
}

const one = (value: number): Sample[] => [[undefined, value]];
const byLabel = (label: string, counts: Record<string, number>): Sample[] => Object.entries(counts).map(([k, v]) => [{ [label]: k }, v]);

/**
 * ferry sip's metrics in Prometheus text format 0.0.4 (docs/sip-engine.md "Metrics"): counters end in
 * `_total`, gauges do not; every family has its HELP and TYPE lines, and every labelled family shows each
 * label value it can take from the start (0 until something happens).
 */
export function renderSipMetrics(s: SipMetricsSnapshot): string {
  const e = s.engine;
  const refused = new Map<number, number>(REFUSAL_STATUSES.map((st) => [st, 0]));
  for (const [status, n] of s.intake.refusedByStatus) refused.set(status, n);
  const lines = [
    ...family('ferry_sip_connections_open', 'gauge', 'SIP connections (TCP, TLS, WebSocket, secure WebSocket) accepted and open now.', one(s.connections.open)),
    ...family('ferry_sip_connection_sources', 'gauge', 'Distinct sources (an IPv4 address, an IPv6 prefix) holding the open SIP connections.', one(s.connections.sources)),
    ...family('ferry_sip_connections_refused_total', 'counter', 'New SIP connections closed on accept, by the limit that refused them (FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE, FERRY_SIP_MAX_CONNECTIONS, FERRY_SIP_TLS_HANDSHAKES_PER_SOURCE_PER_SECOND).',
      byLabel('reason', s.connections.refused)),
    ...family('ferry_sip_connections_closed_total', 'counter', 'SIP connections ferry sip closed itself, by reason (size limit, framing, read deadlines, idleness, missed WebSocket pong).',
      byLabel('reason', s.connections.closed)),
    ...family('ferry_sip_requests_rate_dropped_total', 'counter', 'New requests dropped unanswered because their source was over the per-source rate (FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND, FERRY_SIP_REQUEST_BURST).',
      one(s.requests.dropped)),
    ...family('ferry_sip_request_rate_sources', 'gauge', 'Sources whose request-rate bucket has not refilled yet.', one(s.requests.sources)),
    ...family('ferry_sip_requests_table_full_total', 'counter', 'New requests answered 503 without a transaction because the server transaction table was full (FERRY_SIP_MAX_SERVER_TRANSACTIONS).',
      one(s.tableFull)),
    ...family('ferry_sip_requests_refused_total', 'counter', 'Requests refused before any transaction, by status: the RFC 3261 checks (400, 416, 420, 501, 505), Max-Forwards 0 (483), a stream message over the size limit (413) or without a usable Content-Length (400).',
      [...refused].sort(([a], [b]) => a - b).map(([status, n]): Sample => [{ status }, n])),
    ...family('ferry_sip_malformed_messages_total', 'counter', 'Messages that could not be parsed: answered 400 when their headers allowed an answer, else dropped.',
      [[{ outcome: 'answered' }, s.intake.malformedAnswered], [{ outcome: 'dropped' }, s.intake.malformedDropped]]),
    ...family('ferry_sip_server_transactions', 'gauge', 'Server transactions open now.', one(e.serverTransactions)),
    ...family('ferry_sip_client_transactions', 'gauge', 'Client transactions open now.', one(e.clientTransactions)),
    ...family('ferry_sip_pending_requests', 'gauge', 'Requests from the network handed to an app and not answered yet.', one(e.pending)),
    ...family('ferry_sip_dialogs', 'gauge', 'Dialogs (calls and subscriptions) the engine keeps now.', one(e.dialogs)),
    ...family('ferry_sip_registration_bindings', 'gauge', 'Registration bindings to a connection (flow) now.', one(e.bindings)),
    ...family('ferry_sip_orphaned_dialogs', 'gauge', 'Dialogs whose app is gone, waiting for an app to take them (FERRY_SIP_ORPHAN_DIALOG_MS).', one(e.orphanedDialogs)),
    ...family('ferry_sip_held_requests', 'gauge', 'Requests held for an app now: for orphaned dialogs, after a restart, or while no app routes their method.', one(e.heldRequests)),
    ...family('ferry_sip_proxy_sessions', 'gauge', 'Requests being proxied now (the proxy verb).', one(e.proxySessions ?? 0)),
    ...family('ferry_sip_proxy_forwards', 'gauge', 'Forwarded branches of those proxied requests now.', one(e.proxyForwards ?? 0)),
    ...family('ferry_sip_app_connections', 'gauge', 'Connections to the drachtio control port now, by whether they have authenticated.',
      [[{ state: 'authenticated' }, s.apps.total - s.apps.unauthenticated], [{ state: 'unauthenticated' }, s.apps.unauthenticated]]),
    ...family('ferry_process_faults_total', 'counter', 'Faults this ferry sip process survived (logged, not fatal), by kind.', byLabel('kind', s.faults)),
    ...family('ferry_http_connections_refused_total', 'counter', 'Connections to this metrics port closed on accept, by the limit that refused them.',
      [[{ reason: 'per-source-cap' }, s.http.perSource], [{ reason: 'connection-cap' }, s.http.total]]),
  ];
  return `${lines.join('\n')}\n`;
}
