import os from 'node:os';
import { ipv6AddressFor } from './engine/ipv6-address-for';
import { systemClock, type Clock } from '../common/clock';
import { createLogger } from '../common/logger';
import { ControlServer } from './control/control-server';
import type { ControlLimits } from './control/control-limits';
import { NextHopResolver } from './engine/next-hop-resolver';
import type { DnsSettings } from './dns/dns-settings';
import { DEFAULT_ORPHAN_DIALOG_MS, SHUTDOWN_BYE_REASON, SipEngine } from './engine/sip-engine';
import { FlowBindings } from './registrar/flow-bindings';
import type { UnroutedHoldLimits } from './engine/unrouted-request-hold';
import { DEFAULT_TIMERS, type TimerConfig } from './transaction/timer-config';
import { TcpTransport } from './transport/tcp-transport';
import { UdpTransport } from './transport/udp-transport';
import { WsTransport } from './transport/ws-transport';
import { TlsTransport, type TlsTransportOptions } from './transport/tls-transport';
import { ConnectionGuard } from './transport/connection-guard';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './transport/connection-limits';
import { RequestRateGuard } from './engine/request-rate-guard';
import { DEFAULT_REQUEST_RATE, type RequestRateLimits } from './engine/request-rate-limits';
import { processFaultCounts } from '../common/process-faults';
import { renderSipMetrics } from './metrics/sip-metrics';
import { startSipMetricsServer, type RunningSipMetricsServer } from './metrics/sip-metrics-server';
import type { SipMetricsListen } from './metrics/sip-metrics-settings';
import type { RequestHandlerSettings } from './control/request-handler-settings';
import { OutboundConnections } from './control/outbound-connections';
import { RequestHandler } from './control/request-handler';

export interface SipEngineOptions {
  host?: string;
  /** address put in Via/Contact/hostports; defaults to `host`, or the first external IPv4 when host is a wildcard */
  advertisedHost?: string;
  sipPort?: number;
  wsPort?: number;
  /** certificate and key for SIP over TLS and secure WebSocket; without it neither listens */
  tls?: TlsTransportOptions;
  /** SIP over TLS port (with `tls`; default 5061, 0 = any free port) */
  tlsPort?: number;
  /** secure WebSocket port (with `tls`; default 8089, 0 = any free port) */
  wssPort?: number;
  controlPort?: number;
  /** the drachtio control port's listen address (default 127.0.0.1, whatever `host` is: it is not a public listener) */
  controlHost?: string;
  /** pre-authentication frame limit, authentication deadline and connection caps of the control port */
  controlLimits?: Partial<ControlLimits>;
  secret?: string;
  /** size limit, read deadlines, idle close, caps and WebSocket ping of SIP connections (docs/security.md "Connections") */
  connectionLimits?: Partial<ConnectionLimits>;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
  /** how long a dialog with no connected owner waits for an app before the engine BYEs it (default 30000) */
  orphanDialogMs?: number;
  /** after start, how long an in-dialog request for an unknown dialog waits for an app's claim before 481 (default 10000) */
  restartHoldMs?: number;
  /** bounds of the hold for new requests no app routes yet, right after start or while no app is connected (docs/sip-engine.md) */
  unroutedHold?: Partial<UnroutedHoldLimits>;
  /** server transactions open at once; beyond it new out-of-dialog requests are answered 503 statelessly (default 10000; docs/security.md "Connections") */
  maxServerTransactions?: number;
  /** new requests per second and burst per source, exempt sources (default 100/s, 1000 at once; docs/security.md "New requests per source") */
  requestRate?: Partial<RequestRateLimits>;
  /** on close, how long to wait for the answers to the shutdown BYEs (default 1000) */
  shutdownByeWaitMs?: number;
  /** outbound connection mode: new requests go to apps listening with srf.listen() (absent: off; docs/sip-engine.md "Outbound connection mode") */
  requestHandler?: RequestHandlerSettings;
  /** where to serve GET /metrics (Prometheus text format; absent: no metrics port; docs/sip-engine.md "Metrics") */
  metrics?: SipMetricsListen;
  /** how request targets are looked up in DNS (servers, timeout, cache size; default: the system's resolver; docs/sip-engine.md "How a target is resolved") */
  dns?: DnsSettings;
}

