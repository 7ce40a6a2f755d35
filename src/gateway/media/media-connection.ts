import { EventEmitter } from 'node:events';
import { Logger } from '../../common/logger';
import { KClient, KMediaObject, KMediaPipeline, KurentoFactory } from './kurento-types';

/**
 * kurento-client objects turn every new listener into a server subscription (a 'newListener'
 * hook) and refuse 'error' there; yet they emit 'error' when a subscription or unsubscription
 * fails, which would crash the process unhandled (kurento-protocol.md §2.3). So the guard is
 * installed in the emitter's listener table directly, bypassing the hook.
 */
export function guardErrors(o: EventEmitter, fn: (err: Error) => void): void {
  const e = o as unknown as { _events?: Record<string, unknown>; _eventsCount?: number };
  if (!e._events || e._events.error) return;
  e._events.error = fn;
  e._eventsCount = (e._eventsCount ?? 0) + 1;
}

/**
 * The gateway's one connection to the media server (ferry media or a real KMS) through the
 * unmodified kurento-client. Guards the client so a media-server restart never kills the gateway
 * (kurento-protocol.md §7: a refused reconnect throws an unhandled 'error' otherwise).
 */
export class MediaConnection extends EventEmitter {
  private client: KClient | undefined;

  constructor(private readonly url: string, private readonly log: Logger) {
    super();
  }

  async connect(timeoutMs = 15000): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const kurento = require('kurento-client') as KurentoFactory;
    const pending = kurento(this.url, { failAfter: Infinity, request_timeout: 20000 });
    const timer = new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new Error(`media server at ${this.url} did not answer within ${timeoutMs} ms`)), timeoutMs);
      t.unref();
    });
    const client = await Promise.race([Promise.resolve(pending), timer]);
    this.client = client;
    client._re?.on('error', (err: Error) => this.log.warn('media connection error', { err: err.message }));
    client.on('error', (err: Error) => this.log.warn('media client error', { err: err?.message }));
    client.on('disconnect', () => this.log.warn('media server connection lost'));
    client.on('reconnected', (same: boolean) => {
      this.log.info('media server reconnected', { sameSession: same });
      this.emit('reconnected', same);
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
    try {
      this.client?.close();
    } catch {
      /* already closed */
    }
    this.client = undefined;
  }
}
