import Redis from 'ioredis';
import { Cdr } from './cdr';
import { CdrPage, CdrQuery, CdrStore } from './cdr-store';

/**
 * CDRs in Redis: `<prefix>cdr:<callId>` holds the CDR's JSON with the retention as its TTL, and the
 * sorted set `<prefix>cdrs` indexes the call ids by end time (members older than the retention are
 * trimmed on every write; a member whose CDR expired is skipped on reading).
 */
export class RedisCdrStore implements CdrStore {
  readonly name = 'redis';
  private readonly redis: Redis;

  constructor(url: string, private readonly prefix: string, private readonly retentionMs: number, private readonly now: () => number = Date.now) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 2, commandTimeout: 2000, retryStrategy: (n: number) => Math.min(n * 100, 2000) });
    this.redis.on('error', () => {}); // a Redis outage: writes reject and are logged by the caller
  }

  private key(callId: string): string {
    return `${this.prefix}cdr:${callId}`;
  }

  private get index(): string {
    return `${this.prefix}cdrs`;
  }

  async write(cdr: Cdr): Promise<void> {
    await this.redis
      .multi()
      .set(this.key(cdr.callId), JSON.stringify(cdr), 'PX', this.retentionMs)
      .zadd(this.index, cdr.endedAt, cdr.callId)
      .zremrangebyscore(this.index, '-inf', `(${this.now() - this.retentionMs}`)
      .pexpire(this.index, this.retentionMs)
      .exec();
  }

  async list(q: CdrQuery): Promise<CdrPage> {
    const ids = await this.redis.zrangebyscore(this.index, q.from, `(${q.to}`, 'LIMIT', q.offset, q.limit + 1);
    const more = ids.length > q.limit;
    const page = ids.slice(0, q.limit);
    const raw = page.length ? await this.redis.mget(page.map((id) => this.key(id))) : [];
    const cdrs = raw.filter((x): x is string => typeof x === 'string').map((x) => JSON.parse(x) as Cdr);
    return { cdrs, ...(more ? { nextOffset: q.offset + q.limit } : {}) };
  }

  async get(callId: string): Promise<Cdr | undefined> {
    const raw = await this.redis.get(this.key(callId));
    return raw ? (JSON.parse(raw) as Cdr) : undefined;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
