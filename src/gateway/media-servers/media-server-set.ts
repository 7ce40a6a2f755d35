import { Logger } from '../../common/logger';
import { MediaConnection } from '../kurento/media-connection';
import { KMediaObject, KMediaPipeline } from '../kurento/kurento-types';
import { MediaStatsPoller } from './media-stats-poller';
import { mediaUrlKey, statsUrlOf } from './media-url-list';
import { choosePlacement, PlacementCandidate } from './placement';

export interface MediaServerSetOptions {
  /** FERRY_MEDIA_URL, in order (at least one) */
  urls: readonly string[];
  log: Logger;
  /** how often each listed server's GET /stats is read */
  statsIntervalMs: number;
  /** bound of one GET /stats (default 1500 ms) */
  statsTimeoutMs?: number;
  /** this gateway's live calls whose record names this media server (the load of a server without /stats) */
  liveCallsOn: (url: string) => number;
  /** the media URL in the record of the call whose pipeline this is, when this gateway drives that call */
  urlOfPipeline: (pipelineId: string) => string | undefined;
  /** starts watching one server's connection for its loss (the gateway's MediaLossMonitor); returns how to stop */
  watch: (conn: MediaConnection) => { stop(): void };
  /** how long a call's record's media server that is not in the list may take to answer (adoption) */
  unlistedConnectTimeoutMs?: number;
  /** a server that answers none of the gateway's pings for this long is lost (FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS; 0: not watched) */
  pingTimeoutMs?: number;
}

/** one media server this gateway talks to */
interface MediaServer {
  url: string;
  conn: MediaConnection;
  /** in FERRY_MEDIA_URL (new calls may go there); an unlisted one is only there for calls adopted onto it */
  listed: boolean;
  stats: MediaStatsPoller | undefined;
  placedTotal: number;
  /** when each call placed here since the request behind the last /stats figures was sent */
  placedSince: number[];
  watcher: { stop(): void } | undefined;
}

/** a new call's media server */
export type Placement = { ok: true; url: string; conn: MediaConnection } | { ok: false; detail: string };

/** with several servers, how long start-up waits for the others once one has answered (the rest join later) */
const START_SPREAD_MS = 2000;
/** how often unlisted servers without calls are let go */
const SWEEP_MS = 10_000;

/**
 * Every media server of the gateway (FERRY_MEDIA_URL, one or more): one kurento-client connection
 * each (MediaConnection, with its own reconnection and loss handling), one GET /stats poll each.
 *
 * - **Placement** (`place()`): a new call goes to the listed server, up and not draining, with the
 *   fewest pipelines by its last /stats (plus the calls placed there since), ties to the lower
 *   event-loop lag; a server without /stats (a real KMS) is loaded by this gateway's live calls there.
 * - **A call stays where it started**: its CallMedia holds that server's connection, so every
 *   request of the call goes there; adoption finds the server from the call's record
 *   (`connectionFor`), connecting to one that is not in the list.
 *
 * It is itself a MediaConnection for the code written against one media server (the transfer core and
 * the adopter take one): its `guard` leaves each request to its own server's guard (inside CallMedia),
 * and it creates no media objects of its own.
 */
export class MediaServerSet extends MediaConnection {
  private readonly servers = new Map<string, MediaServer>();
  private readonly unlistedConnecting = new Map<string, Promise<MediaConnection>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly setLog: Logger;

  constructor(private readonly o: MediaServerSetOptions) {
    super(o.urls.length === 1 ? o.urls[0]! : o.urls.join(','), o.log);
    this.setLog = o.log;
    if (o.urls.length === 0) throw new Error('at least one media server URL is needed');
    for (const url of o.urls) this.add(url, true);
  }

  private add(url: string, listed: boolean): MediaServer {
    const server: MediaServer = {
      url,
      conn: new MediaConnection(url, this.setLog.child({ mediaUrl: url }), { pingTimeoutMs: this.o.pingTimeoutMs }),
      listed,
      stats: listed ? new MediaStatsPoller({ statsUrl: statsUrlOf(url), intervalMs: this.o.statsIntervalMs, timeoutMs: this.o.statsTimeoutMs, log: this.setLog.child({ mediaUrl: url }) }) : undefined,
      placedTotal: 0,
      placedSince: [],
      watcher: undefined,
    };
    // a server back after a loss: earlier /stats failures say nothing any more, fresh figures at once
    server.conn.on('restored', () => server.stats?.freshStart());
    this.servers.set(mediaUrlKey(url), server);
    return server;
  }

