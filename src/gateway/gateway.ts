import Srf from 'drachtio-srf';
import { ForkBudget } from './calls/fork-budget';
import { Clock, systemClock } from '../common/clock';
import { createLogger, Logger } from '../common/logger';
import { LeaseKeeper } from './adoption/lease-keeper';
import { CallAdopter } from './adoption/call-adopter';
import { DialogReclaimer } from './adoption/dialog-reclaimer';
import { CallRegistry } from './calls/call-registry';
import { CallRouter } from './calls/call-router';
import { InviteHandler } from './calls/invite-handler';
import { GatewayConfig } from './config/gateway-config';
import { CallEventBus, LocalCallEventBus } from './events/call-events';
import { callApiRoutes } from './api/call-api';
import { CallControl } from './api/call-control';
import { Originator } from './api/originator';
import { EventStream } from './events/event-stream';
import { HttpAccess } from './http/http-access';
import { HttpServer } from './http/http-server';
import { GatewayMetrics } from './http/metrics';
import { pageWsUrl } from './http/webphone-settings';
import { addStatusRoutes } from './http/status/status-routes';
import { addCdrRoutes } from './cdr/cdr-api';
import { cdrConfigFromEnv } from './cdr/cdr-config';
import { CdrFileStore } from './cdr/cdr-file-store';
import { RedisCdrStore } from './cdr/cdr-redis-store';
import { CdrService } from './cdr/cdr-service';
import { CdrStore, MemoryCdrStore } from './cdr/cdr-store';
import { addRecordingRoutes } from './recording/recording-api';
import { StatusService } from './http/status/status-service';
import { MediaLossMonitor } from './kurento/media-loss-monitor';
import { MediaServerSet } from './media-servers/media-server-set';
import { mediaUrlKey } from './media-servers/media-url-list';
import { DigestAuth } from './registrar/digest-auth';
import { Registrar } from './registrar/registrar';
import { SharedRegistrationNews } from './registrar/registrations-elsewhere';
import { FlowBoundRegistrations, srfFlowProbe } from './registrar/flow-binding';
import { RegistrationQualifier } from './registrar/qualify';
import { reachabilityEvent } from './events/registration-events';
import { srfQualifyPing } from './registrar/qualify-ping';
import { SipAuthenticator } from './registrar/sip-authenticator';
import { publishedPasswords } from './registrar/published-passwords';
import { createStateStore } from './state/create-state-store';
import { StateStore } from './state/state-store';
import { Webhooks } from './webhooks/webhooks';
import { TransferService } from './transfer/transfer-service';
import { TOKEN_FAILURE_WINDOW_MS, TOKEN_FAILURES_PER_WINDOW, TOKEN_LOCKOUT_MS } from './http/token-guess-limit';

type VerbHandler = (req: Srf.SrfRequest & { stackDialogId?: string }, res: Srf.SrfResponse) => void;
/** srf's per-verb registration methods (generated at runtime; missing from its typings) */
type SrfVerbs = Record<'register' | 'invite' | 'options' | 'bye' | 'info' | 'update' | 'refer', (handler: VerbHandler) => void>;

export interface GatewayOptions {
  clock?: Clock;
  /** ws:// URL of the SIP engine's WebSocket listener, shown to the webphone page */
  webphoneWsUrl?: string;
}

/**
 * The B2BUA app: one root object holding the srf connection to the SIP engine, the kurento-client
 * connection to the media server, the state store, the registrar, the call handlers, adoption and
 * the HTTP side. `start()` resolves once every connection is up; `stop()` leaves calls running
 * (media and SIP engine outlive the gateway; another gateway adopts them).
 */
