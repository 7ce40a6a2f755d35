import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Clock, systemClock } from '../../common/clock';
import { CallRecord } from './call-record';
import { Registration } from './registration';
import { StateStore, StoreHealth } from './state-store';

/**
 * The state store on Redis (ioredis). Keys, all under a configurable prefix (default `ferry:`):
 *   call:<id>          JSON call record; no TTL while live, PX ttl after it ended (backstop only)
 *   calls              set of call ids (listing)
 *   reg:<user>         hash contact -> JSON registration; key expires with the last binding
 *   regs               sorted set "<user> <contact>" scored by expiry (counting)
 *   lease:<instance>   gateway instance lease, PX = lease time, renewed while the gateway lives
 *   adopt:<callId>     adoption claim, SET NX PX, so only one gateway adopts a call
 *   key:<name>         secrets shared by all gateways (digest nonce key), created once with SET NX
 *   nonce:<nonce>      highest digest nonce count claimed, PX = nonce lifetime (replay check, Lua)
 *   authfail:<subject> authentication failures in the current window, PX = window (Lua)
 *   authlock:<subject> lockout of a source address or user, PX = lockout time
 */

/** KEYS[1] nonce key; ARGV nc, ttl ms: 1 when nc is higher than the stored count (then stored), else 0 */
const CLAIM_NONCE_COUNT = `
local seen = redis.call('GET', KEYS[1])
if seen and tonumber(seen) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** KEYS[1] failure counter, KEYS[2] lockout key; ARGV limit, window ms, lockout ms: 1 when this failure locks out */
const COUNT_AUTH_FAILURE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 1
end
return 0`;
export interface RedisStateStoreOptions {
  /** bound of every Redis command (ioredis commandTimeout) */
  commandTimeoutMs?: number;
  /** how long the first operations wait for the very first connection */
  connectTimeoutMs?: number;
}

/**
 * KEYS: the user's binding hash, the expiry index; ARGV: contact, registeredAt, index member. Deletes the
 * binding only when its stored `registeredAt` is the one given (1), else leaves it (0).
 */
