import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../../common/clock';
import type { Logger } from '../../common/logger';
import { KurentoErrors } from '../errors/kurento-error';
import type { LegEndReason } from '../relay/media-leg';
import type { ElementTypeRegistry } from '../objects/element-type';
import { MediaElement } from '../objects/media-element';
import type { MediaObject } from '../objects/media-object';
import { MediaPipeline, PIPELINE_EVENTS, PIPELINE_HIERARCHY } from '../objects/media-pipeline';
import type { ObjectHost } from '../objects/object-context';
import { SdpEndpoint } from '../objects/sdp-endpoint';
import type { PortAllocator } from '../rtp/port-allocator';
import type { MediaConfig } from './media-config';
import { MediaSession, type SessionConnection } from './media-session';
import { SERVER_MANAGER_EVENTS, SERVER_MANAGER_ID, ServerManager } from './server-manager';
import { guarded } from '../../common/process-faults';
import { PORTS_RESERVED_PER_ENDPOINT, quotaExceeded } from './media-quotas';
import { LogThrottle } from '../../common/log-throttle';
import { TeardownRetries, type TeardownRetryPolicy } from './teardown-retries';
import { RemoteElement } from '../workers/remote-element';
import type { RelayWorker, WorkerPool } from '../workers/worker-pool';
import type { ElementState, WorkerStats } from '../workers/worker-protocol';

/** `detail` of the end events sent when another control session releases a pipeline (ferry extension). */
export const RELEASED_BY_OTHER_SESSION = 'released-by-other-session';
/** `detail` of the end events sent when the relay worker holding a pipeline died (ferry extension). */
export const RELAY_WORKER_DIED = 'media-worker-died';

/** An element of a pipeline: in this thread, or in a relay worker (src/media/workers/). */
type HeldElement = MediaElement | RemoteElement;

interface PipelineRecord {
  pipeline: MediaPipeline;
  elements: Map<string, HeldElement>;
  /** The relay worker that holds the pipeline's elements (undefined: this thread holds them). */
  worker?: RelayWorker;
  /** That worker died: the elements are gone with it. */
  lost?: boolean;
  owners: Set<MediaSession>;
  release: Promise<void> | undefined;
  /** the release was counted in releasesByReason (a retried release counts once) */
  releaseCounted?: boolean;
  graceTimer: TimerHandle | undefined;
  orphanTimer: TimerHandle | undefined;
  /** The session that created the pipeline (charged for it in the per-session quota). */
  creator: string;
  /** element id -> the session that created it (charged for its ports). */
  elementCreators: Map<string, string>;
  createdAt: number;
}

export interface MediaSetOptions {
  config: MediaConfig;
  clock: Clock;
  logger: Logger;
  elementTypes: ElementTypeRegistry;
  ports: PortAllocator;
  /** An orphaned pipeline with no live media (never negotiated) is released after this long. */
  orphanTtlMs: number;
  /** How a failed element teardown or pipeline release is retried (default: 1 s doubling to 30 s, 8 retries). */
  teardownRetryPolicy?: TeardownRetryPolicy;
  /** Relay workers that hold the pipelines (FERRY_MEDIA_WORKERS > 1); without, this thread holds them. */
  workers?: () => WorkerPool | undefined;
}

/**
 * Every media object, session and subscription of one ferry media process, and the lifecycle rules
 * (docs/lifecycle.md): release is global, recursive and idempotent, and releasing ANY element releases its
 * whole pipeline (rule 5); a session expires the moment it has no connection and owns nothing (rule 6);
 * an orphaned pipeline (every owner session without a connection) keeps running while its media lives
 * (rule 1) and is released when a leg ends, per FERRY_MEDIA_AUTO_RELEASE (rule 7). Legs are told first
 * (RTCP BYE / close_notify) on every release (rule 4).
 */
export class MediaSet implements ObjectHost {
  readonly manager: ServerManager;
  private readonly objects = new Map<string, MediaObject>();
  private readonly pipelines = new Map<string, PipelineRecord>();
  private readonly sessions = new Map<string, MediaSession>();
  /** objectId -> event type -> sessions subscribed (one delivery per session, as KMS). */
  private readonly subs = new Map<string, Map<string, Set<MediaSession>>>();
  private readonly logger: Logger;
  /** Lifetime counters for /stats (operators and leak tests): leg ends and pipeline releases by reason. */
  private readonly legEnds = new Map<string, number>();
  private readonly releases = new Map<string, number>();
  /** Creates refused by a quota, by which limit (/stats quotaRefusals). */
  private readonly quotaRefusals = new Map<string, number>();
  /** Ports counted for element creates under way (checked, not yet in a pipeline). */
  private readonly pendingPorts = new Map<string, number>();
  /** refused creates: one line per session and limit per 10 s, however fast they come */
  private readonly refusalLog: LogThrottle;
  /** element teardowns and pipeline releases that failed: logged, counted, retried (/stats teardownFailures) */
  private readonly teardownRetries: TeardownRetries;
  /** pipeline creates admitted and waiting for their worker (counted against maxPipelines) */
  private pipelinesUnderway = 0;