  /** the listed servers, in FERRY_MEDIA_URL order */
  private listed(): MediaServer[] {
    return [...this.servers.values()].filter((s) => s.listed);
  }

  /** some media server answers (new calls can get media, unless every one answering is draining) */
  override get isUp(): boolean {
    return this.listed().some((s) => s.conn.isUp);
  }

  /**
   * Connects to every listed server. One server: as a single media server always did (rejects when
   * it does not answer within `timeoutMs`). Several: resolves once every server has answered, or
   * `START_SPREAD_MS` after the first one did; rejects only when none answered within `timeoutMs`.
   * A server that has not answered yet is tried on, and takes new calls once it answers.
   */
  override async connect(timeoutMs = 15000): Promise<void> {
    const servers = this.listed();
    for (const s of servers) s.watcher = this.o.watch(s.conn);
    if (servers.length === 1) {
      await servers[0]!.conn.connect(timeoutMs);
    } else {
      const attempts = servers.map((s) => s.conn.connect(timeoutMs, { keepTrying: true }));
      const settled = Promise.allSettled(attempts);
      let spreadTimer: NodeJS.Timeout | undefined;
      const firstThenSpread = Promise.any(attempts).then(
        () => new Promise<void>((r) => (spreadTimer = setTimeout(r, START_SPREAD_MS))),
        () => undefined,
      );
      await Promise.race([settled, firstThenSpread]);
      clearTimeout(spreadTimer);
      if (!servers.some((s) => s.conn.isUp)) {
        const results = await settled;
        if (!servers.some((s) => s.conn.isUp)) {
          this.close();
          throw new Error(`no media server answered: ${results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'answered')).join('; ')}`);
        }
      }
      const late = servers.filter((s) => !s.conn.isUp).map((s) => s.url);
      if (late.length > 0) this.setLog.warn('media servers not answering at start; new calls go to the others until they do', { mediaUrls: late });
    }
    for (const s of servers) s.stats?.start();
    this.sweepTimer = setInterval(() => this.sweepUnlisted(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** each call's requests are guarded by its own media server's connection (CallMedia), not by the set */
  override guard<T>(work: Promise<T>): Promise<T> {
    return work;
  }

  override createPipeline(): Promise<KMediaPipeline> {
    return Promise.reject(new Error('a new call is placed on one media server first (MediaServerSet.place)'));
  }

  override byId<T extends KMediaObject>(_id: string): Promise<T> {
    return Promise.reject(new Error("a call's objects are found on its own media server (MediaServerSet.connectionFor)"));
  }

  /**
   * The connection to the server a call's pipeline is on: the record's `mediaUrl` (or, without it,
   * the URL of the call this gateway drives with that pipeline; else the first listed server). A
   * server not in FERRY_MEDIA_URL is connected to (its calls stay there); when it does not answer,
   * this rejects and the adopting gateway finishes the call (both parties BYEd).
   */
  override async connectionFor(mediaUrl: string | undefined, pipelineId: string): Promise<MediaConnection> {
    const url = mediaUrl ?? this.o.urlOfPipeline(pipelineId);
    if (url === undefined) return this.listed()[0]!.conn;
    const key = mediaUrlKey(url);
    const known = this.servers.get(key);
    if (known) return known.conn;
    const connecting = this.unlistedConnecting.get(key);
    if (connecting) return connecting;
    const attempt = this.connectUnlisted(url, key);
    this.unlistedConnecting.set(key, attempt);
    try {
      return await attempt;
    } finally {
      this.unlistedConnecting.delete(key);
    }
  }

  private async connectUnlisted(url: string, key: string): Promise<MediaConnection> {
    if (this.closed) throw new Error('media servers closed');
    this.setLog.info("connecting to a call's media server that is not in FERRY_MEDIA_URL", { mediaUrl: url });
    const server = this.add(url, false);
    server.watcher = this.o.watch(server.conn);
    try {
      await server.conn.connect(this.o.unlistedConnectTimeoutMs ?? 5000);
      return server.conn;
    } catch (err) {
      server.watcher.stop();
      this.servers.delete(key);
      throw new Error(`the call's media server ${url} (not in FERRY_MEDIA_URL) did not answer: ${(err as Error).message}`);
    }
  }

  /** unlisted servers no call of ours uses any more are let go */
  private sweepUnlisted(): void {
    for (const [key, s] of this.servers) {
      if (s.listed || this.unlistedConnecting.has(key) || this.o.liveCallsOn(s.url) > 0) continue;
      this.setLog.info('closing the connection to an unlisted media server: no call of ours is on it', { mediaUrl: s.url });
      s.watcher?.stop();
      s.conn.close();
      this.servers.delete(key);
    }
  }

  private candidate(s: MediaServer): PlacementCandidate {
    const st = s.stats;
    const withFigures = st?.outcome === 'stats' || (st?.outcome === 'failed' && st.figures !== undefined);
    let load: number;
    if (st && withFigures && st.figures) {
      s.placedSince = s.placedSince.filter((t) => t >= st.figuresSentAt);
      load = st.figures.pipelines + s.placedSince.length;
    } else {
      s.placedSince = [];
      load = this.o.liveCallsOn(s.url);
    }
    return {
      url: s.url,
      up: s.conn.isUp,
      draining: st?.figures?.draining === true,
      // only a server that has answered /stats before is judged by it (a KMS may not answer the GET at all)
      statsDown: st?.outcome === 'failed' && st.failuresInARow >= 2 && st.figures !== undefined,
      load,
      lagP99Ms: st?.figures?.eventLoopLagP99Ms,
    };
  }

  /** whether a new call could be placed now (nothing is counted) */
  canPlace(): { ok: true } | { ok: false; detail: string } {
    const result = choosePlacement(this.listed().map((s) => this.candidate(s)));
    return result.ok ? { ok: true } : result;
  }

  /** the media server for a new call (counted as placed there), or why there is none */
  place(): Placement {
    const servers = this.listed();
    const result = choosePlacement(servers.map((s) => this.candidate(s)));
    if (!result.ok) return result;
    const server = this.servers.get(mediaUrlKey(result.chosen.url))!;
    server.placedTotal++;
    server.placedSince.push(Date.now());
    if (servers.length > 1) this.setLog.debug('call placed', { mediaUrl: server.url, load: result.chosen.load });
    return { ok: true, url: server.url, conn: server.conn };
  }

  /** per media server: what /metrics shows (and /status could) */
  describe(): { url: string; listed: boolean; up: boolean; draining: boolean; stats: string; pipelines: number | undefined; calls: number; placedTotal: number; unansweredTotal: number }[] {
    return [...this.servers.values()].map((s) => {
      const c = this.candidate(s);
      return {
        url: s.url,
        listed: s.listed,
        up: c.up && !c.statsDown,
        draining: c.draining,
        stats: s.stats?.outcome ?? 'none',
        pipelines: s.stats?.outcome === 'stats' ? s.stats.figures?.pipelines : undefined,
        calls: this.o.liveCallsOn(s.url),
        placedTotal: s.placedTotal,
        unansweredTotal: s.conn.unansweredTotal,
      };
    });
  }

  metricLines(): string[] {
    const rows = this.describe();
    const label = (url: string): string => `url="${url.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
    const family = (name: string, type: 'gauge' | 'counter', help: string, value: (r: (typeof rows)[number]) => number | undefined): string[] => [
      `# HELP ${name} ${help}`,
      `# TYPE ${name} ${type}`,
      ...rows.flatMap((r) => {
        const v = value(r);
        return v === undefined ? [] : [`${name}{${label(r.url)}} ${v}`];
      }),
    ];
    return [
      ...family('ferry_media_server_up', 'gauge', "1 while the gateway's control connection to this media server is up and its /stats (when it has one) answers.", (r) => (r.up ? 1 : 0)),
      ...family('ferry_media_server_draining', 'gauge', "1 while this media server's /stats says draining: it gets no new calls.", (r) => (r.draining ? 1 : 0)),
      ...family('ferry_media_server_pipelines', 'gauge', "Pipelines on this media server by its last /stats (all its clients); absent for a server without /stats (a real KMS).", (r) => r.pipelines),
      ...family('ferry_media_server_calls', 'gauge', "Live calls of this gateway whose media is on this media server.", (r) => r.calls),
      ...family('ferry_media_server_calls_placed_total', 'counter', 'New calls this gateway placed on this media server.', (r) => (r.listed ? r.placedTotal : undefined)),
      ...family('ferry_media_server_unanswered_total', 'counter', "Times the gateway dropped its open control connection to this media server because the server answered none of its pings for FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS (then lost as if the connection had closed; a connection that closes is not counted here).", (r) => r.unansweredTotal),
    ];
  }

  override close(): void {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const s of this.servers.values()) {
      s.stats?.stop();
      s.watcher?.stop();
      s.conn.close();
    }
    super.close();
  }
}