export interface RunningSipEngine {
  /** `tls`/`wss` are 0 when no certificate was given; `metrics` only when the metrics port was asked for */
  ports: { sip: number; ws: number; tls: number; wss: number; control: number; metrics?: number };
  engine: SipEngine;
  /** connection hygiene of the SIP stream transports: open connections, refusals and closes by reason */
  connections: ConnectionGuard;
  /** the per-source rate of new requests: what it dropped */
  requests: RequestRateGuard;
  /** everything the metrics port shows, in Prometheus text format (also without a metrics port) */
  renderMetrics(): string;
  /** Graceful stop: BYEs every confirmed dialog (waiting briefly for the answers), then closes everything. */
  close(): Promise<void>;
}

export const FERRY_SIP_VERSION = 'v0.8.26-ferry';

/** Starts transports (UDP+TCP on one port, WS; TLS and WSS when given a certificate), the engine and the drachtio control port. Port 0 = any free port. */
export async function startSipEngine(options: SipEngineOptions = {}): Promise<RunningSipEngine> {
  const host = options.host ?? '127.0.0.1';
  const advertised = options.advertisedHost ?? (host === '0.0.0.0' || host === '::' ? firstExternalIPv4() : host);
  // dual-stack `::` without an advertised host: IPv6 peers are told an IPv6 address of this host, not the IPv4 one
  const ipv6HostFor = options.advertisedHost === undefined && host === '::' ? (peer: string) => ipv6AddressFor(peer, hostIPv6Addresses()) : undefined;
  const log = createLogger('sip.engine');
  const timers: TimerConfig = { ...DEFAULT_TIMERS, ...options.timers };
  const ports: RunningSipEngine['ports'] = { sip: 0, ws: 0, tls: 0, wss: 0, control: 0 };
  let engine: SipEngine | undefined;
  const events = {
    onMessage: (d: Buffer, f: import('./transport/flow').Flow) => engine?.onNetworkData(d, f),
    onClose: (f: import('./transport/flow').Flow) => engine?.onFlowClosed(f),
    onRefusedRequest: (head: Buffer, f: import('./transport/flow').Flow, status: 400 | 413, why: string) => engine?.onRefusedRequest(head, f, status, why),
  };
  const connections = new ConnectionGuard({ ...DEFAULT_CONNECTION_LIMITS, ...options.connectionLimits }, createLogger('sip.connections'),
    (f) => engine?.flowInUse(f) ?? false, options.clock ?? systemClock);
  const requests = new RequestRateGuard({ ...DEFAULT_REQUEST_RATE, ...options.requestRate }, connections.sourceKey, createLogger('sip.requests'),
    options.clock ?? systemClock);
  const udp = new UdpTransport((d, f) => engine?.onNetworkData(d, f));
  const tcp = new TcpTransport(events, connections);
  const ws = new WsTransport(events, connections);
  const tls = options.tls ? new TlsTransport(events, connections, options.tls) : undefined;
  const wss = options.tls ? new WsTransport(events, connections, options.tls) : undefined;
  const bindings = new FlowBindings();
  const control = new ControlServer({
    secret: options.secret ?? 'cymru',
    version: FERRY_SIP_VERSION,
    // as drachtio-server lists its transports: one `proto/host:port` per listener
    hostports: () => [`udp/${advertised}:${ports.sip}`, `tcp/${advertised}:${ports.sip}`, ...(tls ? [`tls/${advertised}:${ports.tls}`] : []),
      `ws/${advertised}:${ports.ws}`, ...(wss ? [`wss/${advertised}:${ports.wss}`] : [])].join(','),
    limits: options.controlLimits,
  }, {
    onAppSip: (app, m) => engine?.onAppSip(app, m),
    onAppProxy: (app, m) => engine?.onAppProxy(app, m),
    onAppClosed: (app) => engine?.onAppClosed(app),
    onAppRoute: (app, verb) => engine?.onAppRoute(app, verb),
  }, createLogger('sip.control'));
  const handlerSettings = options.requestHandler;
  const requestHandler = handlerSettings ? new RequestHandler(handlerSettings,
    new OutboundConnections(control, handlerSettings, createLogger('sip.outbound'), (app) => engine?.appInUse(app) ?? false),
    control.router, createLogger('sip.outbound')) : undefined;
  engine = new SipEngine(options.clock ?? systemClock, timers, control.router, new NextHopResolver(udp, tcp, bindings, tls, () => (options.clock ?? systemClock).now(), 64 * timers.t1, options.dns), bindings,
    { host: advertised, ...(ipv6HostFor !== undefined ? { ipv6HostFor } : {}), sipPort: () => ports.sip, wsPort: () => ports.ws, tlsPort: () => ports.tls, wssPort: () => ports.wss }, log, options.orphanDialogMs ?? DEFAULT_ORPHAN_DIALOG_MS, options.restartHoldMs,
    options.unroutedHold, options.maxServerTransactions, requests, requestHandler);

  const e = engine;
  let metricsServer: RunningSipMetricsServer | undefined;
  const renderMetrics = (): string => renderSipMetrics({
    engine: e.stats(), tableFull: e.refusedTransactionTableFull, intake: e.intakeCounts(), connections: connections.stats(), requests: requests.stats(),
    apps: control.connectionCounts(), faults: processFaultCounts(), http: metricsServer?.refused() ?? { perSource: 0, total: 0 },
  });
  try {
    ports.sip = await bindUdpAndTcp(udp, tcp, host, options.sipPort ?? 0);
    ports.ws = await ws.listen(host, options.wsPort ?? 0);
    if (tls) ports.tls = await tls.listen(host, options.tlsPort ?? 5061);
    if (wss) ports.wss = await wss.listen(host, options.wssPort ?? 8089);
    ports.control = await control.listen(options.controlHost ?? '127.0.0.1', options.controlPort ?? 0);
    if (options.metrics) {
      metricsServer = await startSipMetricsServer(options.metrics, renderMetrics, createLogger('sip.metrics'));
      ports.metrics = metricsServer.port;
    }
  } catch (err) {
    await Promise.allSettled([udp.close(), tcp.close(), ws.close(), tls?.close(), wss?.close(), control.close(), metricsServer?.close()]);
    throw err;
  }
  log.info('ferry sip listening', { host, controlHost: options.controlHost ?? '127.0.0.1', ...ports });
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    try {
      await e.endAllDialogs(SHUTDOWN_BYE_REASON, options.shutdownByeWaitMs ?? 1000);
    } catch (err) {
      log.warn('could not end dialogs at shutdown', { error: err instanceof Error ? err.message : String(err) });
    }
    e.shutdown();
    await Promise.allSettled([control.close(), udp.close(), tcp.close(), ws.close(), tls?.close(), wss?.close(), metricsServer?.close()]);
  };
  return {
    ports,
    engine: e,
    connections,
    requests,
    renderMetrics,
    close: () => (closing ??= close()),
  };
}

function firstExternalIPv4(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** This host's IPv6 addresses other than link-local (fe80::/10), loopback included; read again at most once a minute. */
let hostV6: { at: number; list: string[] } | undefined;
function hostIPv6Addresses(): string[] {
  const now = Date.now();
  if (!hostV6 || now - hostV6.at > 60_000) {
    const list = Object.values(os.networkInterfaces()).flatMap((l) => l ?? []).filter((a) => a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address)).map((a) => a.address);
    hostV6 = { at: now, list };
  }
  return hostV6.list;
}

/** UDP and TCP share one port number; with port 0 retry until both bind the same free port. */
async function bindUdpAndTcp(udp: UdpTransport, tcp: TcpTransport, host: string, port: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const p = await udp.listen(host, port);
    try {
      await tcp.listen(host, p);
      return p;
    } catch (err) {
      await udp.close();
      if (port !== 0 || attempt >= 20) throw err;
    }
  }
}