  constructor(private readonly o: MediaSetOptions) {
    this.logger = o.logger;
    this.refusalLog = new LogThrottle(10_000, () => o.clock.now());
    this.teardownRetries = new TeardownRetries(o.clock, o.logger, o.teardownRetryPolicy);
    this.manager = new ServerManager(this, o.clock, {
      pipelineIds: () => [...this.pipelines.keys()],
      sessionIds: () => [...this.sessions.keys()],
      factories: () => ({ core: ['MediaPipeline'], elements: o.elementTypes.names(), filters: [] }),
    });
    this.objects.set(SERVER_MANAGER_ID, this.manager);
  }

  // ---- sessions -----------------------------------------------------------------------------

  session(id: string): MediaSession | undefined {
    return this.sessions.get(id);
  }

  getOrCreateSession(id: string): MediaSession {
    let s = this.sessions.get(id);
    if (!s) {
      s = new MediaSession(id);
      this.sessions.set(id, s);
    }
    return s;
  }

  /** Bind a connection to a session (the previous holder of either side loses its binding). */
  bind(session: MediaSession, conn: SessionConnection, previous: MediaSession | undefined): void {
    if (previous && previous !== session && previous.connection === conn) {
      previous.connection = undefined;
      this.sessionLostConnection(previous);
    }
    if (session.connection === conn) return;
    session.connection = conn;
    for (const pid of session.pipelines) this.evaluate(pid);
  }

  connectionClosed(conn: SessionConnection, sessionId: string | undefined): void {
    const s = sessionId ? this.sessions.get(sessionId) : undefined;
    if (!s || s.connection !== conn) return;
    s.connection = undefined;
    this.sessionLostConnection(s);
  }

  private sessionLostConnection(s: MediaSession): void {
    this.logger.info('media session orphaned', { sessionId: s.id, pipelines: s.pipelines.size });
    for (const pid of [...s.pipelines]) this.evaluate(pid);
    this.expireIfIdle(s);
  }

  /**
   * Forget a session that owns nothing and has no connection. With `lastObjectReleased`, a session
   * whose last pipeline just went also expires while connected (docs/lifecycle.md, rule 6), unless it still
   * listens to the ServerManager; its connection is unbound and a later request simply re-creates it.
   */
  private expireIfIdle(s: MediaSession, lastObjectReleased = false): void {
    if (s.pipelines.size > 0) return;
    if (s.connection) {
      if (!lastObjectReleased) return;
      for (const sub of s.subscriptions.values()) if (sub.objectId === SERVER_MANAGER_ID) return;
      const conn = s.connection;
      s.connection = undefined;
      conn.sessionExpired(s.id);
    }
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    for (const { objectId, type } of s.subscriptions.values()) this.subs.get(objectId)?.get(type)?.delete(s);
    s.subscriptions.clear();
  }

  // ---- objects --------------------------------------------------------------------------------

  lookup(id: string): MediaObject | undefined {
    return this.objects.get(id);
  }

  get(id: unknown): MediaObject {
    if (typeof id !== 'string') throw KurentoErrors.marshall("'object' parameter should be a string");
    // As KMS: a reference to an object of a transaction that was never committed.
    if (id.startsWith('newref:') && id.length > 'newref:'.length) {
      throw KurentoErrors.noCommitTransaction(`Object '${id}' not found. Possibly using a transactional object without committing the transaction.`);
    }
    const o = this.objects.get(id);
    if (!o || o.isReleased) throw KurentoErrors.objectNotFound(id);
    return o;
  }

