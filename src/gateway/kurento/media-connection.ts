import { EventEmitter } from 'node:events';
import { Logger } from '../../common/logger';
import { guardReconnectTransports } from './kurento-transport-guard';
import { KClient, KMediaObject, KMediaPipeline, KurentoFactory } from './kurento-types';
import { DEFAULT_MEDIA_PING_TIMEOUT_MS, LivenessTransport, MediaLiveness } from './media-liveness';
import { RedialSchedule } from './redial-schedule';

/**
 * kurento-client objects turn every new listener into a server subscription (a 'newListener'
 * hook) and refuse 'error' there; yet they emit 'error' when a subscription or unsubscription
 * fails, which would crash the process unhandled. So the guard is
 * installed in the emitter's listener table directly, bypassing the hook.
 */
export function guardErrors(o: EventEmitter, fn: (err: Error) => void): void {
  const e = o as unknown as { _events?: Record<string, unknown>; _eventsCount?: number };
  if (!e._events || e._events.error) return;
  e._events.error = fn;
  e._eventsCount = (e._eventsCount ?? 0) + 1;
}

/** A media request given up because the media server is unreachable (or was lost while it was pending). */
export class MediaUnavailableError extends Error {
  constructor(message = 'media server unreachable') {
    super(message);
    this.name = 'MediaUnavailableError';
  }
}

export interface MediaConnectionEvents {
  /** the control connection to the media server dropped (it was up) */
  lost: [];
  /** the control connection is back; `sameSession`: the server still knew our session (a mere blip) */
  restored: [sameSession: boolean];
}

export interface MediaConnectionOptions {
  /** no answer to the gateway's pings for this long: the server is lost (0: not watched) */
  pingTimeoutMs?: number;
}

/**
 * The gateway's one connection to the media server (ferry media or a real KMS) through the
 * unmodified kurento-client, and whether that server is reachable right now.
 *
 * Reconnection is kurento-client's own (it re-sends `connect` with its session id, so after a mere
 * control-connection blip the server re-binds the session: subscriptions and ownership survive,
 * which a fresh client could not offer). Two things are added around it: every transport stream
 * gets an 'error' guard (a refused reconnect otherwise crashes the process),
 * and the attempts are paced by RedialSchedule (100 ms doubling to 0.5 s) instead of kurento-client's
 * own Fibonacci back-off (100 ms growing to 10 s, not configurable through kurento-client), which
 * would leave new calls refused for up to 10 s after the media server is back: after each lost
 * transport the reconnector's own back-off is switched off (`reconnect = false`) and each paced
 * attempt switches it on for that one attempt (`reset()`).
 *
 * A server that stops answering without closing the connection (hung, SIGSTOPped, its packets
 * black-holed) is found by MediaLiveness: no answer to the gateway's Kurento pings for
 * `pingTimeoutMs` (FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS) drops the connection and the server is lost
 * exactly as if the connection had closed (`lost`, then the paced reconnection).
 */
export class MediaConnection extends EventEmitter<MediaConnectionEvents> {
  private client: KClient | undefined;
  private state: 'idle' | 'up' | 'down' | 'closed' = 'idle';
  private attemptInFlight = false;
  private redialTimer: NodeJS.Timeout | undefined;
  private readonly schedule = new RedialSchedule();
  private lostAt = 0;
  private readonly liveness: MediaLiveness;
  private unanswered = 0;

  constructor(readonly url: string, private readonly log: Logger, opts: MediaConnectionOptions = {}) {
    super();
    const pingTimeoutMs = opts.pingTimeoutMs ?? DEFAULT_MEDIA_PING_TIMEOUT_MS;
    this.liveness = new MediaLiveness({ timeoutMs: pingTimeoutMs, onDeaf: (silentMs) => this.onDeaf(silentMs, pingTimeoutMs) });
    // every pending guarded request and every deferred release listens for lost/restored
    this.setMaxListeners(0);
  }

  /** times this server was dropped as not answering the gateway's pings (`onDeaf`; a closed connection is not counted) */
  get unansweredTotal(): number {
    return this.unanswered;
  }

  /** the media server answers our control connection right now (new calls can get media) */
  get isUp(): boolean {
    return this.state === 'up';
  }

