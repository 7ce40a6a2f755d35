import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Clock, systemClock } from '../../common/clock';
import { CallRecord } from './call-record';
import { Registration } from './registration';
import { StateStore } from './state-store';

/**
 * The state store on Redis (ioredis). Keys, all under a configurable prefix (default `ferry:`):
 *   call:<id>          JSON call record; no TTL while live, PX ttl after it ended (backstop only)
 *   calls              set of call ids (listing)
 *   reg:<user>         hash contact -> JSON registration; key expires with the last binding
 *   regs               sorted set "<user> <contact>" scored by expiry (counting)
 *   lease:<instance>   gateway instance lease, PX = lease time, renewed while the gateway lives
 *   adopt:<callId>     adoption claim, SET NX PX, so only one gateway adopts a call
 *   key:<name>         secrets shared by all gateways (digest nonce key), created once with SET NX
 */
export class RedisStateStore implements StateStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;

  constructor(url: string, private readonly prefix = 'ferry:', private readonly clock: Clock = systemClock) {
    this.redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3, enableOfflineQueue: true });
    // a Redis outage must not crash the gateway: operations reject and callers log
    this.redis.on('error', () => {});
  }

  private k(s: string): string {
    return this.prefix + s;
  }

  async putRegistration(reg: Registration): Promise<void> {
    const key = this.k(`reg:${reg.user}`);
    await this.redis
      .multi()
      .hset(key, reg.contact, JSON.stringify(reg))
      .pexpireat(key, Math.max(reg.expiresAt, await this.latestExpiry(reg.user)))
      .zadd(this.k('regs'), reg.expiresAt, `${reg.user} ${reg.contact}`)
      .exec();
  }

  private async latestExpiry(user: string): Promise<number> {
    const all = await this.redis.hvals(this.k(`reg:${user}`));
    return all.reduce((m, j) => Math.max(m, (JSON.parse(j) as Registration).expiresAt), 0);
  }

  async getRegistrations(user: string): Promise<Registration[]> {
    const now = this.clock.now();
    const all = await this.redis.hgetall(this.k(`reg:${user}`));
    const live: Registration[] = [];
    for (const [contact, json] of Object.entries(all)) {
      const r = JSON.parse(json) as Registration;
      if (r.expiresAt > now) live.push(r);
      else await this.removeRegistration(user, contact);
    }
    return live;
  }

  async removeRegistration(user: string, contact: string): Promise<void> {
    await this.redis.multi().hdel(this.k(`reg:${user}`), contact).zrem(this.k('regs'), `${user} ${contact}`).exec();
  }

  async countRegistrations(): Promise<number> {
    await this.redis.zremrangebyscore(this.k('regs'), '-inf', this.clock.now());
    return this.redis.zcard(this.k('regs'));
  }

  async putCall(record: CallRecord, ttlMs?: number): Promise<void> {
    const key = this.k(`call:${record.id}`);
    const json = JSON.stringify(record);
    const m = this.redis.multi();
    if (ttlMs !== undefined) m.set(key, json, 'PX', Math.max(1, Math.round(ttlMs)));
    else m.set(key, json);
    m.sadd(this.k('calls'), record.id);
    await m.exec();
  }

  async getCall(id: string): Promise<CallRecord | undefined> {
    const json = await this.redis.get(this.k(`call:${id}`));
    return json ? (JSON.parse(json) as CallRecord) : undefined;
  }

  async listCalls(): Promise<CallRecord[]> {
    const ids = await this.redis.smembers(this.k('calls'));
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => this.k(`call:${id}`)));
    const out: CallRecord[] = [];
    const gone: string[] = [];
    values.forEach((v, i) => {
      if (v) out.push(JSON.parse(v) as CallRecord);
      else gone.push(ids[i]!);
    });
    if (gone.length > 0) await this.redis.srem(this.k('calls'), ...gone);
    return out;
  }

  async deleteCall(id: string): Promise<void> {
    await this.redis.multi().del(this.k(`call:${id}`), this.k(`adopt:${id}`)).srem(this.k('calls'), id).exec();
  }

  async countCallKeys(): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.k('call:*'), 'COUNT', 500);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  }

  async renewLease(instanceId: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.k(`lease:${instanceId}`), String(this.clock.now() + ttlMs), 'PX', ttlMs);
  }

  async dropLease(instanceId: string): Promise<void> {
    await this.redis.del(this.k(`lease:${instanceId}`));
  }

  async leaseAlive(instanceId: string): Promise<boolean> {
    return (await this.redis.exists(this.k(`lease:${instanceId}`))) === 1;
  }

  async claimAdoption(callId: string, instanceId: string, ttlMs: number): Promise<boolean> {
    const key = this.k(`adopt:${callId}`);
    const ok = await this.redis.set(key, instanceId, 'PX', ttlMs, 'NX');
    if (ok === 'OK') return true;
    return (await this.redis.get(key)) === instanceId;
  }

  async sharedKey(name: string): Promise<Buffer> {
    const key = this.k(`key:${name}`);
    await this.redis.set(key, randomBytes(32).toString('hex'), 'NX');
    return Buffer.from((await this.redis.get(key))!, 'hex');
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