  async create(session: MediaSession, typeName: unknown, constructorParams: Record<string, unknown>): Promise<string> {
    if (typeof typeName !== 'string' || typeName === '') throw KurentoErrors.marshall("'type' parameter should be a string");
    const type = typeName.startsWith('kurento.') ? typeName.slice('kurento.'.length) : typeName;
    if (type === 'MediaPipeline') {
      await this.admitPipeline(session);
      const id = `${randomUUID()}_kurento.MediaPipeline`;
      const worker = await this.placePipeline(id);
      const pipeline = new MediaPipeline(id, this, this.o.clock);
      this.objects.set(id, pipeline);
      this.pipelines.set(id, {
        pipeline, elements: new Map(), owners: new Set(), release: undefined, graceTimer: undefined, orphanTimer: undefined,
        creator: session.id, elementCreators: new Map(), createdAt: this.o.clock.now(), ...(worker ? { worker } : {}),
      });
      this.adopt(session, id);
      this.manager.objectCreated(id);
      return id;
    }
    const t = this.o.elementTypes.get(type);
    if (!t) throw KurentoErrors.notAvailable(`Factory '${typeName}' not found`);
    // a HubPort names only its hub (Hub.createHubPort sends {hub}): its pipeline is the hub's
    const hub = constructorParams.hub;
    const pid = constructorParams.mediaPipeline ?? (typeof hub === 'string' ? pipelineIdOf(hub) : undefined);
    if (typeof pid !== 'string') throw KurentoErrors.marshall("'mediaPipeline' constructor parameter is required");
    const rec = this.pipelines.get(pid);
    if (!rec || rec.release) throw KurentoErrors.objectNotFound(pid);
    await this.admitElement(session, rec);
    if (rec.release) throw KurentoErrors.objectNotFound(pid);
    const id = `${pid}/${randomUUID()}_kurento.${t.type}`;
    this.pendingPorts.set(session.id, (this.pendingPorts.get(session.id) ?? 0) + PORTS_RESERVED_PER_ENDPOINT);
    let element: HeldElement;
    try {
      element = rec.worker ? await this.createInWorker(rec.worker, pid, id, t.type, constructorParams) : await t.create({
        id,
        pipelineId: pid,
        constructorParams,
        host: this,
        clock: this.o.clock,
        config: this.o.config,
        ports: this.o.ports,
        logger: this.logger.child({ element: id }),
      });
    } finally {
      const left = (this.pendingPorts.get(session.id) ?? 0) - PORTS_RESERVED_PER_ENDPOINT;
      if (left > 0) this.pendingPorts.set(session.id, left);
      else this.pendingPorts.delete(session.id);
    }
    if (rec.release) {
      await element.teardown({ notifyPeer: false });
      throw KurentoErrors.objectNotFound(pid);
    }
    this.objects.set(id, element);
    rec.elements.set(id, element);
    rec.elementCreators.set(id, session.id);
    rec.pipeline.addChild(id);
    this.adopt(session, pid);
    this.manager.objectCreated(id);
    return id;
  }

  /** A new pipeline's relay worker (the least loaded), told of the pipeline; undefined without workers. */
  private async placePipeline(pid: string): Promise<RelayWorker | undefined> {
    const pool = this.o.workers?.();
    if (!pool) return undefined;
    this.pipelinesUnderway++;
    try {
      const worker = await pool.pick((wid) => this.pipelinesOn(wid));
      await worker.request({ op: 'createPipeline', pid });
      return worker;
    } finally {
      this.pipelinesUnderway--;
    }
  }

  private async createInWorker(worker: RelayWorker, pid: string, id: string, type: string, params: Record<string, unknown>): Promise<RemoteElement> {
    const r = await worker.request({ op: 'create', pid, id, type, params });
    const state = r.states?.[id];
    if (!state) throw KurentoErrors.unexpected(`the relay worker did not report element ${id}`);
    const element = new RemoteElement(id, type, this, this.o.clock, pid, worker, state, (states) => this.applyStates(states));
    this.applyStates(r.states);
    return element;
  }

  /** Pipelines held by relay worker `workerId` (placement and /stats). */
  pipelinesOn(workerId: number): number {
    let n = 0;
    for (const rec of this.pipelines.values()) if (rec.worker?.id === workerId && !rec.lost) n++;
    return n;
  }

  /** Elements held by relay worker `workerId`, as the control plane counts them. */
  elementsOn(workerId: number): number {
    let n = 0;
    for (const rec of this.pipelines.values()) if (rec.worker?.id === workerId && !rec.lost) n += rec.elements.size;
    return n;
  }

  /** States a worker reported (with a reply): the remote elements' cached state. */
  private applyStates(states: Record<string, ElementState> | undefined): void {
    if (!states) return;
    for (const [id, st] of Object.entries(states)) {
      const o = this.objects.get(id);
      if (o instanceof RemoteElement) o.update(st);
    }
  }

  // ---- relay workers (src/media/workers/) ------------------------------------------------------------