  /**
   * Connects; rejects when the server has not answered within `timeoutMs`. With `keepTrying` (one of
   * several media servers) a server that does not answer in time is not given up: the paced attempts
   * go on, and once it answers it is up and `restored` is emitted.
   */
  async connect(timeoutMs = 15000, opts: { keepTrying?: boolean } = {}): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const kurento = require('kurento-client') as KurentoFactory;
    const pending = kurento(this.url, { failAfter: Infinity, request_timeout: 20000 });
    const client = pending as unknown as KClient;
    this.client = client;
    this.watch(client);
    // kurento-client started its first attempt in its constructor, before our listeners existed
    this.attemptInFlight = !client._re?.connected;
    this.state = 'down';
    this.scheduleRedial();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`media server at ${this.url} did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const answered = Promise.resolve(pending);
    try {
      await Promise.race([answered, timeout]);
    } catch (err) {
      if (opts.keepTrying && this.state === 'down') {
        this.lostAt = Date.now();
        answered.then(
          () => {
            if (this.state !== 'down') return;
            this.markUp();
            this.log.info('media server answered', { url: this.url, afterMs: Date.now() - this.lostAt });
            this.emit('restored', false);
          },
          () => undefined,
        );
      } else {
        this.close();
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.markUp();
  }

  /**
   * The connection to the media server a call's objects are on: `mediaUrl` from the call's record
   * (or found from its pipeline id). One connection is its own answer; a set of media servers
   * (MediaServerSet) answers with the connection to that server.
   */
  async connectionFor(_mediaUrl: string | undefined, _pipelineId: string): Promise<MediaConnection> {
    return this;
  }

  private watch(client: KClient): void {
    const re = client._re;
    client.on('error', (err: Error) => this.log.warn('media client error', { err: err?.message }));
    if (!re) return;
    guardReconnectTransports(re, (err) => this.log.debug('media connection attempt failed', { err: err?.message }));
    re.on('reconnect', () => {
      this.attemptInFlight = true;
    });
    re.on('connect', () => {
      this.attemptInFlight = false;
    });
    re.on('disconnect', () => {
      this.attemptInFlight = false;
      // emitted before the reconnector schedules its own next attempt: this stops it (ours are paced)
      if (this.state !== 'closed') re.reconnect = false;
      if (this.state === 'up') this.markDown();
      if (this.state === 'down') this.scheduleRedial();
    });
    client.on('reconnected', (sameSession: boolean) => {
      if (this.state !== 'down') return;
      this.markUp();
      this.log.info('media server reconnected', { sameSession, downMs: Date.now() - this.lostAt });
      this.emit('restored', sameSession);
    });
  }

  private markUp(): void {
    if (this.state === 'closed') return;
    this.state = 'up';
    this.schedule.reset();
    this.cancelRedial();
    this.liveness.start(this.client?._re?._connection as LivenessTransport | undefined);
  }

  private markDown(): void {
    this.liveness.stop();
    this.state = 'down';
    this.lostAt = Date.now();
    this.log.warn('media server connection lost', { url: this.url });
    this.emit('lost');
  }

  /**
   * The server answered none of the pings for the bound: its connection is dropped (the TCP socket
   * destroyed, not closed politely: a deaf peer would never finish a close) and the server is lost
   * from here on, as when a connection closes; the paced reconnection tries it again.
   */
  private onDeaf(silentMs: number, timeoutMs: number): void {
    if (this.state !== 'up') return;
    this.unanswered++;
    this.log.warn('media server not answering: treating it as lost', { url: this.url, silentMs, pingTimeoutMs: timeoutMs });
    const con = this.client?._re?._connection as (LivenessTransport & { socket?: { _socket?: { destroy(): void } }; destroy?: () => void }) | undefined;
    try {
      con?.socket?._socket?.destroy();
    } catch {
      /* already gone */
    }
    try {
      con?.destroy?.();
    } catch {
      /* already gone */
    }
    this.markDown();
    this.scheduleRedial();
  }

  /** one paced attempt: kurento-client's reconnector is restarted at once when no attempt is running */
  private scheduleRedial(): void {
    if (this.redialTimer || this.state !== 'down') return;
    this.redialTimer = setTimeout(() => {
      this.redialTimer = undefined;
      const re = this.client?._re;
      if (this.state !== 'down' || !re) return;
      if (!re.connected && !this.attemptInFlight) {
        try {
          re.reconnect = true;
          re.reset();
        } catch (err) {
          this.log.warn('media reconnect attempt failed to start', { err: (err as Error).message });
        }
      }
      this.scheduleRedial();
    }, this.schedule.next());
  }

  private cancelRedial(): void {
    if (this.redialTimer) clearTimeout(this.redialTimer);
    this.redialTimer = undefined;
  }

  /**
   * `work` (a request to the media server), given up at once with MediaUnavailableError when the
   * server is unreachable or is lost before it answers — kurento-client itself would wait for its
   * 20 s request timeout. The abandoned request's own outcome is swallowed.
   */
  guard<T>(work: Promise<T>): Promise<T> {
    if (this.state !== 'up') {
      work.catch(() => undefined);
      return Promise.reject(new MediaUnavailableError());
    }
    return new Promise<T>((resolve, reject) => {
      const onLost = (): void => {
        work.catch(() => undefined);
        reject(new MediaUnavailableError('media server lost while a request was pending'));
      };
      this.once('lost', onLost);
      work.then(
        (v) => {
          this.off('lost', onLost);
          resolve(v);
        },
        (err: unknown) => {
          this.off('lost', onLost);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private get c(): KClient {
    if (!this.client) throw new Error('media server not connected');
    return this.client;
  }

  async createPipeline(): Promise<KMediaPipeline> {
    const p = await this.c.create('MediaPipeline');
    guardErrors(p, (err) => this.log.warn('pipeline error', { pipelineId: p.id, err: err?.message }));
    return p;
  }

  async byId<T extends KMediaObject>(id: string): Promise<T> {
    const o = (await this.c.getMediaobjectById(id)) as T;
    guardErrors(o, (err) => this.log.warn('media object error', { objectId: id, err: err?.message }));
    return o;
  }

  close(): void {
    this.state = 'closed';
    this.liveness.stop();
    this.cancelRedial();
    try {
      this.client?.close();
    } catch {
      /* already closed */
    }
    this.client = undefined;
  }
}
