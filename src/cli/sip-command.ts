import { createLogger } from '../common/logger';
import { guarded } from '../common/process-faults';
import { runProcess } from '../common/process-runner';
import { startSipEngine } from '../sip/sip-engine-server';
import { loadSipSettings, type SipSettings } from './sip-settings';
import { portInUseMessage } from '../common/port-in-use';
import { openFileLimit, openFileLimitWarning } from '../common/open-file-limit';
import { DEFAULT_CONNECTION_LIMITS } from '../sip/transport/connection-limits';

/**
 * `ferry sip`: SIP UDP+TCP on FERRY_SIP_HOST:FERRY_SIP_PORT, SIP over WebSocket on FERRY_SIP_WS_PORT (public
 * listeners), drachtio control port FERRY_SIP_CONTROL_HOST:FERRY_SIP_CONTROL_PORT (127.0.0.1 unless set:
 * FERRY_SIP_HOST does not move it) with secret FERRY_SIP_SECRET; the default secret on a non-loopback
 * control address is refused (exit 1, one line). Control-port limits before authentication:
 * FERRY_SIP_CONTROL_PRE_AUTH_MAX_BYTES, _AUTH_TIMEOUT_MS, _MAX_CONNECTIONS, _MAX_UNAUTHENTICATED. Port 0 picks a free port;
 * once listening it prints one line: `ferry sip ready {"sip":..,"ws":..,"control":..}`.
 * SIP connection hygiene (size limit, read deadlines, idle close, caps, WebSocket ping): FERRY_SIP_MAX_MESSAGE_BYTES,
 * FERRY_SIP_HEADER_TIMEOUT_MS, FERRY_SIP_BODY_TIMEOUT_MS, FERRY_SIP_IDLE_TIMEOUT_MS, FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE,
 * FERRY_SIP_MAX_CONNECTIONS, FERRY_SIP_WS_PING_INTERVAL_MS, FERRY_SIP_TLS_HANDSHAKES_PER_SOURCE_PER_SECOND,
 * FERRY_SIP_TLS_HANDSHAKE_BURST (src/sip/transport/connection-limits.ts); a source is an IPv4 address or an IPv6
 * prefix, FERRY_SOURCE_IPV6_PREFIX bits long (default 64; src/common/source-key.ts).
 * New requests per source (out of dialog, not ACK or CANCEL): FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND (default 100)
 * and FERRY_SIP_REQUEST_BURST (default 1000), 0 or `off` for no limit; past them a new request is dropped unanswered.
 * FERRY_SIP_RATE_EXEMPT lists addresses and networks never limited (a trunk's SBC; src/sip/engine/request-rate-limits.ts).
 * FERRY_SIP_ADVERTISED_HOST (else FERRY_PUBLIC_HOST) overrides the address written in Via/Contact/Record-Route
 * (default: the listen host). With FERRY_TLS_CERT + FERRY_TLS_KEY: SIP over TLS on FERRY_SIP_TLS_PORT (5061) and
 * secure WebSocket on FERRY_SIP_WSS_PORT (8089); FERRY_TLS_CA adds CAs trusted for TLS connections ferry sip
 * opens, FERRY_SIP_TLS_VERIFY=0 skips checking their certificates. A bad certificate or key: exit 1, one line.
 * Optional FERRY_SIP_T1_MS / FERRY_SIP_T2_MS / FERRY_SIP_T4_MS shorten the RFC 3261 timers (tests).
 * FERRY_SIP_ORPHAN_DIALOG_MS: a dialog no connected app owns is BYEd by the engine after this long (default 30000).
 * FERRY_SIP_METRICS_PORT (unset: off) serves GET /metrics in Prometheus text format on FERRY_SIP_METRICS_HOST (default
 * 127.0.0.1; a non-loopback address is logged once as exposed): connections open, refused and closed by reason, requests
 * dropped by the per-source rate, answered 503 with the transaction table full, refused and malformed, the engine's
 * counts, app connections, faults survived (src/sip/metrics/; docs/sip-engine.md "Metrics"). The ready line then has `metrics`.
 * Request targets are resolved as RFC 3263 says (NAPTR, SRV, A/AAAA; a failed target's request goes to the next):
 * FERRY_SIP_DNS_SERVERS (default: the system's resolver), FERRY_SIP_DNS_TIMEOUT_MS, FERRY_SIP_DNS_CACHE_ENTRIES
 * (src/sip/dns/dns-settings.ts; docs/sip-engine.md "How a target is resolved").
 * Outbound connection mode (new requests handed to an app listening with srf.listen()): FERRY_SIP_REQUEST_HANDLER
 * (tcp://, tls:// or a web callback; unset: off), FERRY_SIP_REQUEST_HANDLER_METHODS, _HTTP_METHOD, _TIMEOUT_MS,
 * FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS, _AUTH_TIMEOUT_MS, _MAX_CONNECTIONS, _IDLE_MS
 * (src/sip/control/request-handler-settings.ts; docs/sip-engine.md "Outbound connection mode").
 * FERRY_SIP_STATS_INTERVAL_MS > 0 prints `ferry sip stats {"dialogs":..,...}` (the engine's live counts)
 * at that interval, for leak checks from outside the process (the soak).
 * A connection cap (FERRY_SIP_MAX_CONNECTIONS) that does not fit under the process's open-file limit is one
 * warning line on stderr at start (src/common/open-file-limit.ts).
 * Every variable is read and checked before anything listens (src/cli/sip-settings.ts): a bad value, such as
 * a port outside 0..65535, exits 1 with one line naming the variable.
 * Signals, shutdown watchdog, parent watch and fault logging: src/common/process-runner.ts.
 */