  /** An event from a relay worker's element: delivered as if the element were here (dropped once muted). */
  workerEvent(id: string, type: string, data: Record<string, unknown>, state: ElementState | undefined): void {
    const o = this.objects.get(id);
    if (!(o instanceof RemoteElement)) return;
    o.update(state);
    if (o.isMuted || o.isReleased) return;
    this.emitEvent(id, type, data);
  }

  workerLegEnded(id: string, reason: LegEndReason, state: ElementState | undefined): void {
    const o = this.objects.get(id);
    if (!(o instanceof RemoteElement) || o.isReleased) return;
    o.update(state);
    this.legEnded(id, reason);
  }

  /** Fresh /stats entries and states from every worker (GET /stats asks them first). */
  applyWorkerStats(stats: WorkerStats): void {
    for (const [id, entry] of Object.entries(stats.describe)) {
      const o = this.objects.get(id);
      if (o instanceof RemoteElement) {
        o.updateStats(entry);
        o.update(stats.states[id]);
      }
    }
  }

  /**
   * Relay worker `workerId` died: its pipelines went with it. Every subscriber of their endpoints gets the
   * end events a released pipeline gives (MediaStateChanged -> DISCONNECTED when it was CONNECTED,
   * MediaSessionTerminated; reason control-release, detail media-worker-died), so the application ends
   * both parties of each call; then the pipelines are released (nothing left to tear down in the worker).
   */
  workerDied(workerId: number): void {
    const lost = [...this.pipelines.values()].filter((rec) => rec.worker?.id === workerId && !rec.lost);
    for (const rec of lost) {
      rec.lost = true;
      for (const e of rec.elements.values()) {
        if (!(e instanceof RemoteElement)) continue;
        if (!rec.release) {
          for (const { type, data } of e.releaseNotice(RELAY_WORKER_DIED)) {
            for (const s of this.subs.get(e.id)?.get(type) ?? []) s.connection?.sendNotification('onEvent', { value: { data, object: e.id, type } });
          }
        }
        e.markLost();
      }
    }
    if (lost.length > 0) this.logger.warn('pipelines lost with their relay worker; releasing them', { worker: workerId, pipelines: lost.map((r) => r.pipeline.id) });
    for (const rec of lost) this.releaseInBackground(rec.pipeline.id, 'control-release');
  }

  /** KMS "ownership by touching": describe/invoke/subscribe/ref make the session a co-owner of the pipeline. */
  adopt(session: MediaSession, objectId: string): void {
    const pid = pipelineIdOf(objectId);
    const rec = pid ? this.pipelines.get(pid) : undefined;
    if (!rec || rec.release || rec.owners.has(session)) return;
    rec.owners.add(session);
    session.pipelines.add(rec.pipeline.id);
    this.evaluate(rec.pipeline.id);
  }

  // ---- quotas (media-quotas.ts) --------------------------------------------------------------------

  /** Refuses a new pipeline above the session's or the server's limit; idle orphans make room first. */
  private async admitPipeline(session: MediaSession): Promise<void> {
    const q = this.o.config.quotas;
    const own = this.pipelinesCreatedBy(session.id);
    if (own >= q.maxPipelinesPerSession) throw this.refuse(session, 'pipelines-per-session', 'pipeline quota of this session reached', own, q.maxPipelinesPerSession);
    if (this.livePipelineCount() >= q.maxPipelines) await this.reclaimIdleOrphans(() => this.livePipelineCount() < q.maxPipelines);
    const all = this.livePipelineCount();
    if (all >= q.maxPipelines) throw this.refuse(session, 'pipelines', 'pipeline quota of the server reached', all, q.maxPipelines);
  }

  /** Refuses a new element above the pipeline's element limit or the session's or the server's port limit. */
  private async admitElement(session: MediaSession, rec: PipelineRecord): Promise<void> {
    const q = this.o.config.quotas;
    if (rec.elements.size >= q.maxElementsPerPipeline) {
      throw this.refuse(session, 'elements-per-pipeline', 'element quota of this pipeline reached', rec.elements.size, q.maxElementsPerPipeline);
    }
    const need = PORTS_RESERVED_PER_ENDPOINT;
    // one pass over the elements for both counts (this runs for every create)
    const counted = this.portsCounted(session.id);
    const own = counted.session;
    if (own + need > q.maxPortsPerSession) throw this.refuse(session, 'ports-per-session', 'port quota of this session reached', own, q.maxPortsPerSession);
    let all = counted.server;
    if (all + need > q.maxPorts) {
      await this.reclaimIdleOrphans(() => this.portsCounted().server + need <= q.maxPorts, rec);
      all = this.portsCounted().server;
    }
    if (all + need > q.maxPorts) throw this.refuse(session, 'ports', 'port quota of the server reached', all, q.maxPorts);
  }