export class Gateway {
  readonly log: Logger;
  readonly store: StateStore;
  /** every call registered here hands its REFERs to the transfer core */
  readonly registry = new CallRegistry((call) => {
    call.referHandler = (c, side, req, res) => this.transfers.onRefer(c, side, req, res);
  });
  readonly metrics = new GatewayMetrics();
  /** every call and registration event this gateway sees (webhooks, /api/events, CDRs subscribe) */
  readonly events: CallEventBus;
  /** call transfer (REFER blind/attended, INVITE with Replaces, the REST API's blind transfer): docs/transfer.md */
  readonly transfers: TransferService;
  /** registrations rung at once beyond each call's first (FERRY_RING_MAX_FORKS_PER_SOURCE, FERRY_RING_MAX_FORKS): calls and transfers share it */
  private readonly forkBudget: ForkBudget;
  /** one CDR per ended call (file, Redis) and call recording */
  readonly cdrs: CdrService;
  private readonly srf = new Srf();
  /** every media server (FERRY_MEDIA_URL): placement of new calls, one connection and one loss monitor each */
  readonly media: MediaServerSet;
  private readonly http: HttpServer;
  private readonly lease: LeaseKeeper;
  /** POSTs bus events to the receivers in sip-config's `webhooks` */
  readonly webhooks: Webhooks;
  /** `/api/events`: the bus's events to dashboards over a WebSocket */
  readonly eventStream: EventStream;
  /** what `/status` shows: live calls with their quality, the last hour's charts; feeds the quality histograms */
  readonly status: StatusService;
  /** created before the SIP connection, so requests ferry sip held for us are never answered 481 before our first adoption scan */
  private readonly adopter: CallAdopter;
  /** claims every live call's dialogs again when the control connection to ferry sip comes back */
  private readonly reclaimer: DialogReclaimer;
  private readonly clock: Clock;
  /** click-to-call (POST /api/calls): made once the SIP side is up */
  private originator: Originator | undefined;
  /** OPTIONS pings to UDP registrations (FERRY_QUALIFY_MS): started once the SIP side is up */
  private qualifier: RegistrationQualifier | undefined;
  /** bindings that live on a connection: removed once ferry sip's answers prove it gone */
  private readonly flows: FlowBoundRegistrations;
  /** with Redis: registrations made at the other gateways on the store, heard while their users' calls ring here */
  private readonly news: SharedRegistrationNews | undefined;
  httpPort = 0;
  /** 0 unless a certificate is configured */
  httpsPort = 0;