export async function run(_args: string[]): Promise<void> {
  let settings: SipSettings;
  try {
    settings = loadSipSettings();
  } catch (err) {
    process.stderr.write(`ferry sip: refusing to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger('sip');
  let engine: Awaited<ReturnType<typeof startSipEngine>> | undefined;
  runProcess({ name: 'sip', logger, stop: async () => engine?.close() });
  try {
    engine = await startSipEngine(settings.engine);
  } catch (err) {
    const o = settings.engine;
    const inUse = portInUseMessage(err, [
      { variable: 'FERRY_SIP_PORT', port: o.sipPort },
      { variable: 'FERRY_SIP_WS_PORT', port: o.wsPort },
      { variable: 'FERRY_SIP_TLS_PORT', port: o.tls ? o.tlsPort : undefined },
      { variable: 'FERRY_SIP_WSS_PORT', port: o.tls ? o.wssPort : undefined },
      { variable: 'FERRY_SIP_CONTROL_PORT', port: o.controlPort },
      { variable: 'FERRY_SIP_METRICS_PORT', port: o.metrics?.port },
    ]);
    if (!inUse) throw err;
    process.stderr.write(`ferry sip: cannot start: ${inUse}\n`);
    process.exit(1);
  }
  const fdWarning = openFileLimitWarning('ferry sip', 'FERRY_SIP_MAX_CONNECTIONS',
    settings.engine.connectionLimits?.maxConnections ?? DEFAULT_CONNECTION_LIMITS.maxConnections, openFileLimit());
  if (fdWarning) process.stderr.write(`${fdWarning}\n`);
  process.stdout.write(`ferry sip ready ${JSON.stringify(engine.ports)}\n`);
  const statsIntervalMs = settings.statsIntervalMs;
  if (statsIntervalMs > 0) {
    const running = engine;
    const printStats = guarded('sip stats line', () => process.stdout.write(`ferry sip stats ${JSON.stringify({ ...running.engine.stats(), connections: running.connections.stats(), requests: running.requests.stats() })}\n`));
    setInterval(printStats, statsIntervalMs).unref();
  }
  // keep the process alive: transports hold the event loop open
}