  private refuse(session: MediaSession, limit: string, what: string, used: number, max: number): Error {
    this.quotaRefusals.set(limit, (this.quotaRefusals.get(limit) ?? 0) + 1);
    const admitted = this.refusalLog.admit(`${session.id} ${limit}`);
    if (admitted) this.logger.warn('create refused by quota', { sessionId: session.id, limit, used, max, suppressedSinceLastLine: admitted.suppressed });
    return quotaExceeded(what, used, max);
  }

  /** Pipelines not being released (a release under way frees its slot). */
  private livePipelineCount(): number {
    let n = 0;
    for (const rec of this.pipelines.values()) if (!rec.release) n++;
    return n + this.pipelinesUnderway;
  }

  private pipelinesCreatedBy(sessionId: string): number {
    let n = 0;
    for (const rec of this.pipelines.values()) if (!rec.release && rec.creator === sessionId) n++;
    return n;
  }

  /**
   * UDP ports counted against the quotas: each element's bound ports, at least one RTP+RTCP pair per
   * element, plus creates under way; for the server and, in the same pass, for one session (the elements
   * it created; 0 without `sessionId`).
   */
  portsCounted(sessionId?: string): { server: number; session: number } {
    let server = 0;
    let session = 0;
    for (const rec of this.pipelines.values()) {
      const creators = sessionId === undefined ? undefined : rec.elementCreators;
      for (const [id, e] of rec.elements) {
        const n = Math.max(e.boundPorts(), PORTS_RESERVED_PER_ENDPOINT);
        server += n;
        if (creators !== undefined && creators.get(id) === sessionId) session += n;
      }
    }
    for (const p of this.pendingPorts.values()) server += p;
    if (sessionId !== undefined) session += this.pendingPorts.get(sessionId) ?? 0;
    return { server, session };
  }

  /**
   * The server is full: orphaned pipelines (no owner session connected) without a live leg (never
   * negotiated) are released, oldest first, until `enough()` — such an orphan must not hold a slot a
   * connected client needs for its orphan TTL. Pipelines with live media (calls whose app is gone) stay.
   */
  private async reclaimIdleOrphans(enough: () => boolean, keep?: PipelineRecord): Promise<void> {
    const idle = [...this.pipelines.values()]
      .filter((rec) => rec !== keep && !rec.release && this.isOrphaned(rec) && !this.hasLiveMedia(rec))
      .sort((a, b) => a.createdAt - b.createdAt);
    for (const rec of idle) {
      if (enough()) return;
      this.logger.info('idle orphaned pipeline reclaimed for a new create', { pipeline: rec.pipeline.id, ageMs: this.o.clock.now() - rec.createdAt });
      await this.release(rec.pipeline.id, 'session-expired');
    }
  }

  private hasLiveMedia(rec: PipelineRecord): boolean {
    for (const e of rec.elements.values()) if (isCallEndpoint(e) && e.mediaLive) return true;
    return false;
  }

  describe(id: unknown): { type: string; qualifiedType: string; hierarchy: readonly string[] } {
    const o = this.get(id);
    return { type: o.type, qualifiedType: `kurento.${o.type}`, hierarchy: this.hierarchyOf(o) };
  }

  private hierarchyOf(o: MediaObject): readonly string[] {
    if (o === this.manager) return ['kurento.MediaObject'];
    if (o instanceof MediaPipeline) return PIPELINE_HIERARCHY;
    return this.o.elementTypes.get(o.type)?.hierarchy ?? ['kurento.MediaElement', 'kurento.MediaObject'];
  }

  private eventsOf(o: MediaObject): readonly string[] {
    if (o === this.manager) return SERVER_MANAGER_EVENTS;
    if (o instanceof MediaPipeline) return PIPELINE_EVENTS;
    return this.o.elementTypes.get(o.type)?.events ?? ['Error'];
  }