  constructor(readonly config: GatewayConfig, private readonly opts: GatewayOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.log = createLogger('gateway', { instanceId: config.instanceId });
    this.events = new LocalCallEventBus(config.instanceId, () => this.clock.now(), this.log.child({ component: 'gateway.events' }));
    this.store = createStateStore(config.redisUrl, config.redisPrefix, this.clock, { timeoutMs: config.storeTimeoutMs, log: this.log.child({ component: 'gateway.store' }) });
    this.webhooks = new Webhooks({
      receivers: config.sip.webhooks ?? [],
      events: this.events,
      log: this.log.child({ component: 'gateway.webhooks' }),
      instanceId: config.instanceId,
      ...(config.redisUrl ? { redisUrl: config.redisUrl, redisPrefix: config.redisPrefix } : {}),
    });
    this.metrics.addSection(() => this.webhooks.metricLines());
    this.flows = new FlowBoundRegistrations({
      store: this.store,
      users: () => config.sip.users.map((u) => u.user),
      domain: config.sip.domain,
      instanceId: config.instanceId,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.registrar' }),
      settings: config.flows,
      probe: srfFlowProbe(this.srf, this.clock, `sip:ferry@${config.sip.domain}`),
      onChange: (change) => this.events.publish({ type: 'registration.changed', data: { ...change } }),
    });
    this.news = config.redisUrl
      ? new SharedRegistrationNews({ redisUrl: config.redisUrl, prefix: config.redisPrefix, instanceId: config.instanceId, log: this.log.child({ component: 'gateway.registrar' }), now: () => this.clock.now() })
      : undefined;
    this.eventStream = new EventStream(this.events, this.log.child({ component: 'gateway.events' }));
    this.metrics.addSection(() => this.eventStream.metricLines());
    const mediaLog = this.log.child({ component: 'gateway.media' });
    // the calls this gateway drives whose record names a media server (its load when it has no /stats)
    const callsOn = (url: string): number => {
      const key = mediaUrlKey(url);
      return this.registry.all().filter((c) => c.state !== 'ended' && mediaUrlKey(c.record.media.mediaUrl) === key).length;
    };
    this.media = new MediaServerSet({
      urls: config.mediaUrls,
      log: mediaLog,
      statsIntervalMs: config.mediaStatsIntervalMs,
      pingTimeoutMs: config.mediaPingTimeoutMs,
      liveCallsOn: callsOn,
      urlOfPipeline: (pipelineId) => this.registry.all().find((c) => c.record.media.pipelineId === pipelineId)?.record.media.mediaUrl,
      // the death of one media server ends the calls on it, and only those
      watch: (conn) => {
        const monitor = new MediaLossMonitor({ media: conn, registry: this.registry, clock: this.clock, log: mediaLog.child({ mediaUrl: conn.url }), graceMs: config.mediaLossGraceMs });
        monitor.start();
        return monitor;
      },
    });
    this.metrics.addSection(() => this.media.metricLines());
    this.lease = new LeaseKeeper(this.store, config.instanceId, config.leaseMs, this.clock, this.log);
    const cdrConfig = cdrConfigFromEnv();
    // read back from Redis when there is one, else the file, else the last CDRs in memory
    const cdrStores: CdrStore[] = [
      ...(config.redisUrl ? [new RedisCdrStore(config.redisUrl, config.redisPrefix, cdrConfig.retentionMs)] : []),
      ...(cdrConfig.file ? [new CdrFileStore(cdrConfig.file)] : []),
    ];
    if (cdrStores.length === 0) cdrStores.push(new MemoryCdrStore());
    this.cdrs = new CdrService({
      config: cdrConfig,
      sip: config.sip,
      events: this.events,
      registry: this.registry,
      store: this.store,
      stores: cdrStores,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.cdr' }),
      gatewayId: config.instanceId,
    });
    this.metrics.addSection(() => this.cdrs.metricLines());
    this.status = new StatusService({
      registry: this.registry,
      events: this.events,
      metrics: this.metrics,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.status' }),
      gatewayId: config.instanceId,
      listCalls: () => this.store.listCalls(),
    });
    this.http = new HttpServer(
      {
        listCalls: () => this.store.listCalls(),
        getCall: (id) => this.store.getCall(id),
        metrics: async () => {
          // in parallel, each bounded: /metrics renders within one store timeout even while Redis is down
          const [calls, registrations] = await Promise.all([this.store.listCalls().catch(() => undefined), this.store.countRegistrations()]);
          return this.metrics.render({
            // while the store does not answer: the calls this gateway drives (ferry_store_up 0 says so)
            activeCalls: calls ? calls.filter((c) => c.state !== 'ended').length : this.registry.size,
            ownedCalls: this.registry.size,
            registrations,
            instanceId: config.instanceId,
            store: this.store.health(),
            httpRefused: this.http.guard.refused,
          });
        },
        webphoneConfig: (secure, host) => {
          // a page served over HTTPS may only open a secure WebSocket
          const name = host ? (host.includes(':') ? `[${host}]` : host) : undefined;
          const wsUrl = pageWsUrl(opts.webphoneWsUrl ?? config.webphoneWsUrl, name);
          const httpsUrl = config.webphone.httpsUrl ?? (this.httpsPort && name ? `https://${name}:${this.httpsPort}/` : undefined);
          const wssUrl = config.webphoneWss.url ?? (config.webphoneWss.port && name ? `wss://${name}:${config.webphoneWss.port}` : undefined);
          return {
            wsUrl: secure && wssUrl ? wssUrl : wsUrl,
            domain: config.sip.domain,
            iceServers: config.webphone.iceServers,
            iceTransportPolicy: config.webphone.iceTransportPolicy,
            ...(httpsUrl ? { httpsUrl } : {}),
          };
        },
      },
      this.log.child({ component: 'gateway.http' }),
      new HttpAccess(config.httpAccess, undefined, (source) => this.log.warn('API locked out for a source: too many wrong bearer tokens', {
        component: 'gateway.http', src_ip: source, failures: TOKEN_FAILURES_PER_WINDOW, windowMs: TOKEN_FAILURE_WINDOW_MS, lockoutMs: TOKEN_LOCKOUT_MS,
      })),
      addRecordingRoutes(addCdrRoutes(addStatusRoutes(callApiRoutes({
        store: this.store,
        control: new CallControl({
          registry: this.registry,
          store: this.store,
          clock: this.clock,
          instanceId: config.instanceId,
          transfers: () => this.transfers,
        }),
        originator: () => this.originator,
        users: () => config.sip.users.map((u) => u.user),
      }), this.status), { store: () => this.cdrs.reader }), { store: () => this.cdrs.reader, mediaFilesDir: cdrConfig.mediaFilesDir }),
      config.httpLimits,
    );
    this.http.onUpgrade('/api/events', (req, socket, head) => this.eventStream.handleUpgrade(req, socket, head));
    this.forkBudget = new ForkBudget(config.ringForks);
    this.transfers = new TransferService({
      srf: this.srf,
      config: config.sip,
      router: new CallRouter(config.sip, this.store),
      store: this.store,
      flows: this.flows,
      registry: this.registry,
      media: this.media,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.transfer' }),
      noAnswerMs: config.noAnswerMs,
      ringbackUri: config.transferRingbackUri,
      ring: config.ring,
      forkBudget: this.forkBudget,
      loopbackMedia: config.loopbackMedia,
      events: this.events,
      ...(this.news ? { elsewhere: this.news } : {}),
    });
    this.reclaimer = new DialogReclaimer({ srf: this.srf, registry: this.registry, clock: this.clock, log: this.log.child({ component: 'gateway.adoption' }) });
    this.adopter = new CallAdopter({
      store: this.store,
      media: this.media,
      srf: this.srf,
      registry: this.registry,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.adoption' }),
      instanceId: config.instanceId,
      leaseMs: config.leaseMs,
      intervalMs: config.adoptIntervalMs,
      endedRecordTtlMs: config.endedRecordTtlMs,
      metrics: this.metrics,
      events: this.events,
    });
  }