const REMOVE_BINDING_IF = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, r = pcall(cjson.decode, v)
if not ok or type(r) ~= 'table' or r.registeredAt ~= tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
`;

export class RedisStateStore implements StateStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly connectionListeners: ((up: boolean) => void)[] = [];
  private readonly firstReady: Promise<void>;
  private everReady = false;

  constructor(url: string, private readonly prefix = 'ferry:', private readonly clock: Clock = systemClock, private readonly opts: RedisStateStoreOptions = {}) {
    // No offline queue: while Redis is unreachable a command fails at once instead of waiting for
    // the reconnection, and nothing stale is replayed when it returns (ResilientStateStore writes
    // back what matters). Every command is bounded by commandTimeout (a frozen Redis too).
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      retryStrategy: (attempt: number) => Math.min(attempt * 50, 500),
    });
    // a Redis outage must not crash the gateway: operations reject and callers (or the resilient store) log
    this.redis.on('error', () => {});
    let ready: () => void = () => {};
    this.firstReady = new Promise<void>((resolve) => (ready = resolve));
    this.redis.on('ready', () => {
      this.everReady = true;
      ready();
      for (const l of this.connectionListeners) l(true);
    });
    this.redis.on('close', () => {
      if (this.everReady) for (const l of this.connectionListeners) l(false);
    });
  }

  /** called with true when the connection to Redis is (again) ready, false when it is lost */
  onConnectionChange(listener: (up: boolean) => void): void {
    this.connectionListeners.push(listener);
  }

  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  health(): StoreHealth {
    return { up: this.connected, errorsTotal: 0 };
  }

  /** the client, once it has connected the first time (later, commands fail fast while disconnected) */
  private async r(): Promise<Redis> {
    if (!this.everReady) {
      const ms = this.opts.connectTimeoutMs ?? 10000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.firstReady,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection to Redis within ${ms} ms`)), ms);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.redis;
  }

  private k(s: string): string {
    return this.prefix + s;
  }

  async putRegistration(reg: Registration): Promise<void> {
    const key = this.k(`reg:${reg.user}`);
    await (await this.r())
      .multi()
      .hset(key, reg.contact, JSON.stringify(reg))
      .pexpireat(key, Math.max(reg.expiresAt, await this.latestExpiry(reg.user)))
      .zadd(this.k('regs'), reg.expiresAt, `${reg.user} ${reg.contact}`)
      .exec();
  }

  private async latestExpiry(user: string): Promise<number> {
    const all = await (await this.r()).hvals(this.k(`reg:${user}`));
    return all.reduce((m, j) => Math.max(m, (JSON.parse(j) as Registration).expiresAt), 0);
  }

  async getRegistrations(user: string): Promise<Registration[]> {
    const now = this.clock.now();
    const all = await (await this.r()).hgetall(this.k(`reg:${user}`));
    const live: Registration[] = [];
    for (const [contact, json] of Object.entries(all)) {
      const r = JSON.parse(json) as Registration;
      if (r.expiresAt > now) live.push(r);
      else await this.removeRegistration(user, contact);
    }
    return live;
  }

  async removeRegistration(user: string, contact: string): Promise<void> {
    await (await this.r()).multi().hdel(this.k(`reg:${user}`), contact).zrem(this.k('regs'), `${user} ${contact}`).exec();
  }

  async removeRegistrationIf(user: string, contact: string, registeredAt: number): Promise<boolean> {
    const removed = await (await this.r()).eval(REMOVE_BINDING_IF, 2, this.k(`reg:${user}`), this.k('regs'), contact, String(registeredAt), `${user} ${contact}`);
    return removed === 1;
  }

  async countRegistrations(): Promise<number> {
    await (await this.r()).zremrangebyscore(this.k('regs'), '-inf', this.clock.now());
    return (await this.r()).zcard(this.k('regs'));
  }

  async putCall(record: CallRecord, ttlMs?: number): Promise<void> {
    const key = this.k(`call:${record.id}`);
    const json = JSON.stringify(record);
    const m = (await this.r()).multi();
    if (ttlMs !== undefined) m.set(key, json, 'PX', Math.max(1, Math.round(ttlMs)));
    else m.set(key, json);
    m.sadd(this.k('calls'), record.id);
    await m.exec();
  }

  async getCall(id: string): Promise<CallRecord | undefined> {
    const json = await (await this.r()).get(this.k(`call:${id}`));
    return json ? (JSON.parse(json) as CallRecord) : undefined;
  }

  async listCalls(): Promise<CallRecord[]> {
    const ids = await (await this.r()).smembers(this.k('calls'));
    if (ids.length === 0) return [];
    const values = await (await this.r()).mget(ids.map((id) => this.k(`call:${id}`)));
    const out: CallRecord[] = [];
    const gone: string[] = [];
    values.forEach((v, i) => {
      if (v) out.push(JSON.parse(v) as CallRecord);
      else gone.push(ids[i]!);
    });
    if (gone.length > 0) await (await this.r()).srem(this.k('calls'), ...gone);
    return out;
  }

  async deleteCall(id: string): Promise<void> {
    await (await this.r()).multi().del(this.k(`call:${id}`), this.k(`adopt:${id}`)).srem(this.k('calls'), id).exec();
  }

  async countCallKeys(): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await (await this.r()).scan(cursor, 'MATCH', this.k('call:*'), 'COUNT', 500);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  }

  async renewLease(instanceId: string, ttlMs: number): Promise<void> {
    await (await this.r()).set(this.k(`lease:${instanceId}`), String(this.clock.now() + ttlMs), 'PX', ttlMs);
  }

  async dropLease(instanceId: string): Promise<void> {
    await (await this.r()).del(this.k(`lease:${instanceId}`));
  }

  async leaseAlive(instanceId: string): Promise<boolean> {
    return (await (await this.r()).exists(this.k(`lease:${instanceId}`))) === 1;
  }

  async claimAdoption(callId: string, instanceId: string, ttlMs: number): Promise<boolean> {
    const key = this.k(`adopt:${callId}`);
    const ok = await (await this.r()).set(key, instanceId, 'PX', ttlMs, 'NX');
    if (ok === 'OK') return true;
    return (await (await this.r()).get(key)) === instanceId;
  }

  async sharedKey(name: string): Promise<Buffer> {
    const key = this.k(`key:${name}`);
    await (await this.r()).set(key, randomBytes(32).toString('hex'), 'NX');
    return Buffer.from((await (await this.r()).get(key))!, 'hex');
  }

  async claimNonceCount(nonce: string, nc: number, ttlMs: number): Promise<boolean> {
    const r = await this.r();
    return (await r.eval(CLAIM_NONCE_COUNT, 1, this.k(`nonce:${nonce}`), nc, Math.max(1, Math.round(ttlMs)))) === 1;
  }

  async countAuthFailure(subject: string, limit: number, windowMs: number, lockoutMs: number): Promise<boolean> {
    const r = await this.r();
    const locked = await r.eval(COUNT_AUTH_FAILURE, 2, this.k(`authfail:${subject}`), this.k(`authlock:${subject}`), limit, Math.max(1, Math.round(windowMs)), Math.max(1, Math.round(lockoutMs)));
    return locked === 1;
  }

  async authLockoutLeft(subject: string): Promise<number> {
    return Math.max(0, await (await this.r()).pttl(this.k(`authlock:${subject}`)));
  }

  /** puts back a shared secret this gateway already uses (after Redis lost it); an existing one is kept */
  async restoreSharedKey(name: string, key: Buffer): Promise<void> {
    await (await this.r()).set(this.k(`key:${name}`), key.toString('hex'), 'NX');
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