  subscribe(session: MediaSession, objectId: unknown, type: unknown): string {
    const o = this.get(objectId);
    if (typeof type !== 'string') throw KurentoErrors.marshall("'type' parameter should be a string");
    if (!this.eventsOf(o).includes(type)) throw KurentoErrors.eventNotSupported(`Event '${type}' is not supported by ${o.type}`);
    const subId = randomUUID();
    session.subscriptions.set(subId, { objectId: o.id, type });
    let byType = this.subs.get(o.id);
    if (!byType) this.subs.set(o.id, (byType = new Map()));
    let set = byType.get(type);
    if (!set) byType.set(type, (set = new Set()));
    set.add(session);
    this.adopt(session, o.id);
    const replay = o.replayOnSubscribe(type); // a remote element answers from the state its worker reported
    if (replay) {
      // after the subscribe response has been written (it is sent when this request's promise settles)
      setImmediate(guarded('media.event-replay', () => {
        if (session.subscriptions.has(subId)) session.connection?.sendNotification('onEvent', { value: { data: replay, object: o.id, type } });
      }));
    }
    return subId;
  }

  unsubscribe(session: MediaSession, subId: unknown): void {
    if (typeof subId !== 'string') throw KurentoErrors.marshall("'subscription' parameter should be a string");
    const sub = session.subscriptions.get(subId);
    if (!sub) return;
    session.subscriptions.delete(subId);
    const stillWanted = [...session.subscriptions.values()].some((s) => s.objectId === sub.objectId && s.type === sub.type);
    if (!stillWanted) this.subs.get(sub.objectId)?.get(sub.type)?.delete(session);
  }

  emitEvent(objectId: string, type: string, data: Record<string, unknown>): void {
    const sessions = this.subs.get(objectId)?.get(type);
    if (!sessions || sessions.size === 0) return;
    const params = { value: { data, object: objectId, type } };
    for (const s of sessions) s.connection?.sendNotification('onEvent', params);
  }

  // ---- release ----------------------------------------------------------------------------------

  /**
   * Global release: the pipeline, or any of a call's endpoints (RtpEndpoint, WebRtcEndpoint) that is
   * connected to another endpoint, releases the whole pipeline (docs/lifecycle.md, rule 5); an endpoint
   * connected to no other endpoint (never connected, or disconnected by a transfer) and any other element (a player, a recorder,
   * a pass-through, a hub and its ports) releases only itself as KMS does, so an app can drop an
   * announcement's player or a conference port while the call goes on. Unknown ids
   * succeed. `by` is the control session that asked: every OTHER session subscribed to an endpoint's
   * end events is told first (releaseNotice: reason control-release, detail released-by-other-session).
   */
  release(id: unknown, reason: LegEndReason = 'control-release', by?: MediaSession): Promise<void> {
    if (typeof id !== 'string') return Promise.reject(KurentoErrors.marshall("'object' parameter should be a string"));
    const pid = pipelineIdOf(id);
    const rec = pid ? this.pipelines.get(pid) : undefined;
    if (!rec) return Promise.resolve();
    const element = id !== pid ? rec.elements.get(id) : undefined;
    // an endpoint connected to no other endpoint is no longer one of the call's (a transfer swapped it
    // out; a recorder or player may still hang on it): it goes alone
    const detached = element !== undefined && isCallEndpoint(element) && !connectedToCallEndpoint(element);
    if (element && (!isCallEndpoint(element) || detached) && !rec.release) return this.releaseElement(rec, element, reason);
    if (!rec.release) {
      if (by) this.tellOtherSessions(rec, by);
      const release = this.releasePipeline(rec, reason);
      rec.release = release;
      // a release that throws is logged, counted and retried; a later release() call may try again too
      release.catch((err: unknown) => {
        if (rec.release === release) rec.release = undefined;
        if (!this.pipelines.has(rec.pipeline.id)) return;
        this.teardownRetries.failed(rec.pipeline.id, err, () => this.release(rec.pipeline.id, reason), { pipeline: rec.pipeline.id, reason });
      });
    }
    return rec.release;
  }

  /** One element that is not a call endpoint goes, with its children (a hub's ports); its pipeline stays. */
  private async releaseElement(rec: PipelineRecord, element: MediaObject, reason: LegEndReason): Promise<void> {
    const victims = [element, ...element.childIds().flatMap((id) => rec.elements.get(id) ?? [])];
    this.logger.info('releasing element', { pipeline: rec.pipeline.id, element: element.id, type: element.type, reason, children: victims.length - 1 });
    for (const e of victims) {
      rec.elements.delete(e.id);
      rec.elementCreators.delete(e.id);
      rec.pipeline.removeChild(e.id);
      this.objects.delete(e.id);
      this.dropSubscriptions(e.id);
      e.muteEvents();
    }
    await Promise.all(
      victims.map((e) =>
        e.teardown({ notifyPeer: true }).catch((err: unknown) =>
          this.teardownRetries.failed(e.id, err, () => e.teardown({ notifyPeer: false }), { element: e.id, pipeline: rec.pipeline.id, reason })),
      ),
    );
    for (const e of victims) this.manager.objectDestroyed(e.id);
  }