  async start(): Promise<void> {
    const { config } = this;
    await this.media.connect();
    await this.connectSip();
    this.reclaimer.start();
    // one nonce key for every gateway on the store: a challenge from one is answerable at another
    const digest = new DigestAuth(config.sip.domain, await this.store.sharedKey('digest-nonce'), config.auth.nonceLifetimeMs, () => this.clock.now());
    const auth = new SipAuthenticator(digest, this.store, config.auth, this.metrics.auth, this.log.child({ component: 'gateway.auth' }), this.clock,
      publishedPasswords());
    const registrar = new Registrar(
      config.sip,
      this.store,
      auth,
      this.log.child({ component: 'gateway.registrar' }),
      config.instanceId,
      (change) => {
        this.events.publish({ type: 'registration.changed', data: { ...change } });
        // the other gateways on the store hear of the new bindings: a call ringing that user there rings them too
        this.news?.announce({ user: change.user, added: change.added });
      },
      (change) => this.events.publish(reachabilityEvent(change)),
    );
    this.news?.start();
    const router = new CallRouter(config.sip, this.store);
    // what a call needs, whether a party's INVITE or the REST API started it
    const callDeps = {
      srf: this.srf,
      config: config.sip,
      store: this.store,
      media: this.media,
      router,
      registry: this.registry,
      clock: this.clock,
      log: this.log.child({ component: 'gateway.call' }),
      instanceId: config.instanceId,
      noAnswerMs: config.noAnswerMs,
      endedRecordTtlMs: config.endedRecordTtlMs,
      onEnded: (r: Parameters<GatewayMetrics['callEnded']>[0]) => this.metrics.callEnded(r),
      onStarted: () => this.metrics.callsStarted++,
      loopbackMedia: config.loopbackMedia,
      events: this.events,
      ring: config.ring,
      mediaLossGraceMs: config.mediaLossGraceMs,
      flows: this.flows,
      ...(this.news ? { elsewhere: this.news } : {}),
    };
    const invites = new InviteHandler({
      ...callDeps,
      forkBudget: this.forkBudget,
      auth,
      replacingInvite: (req, res, caller) => this.transfers.onReplacingInvite(req as never, res, caller),
    });
    // API calls count against the same fork budget as INVITEs (the API as one source: originator.ts)
    this.originator = new Originator({ ...callDeps, forkBudget: this.forkBudget });
    const verbs = this.srf as unknown as SrfVerbs;
    verbs.register((req, res) => {
      registrar.handle(req as never, res as never).catch((err: Error) => {
        this.log.error('register failed', { err: err.message });
        try {
          res.send(500);
        } catch {
          /* gone */
        }
      });
    });
    verbs.invite((req, res) => {
      if (/;\s*tag=/i.test(req.get('To') ?? '')) {
        // a re-INVITE srf has no Dialog for: a dialog adopted (or about to be) from a dead gateway, or unknown
        this.adopter.offer(req as never, res as never);
        return;
      }
      invites.handle(req as never, res as never).catch((err: Error) => {
        this.log.error('invite failed', { err: err.message, errorName: err.name });
        try {
          res.send(500);
        } catch {
          /* gone */
        }
      });
    });
    verbs.options((_req, res) => res.send(200));
    verbs.refer((req, res) => {
      // a REFER srf has no Dialog for: an adopted dialog's (or unknown: 481); outside any dialog: refused
      if (/;\s*tag=/i.test(req.get('To') ?? '')) this.adopter.offer(req as never, res as never);
      else res.send(403, 'Forbidden', { headers: { Warning: '399 ferry "REFER is accepted only inside a call"' } } as never);
    });
    for (const verb of ['bye', 'info', 'update'] as const) {
      verbs[verb]((req, res) => this.adopter.offer(req as never, res as never));
    }
    this.qualifier = new RegistrationQualifier({
      store: this.store,
      users: () => config.sip.users.map((u) => u.user),
      ping: srfQualifyPing(this.srf, this.clock, `sip:ferry@${config.sip.domain}`),
      clock: this.clock,
      log: this.log.child({ component: 'gateway.qualify' }),
      instanceId: config.instanceId,
      settings: config.qualify,
      onChange: (change) => this.events.publish(reachabilityEvent(change)),
    });
    this.qualifier.start();
    this.flows.start();
    // the reconnection grace counts from each (re)connection to ferry sip: after its restart it holds no
    // webphone connection until the tabs still open reconnect and register again
    this.flows.controlUp();
    this.srf.on('connect', () => this.flows.controlUp());
    // drachtio-srf relays its control socket's 'close' (not in its typings)
    (this.srf as unknown as { on(event: 'close', listener: () => void): void }).on('close', () => this.flows.controlDown());
    const qualifier = this.qualifier;
    this.metrics.addSection(() => qualifier.metricLines());
    this.webhooks.start();
    this.eventStream.start();
    this.status.start();
    this.cdrs.start();
    await this.lease.start();
    // a gateway restarted with its previous id adopts its own calls here, at once; in-dialog
    // requests offered before this scan ends are held and delivered to the adopted calls
    await this.adopter.start();
    this.httpPort = await this.http.listen(config.http.host, config.http.port);
    if (config.https.tls) this.httpsPort = await this.http.listenHttps(config.http.host, config.https.port, config.https.tls);
  }

  private connectSip(): Promise<void> {
    const { host, port, secret } = this.config.sipControl;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`SIP engine at ${host}:${port} did not accept the control connection`)), 15000);
      this.srf.on('error', (err: Error) => this.log.warn('sip control connection error', { err: err.message }));
      this.srf.once('connect', (err: Error | null, hostport: string) => {
        clearTimeout(timer);
        if (err) return reject(err);
        this.log.info('connected to SIP engine', { hostport });
        resolve();
      });
      this.srf.connect({ host, port, secret } as never);
    });
  }

  /** stops handling new work; live calls stay up, and dropping the lease lets another gateway adopt them at once */
  async stop(): Promise<void> {
    this.qualifier?.stop();
    this.flows.stop();
    this.adopter.stop();
    this.eventStream.stop();
    this.status.stop();
    await this.http.close();
    await this.lease.stop({ release: true });
    try {
      this.srf.disconnect();
    } catch {
      /* not connected */
    }
    this.media.close();
    await this.news?.close();
    await this.webhooks.stop();
    await this.cdrs.stop();
    await this.store.close();
  }
}