  /** Release from a timer or an event, where nobody awaits the result: a failure is logged and retried by release() itself. */
  private releaseInBackground(pid: string, reason: LegEndReason): void {
    this.release(pid, reason).catch(() => undefined);
  }

  /** A pipeline is being released by session `by`: its endpoints' other subscribers get the end events now. */
  private tellOtherSessions(rec: PipelineRecord, by: MediaSession): void {
    const told = new Set<string>();
    for (const e of rec.elements.values()) {
      if (!isCallEndpoint(e)) continue;
      for (const { type, data } of e.releaseNotice(RELEASED_BY_OTHER_SESSION)) {
        for (const s of this.subs.get(e.id)?.get(type) ?? []) {
          if (s === by || !s.connection) continue;
          s.connection.sendNotification('onEvent', { value: { data, object: e.id, type } });
          told.add(s.id);
        }
      }
    }
    if (told.size > 0) {
      this.logger.info('pipeline released by another session', { pipeline: rec.pipeline.id, releasedBy: by.id, told: [...told] });
    }
  }

  /** Drop one session's ownership; the pipeline goes when nobody owns it any more (KMS unref). */
  async unref(session: MediaSession, id: unknown): Promise<void> {
    if (typeof id !== 'string') throw KurentoErrors.marshall("'object' parameter should be a string");
    const pid = pipelineIdOf(id);
    const rec = pid ? this.pipelines.get(pid) : undefined;
    if (!rec) return;
    rec.owners.delete(session);
    session.pipelines.delete(rec.pipeline.id);
    if (rec.owners.size === 0) await this.release(rec.pipeline.id, 'control-release');
    this.expireIfIdle(session, true);
  }

  /** closeSession: drop (or release, with `release: true`) everything the session owns, and forget it. */
  async closeSession(session: MediaSession, release: boolean): Promise<void> {
    for (const pid of [...session.pipelines]) {
      if (release) await this.release(pid, 'control-release', session);
      else await this.unref(session, pid);
    }
    session.connection = undefined;
    this.expireIfIdle(session);
  }

  private async releasePipeline(rec: PipelineRecord, reason: LegEndReason): Promise<void> {
    const pid = rec.pipeline.id;
    rec.graceTimer?.cancel();
    rec.orphanTimer?.cancel();
    rec.graceTimer = rec.orphanTimer = undefined;
    this.logger.info('releasing pipeline', { pipeline: pid, reason, elements: rec.elements.size, orphaned: this.isOrphaned(rec) });
    if (!rec.releaseCounted) this.releases.set(reason, (this.releases.get(reason) ?? 0) + 1);
    rec.releaseCounted = true;
    const elements = [...rec.elements.values()];
    rec.pipeline.muteEvents();
    for (const e of elements) e.muteEvents();
    // an element whose teardown fails (its sockets would not close) is logged and retried, not forgotten
    await Promise.all(
      elements.map((e) =>
        e.teardown({ notifyPeer: true }).catch((err: unknown) =>
          this.teardownRetries.failed(e.id, err, () => e.teardown({ notifyPeer: false }), { element: e.id, pipeline: pid, reason })),
      ),
    );
    await rec.pipeline.teardown();
    // the worker forgets the pipeline (and tears down anything a racing create left there)
    if (rec.worker && !rec.lost) await rec.worker.request({ op: 'dropPipeline', pid }).catch(() => undefined);
    const ids = [...rec.elements.keys(), pid];
    for (const id of ids) {
      this.objects.delete(id);
      this.dropSubscriptions(id);
    }
    this.pipelines.delete(pid);
    for (const s of rec.owners) {
      s.pipelines.delete(pid);
      this.expireIfIdle(s, true);
    }
    rec.owners.clear();
    for (const id of ids) this.manager.objectDestroyed(id);
  }

  /** Every session's subscriptions to one object's events go with the object. */
  private dropSubscriptions(id: string): void {
    const byType = this.subs.get(id);
    if (!byType) return;
    for (const sessions of byType.values()) {
      for (const s of sessions) for (const [subId, sub] of s.subscriptions) if (sub.objectId === id) s.subscriptions.delete(subId);
    }
    this.subs.delete(id);
  }

  // ---- lifecycle policy ---------------------------------------------------------------------------

  legEnded(elementId: string, reason: LegEndReason): void {
    this.legEnds.set(reason, (this.legEnds.get(reason) ?? 0) + 1);
    const pid = pipelineIdOf(elementId);
    if (pid) this.evaluate(pid, reason);
  }

  private isOrphaned(rec: PipelineRecord): boolean {
    for (const s of rec.owners) if (s.connection) return false;
    return true;
  }

  /** Apply FERRY_MEDIA_AUTO_RELEASE to one pipeline after something changed (a leg ended, an owner came or went). */
  private evaluate(pid: string, reasonHint?: LegEndReason): void {
    const rec = this.pipelines.get(pid);
    if (!rec || rec.release) return;
    let ended: LegEndReason | undefined = reasonHint;
    let live = false;
    for (const e of rec.elements.values()) {
      if (isCallEndpoint(e)) {
        ended ??= e.endReason;
        if (e.mediaLive) live = true;
      }
    }
    const policy = this.o.config.autoRelease;
    const orphaned = this.isOrphaned(rec);
    if (orphaned) {
      if (ended && policy !== 'never') {
        this.releaseInBackground(pid, ended);
        return;
      }
      if (!live && !rec.orphanTimer) {
        rec.orphanTimer = this.o.clock.setTimeout(() => {
          rec.orphanTimer = undefined;
          const r = this.pipelines.get(pid);
          if (!r || r.release || !this.isOrphaned(r)) return;
          if (this.hasLiveMedia(r)) return;
          this.releaseInBackground(pid, 'session-expired');
        }, this.o.orphanTtlMs);
      }
      return;
    }
    rec.orphanTimer?.cancel();
    rec.orphanTimer = undefined;
    if (ended && policy === 'always' && !rec.graceTimer) {
      const reason = ended;
      rec.graceTimer = this.o.clock.setTimeout(() => {
        rec.graceTimer = undefined;
        this.releaseInBackground(pid, reason);
      }, this.o.config.releaseGraceMs);
    }
  }

  // ---- reporting --------------------------------------------------------------------------------

  stats(): Record<string, unknown> {
    let elements = 0;
    let boundPorts = 0;
    const pipelinesDetail = [...this.pipelines.values()].map((rec) => {
      elements += rec.elements.size;
      const els = [...rec.elements.values()].map((e) => {
        boundPorts += e.boundPorts();
        return e.describeForStats();
      });
      return {
        id: rec.pipeline.id,
        ...(rec.worker ? { worker: rec.worker.id } : {}),
        owners: [...rec.owners].map((s) => s.id),
        orphaned: this.isOrphaned(rec),
        releasing: rec.release !== undefined,
        elements: els,
      };
    });
    return {
      pipelines: this.pipelines.size,
      elements,
      sessions: this.sessions.size,
      boundPorts,
      pipelinesDetail,
      legEndsByReason: Object.fromEntries(this.legEnds),
      releasesByReason: Object.fromEntries(this.releases),
      teardownFailures: this.teardownRetries.stats(),
      quotas: { ...this.o.config.quotas, portsCounted: this.portsCounted().server, refusals: Object.fromEntries(this.quotaRefusals) },
      sessionsDetail: [...this.sessions.values()].map((s) => ({
        id: s.id,
        bound: s.connection !== undefined,
        pipelines: [...s.pipelines],
        subscriptions: s.subscriptions.size,
      })),
    };
  }

  pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Release everything (shutdown): peers are told, sockets closed, sessions forgotten. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.pipelines.keys()].map((pid) => this.release(pid, 'control-release').catch(() => undefined)));
    await this.teardownRetries.flush();
    for (const s of [...this.sessions.values()]) {
      s.connection = undefined;
      this.expireIfIdle(s);
    }
  }
}

/** `<pid>_kurento.MediaPipeline/<eid>_kurento.X` -> `<pid>_kurento.MediaPipeline`; undefined for other ids. */
export function pipelineIdOf(id: string): string | undefined {
  const slash = id.indexOf('/');
  const head = slash < 0 ? id : id.slice(0, slash);
  return head.endsWith('_kurento.MediaPipeline') ? head : undefined;
}

/** An RtpEndpoint or WebRtcEndpoint, here or in a relay worker: a call's endpoint (lifecycle rule 5). */
function isCallEndpoint(e: HeldElement): e is SdpEndpoint | RemoteElement {
  return e instanceof SdpEndpoint || (e instanceof RemoteElement && e.callEndpoint);
}

/** Connected to another call endpoint (then releasing it releases the whole pipeline). */
function connectedToCallEndpoint(e: SdpEndpoint | RemoteElement): boolean {
  return e instanceof RemoteElement ? e.connectedToCallEndpoint : e.connectedPeers().some((p) => p instanceof SdpEndpoint);
}
