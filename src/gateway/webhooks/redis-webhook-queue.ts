import Redis from 'ioredis';
import { QueuedWebhook, WebhookQueue } from './webhook-queue';

/** KEYS[1] list; ARGV item, cap: 1 pushed, 0 full */
const PUSH_CAPPED = `
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1`;
/** KEYS[1] list; ARGV the head's expected prefix: 1 removed */
const REMOVE_HEAD = `
local h = redis.call('LINDEX', KEYS[1], 0)
if h and string.sub(h, 1, string.len(ARGV[1])) == ARGV[1] then redis.call('LPOP', KEYS[1]) return 1 end
return 0`;
/** KEYS[1] lease; ARGV holder, ms: 1 when the holder has (or now has) the lease */
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A receiver's queue in Redis, shared by every gateway on it and kept across restarts:
 *   <prefix>webhook:<name>:queue   list of JSON events, oldest first (RPUSH; capped by a script)
 *   <prefix>webhook:<name>:lease   the gateway delivering to this receiver (SET PX, renewed before each POST)
 * The lease outlives a POST's timeout, so an event is never POSTed by two gateways at once; when
 * its holder dies, another gateway (or the same one restarted) takes over within the lease time.
 */
export class RedisWebhookQueue implements WebhookQueue {
  readonly kind = 'redis' as const;
  private readonly queueKey: string;
  private readonly leaseKey: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    receiverName: string,
    private readonly holder: string,
    private readonly leaseMs: number,
    private readonly maxQueue: number,
  ) {
    this.queueKey = `${prefix}webhook:${receiverName}:queue`;
    this.leaseKey = `${prefix}webhook:${receiverName}:lease`;
  }

  async push(item: QueuedWebhook): Promise<boolean> {
    return (await this.redis.eval(PUSH_CAPPED, 1, this.queueKey, serialise(item), String(this.maxQueue))) === 1;
  }

  async head(): Promise<{ item: QueuedWebhook | undefined; length: number; malformed?: boolean }> {
    const [[e1, h], [e2, n]] = (await this.redis.multi().lindex(this.queueKey, 0).llen(this.queueKey).exec()) as [[Error | null, string | null], [Error | null, number]];
    if (e1 || e2) throw e1 ?? e2;
    const item = h ? parse(h) : undefined;
    if (h && !item) {
      // not an event this code wrote: removed, so it cannot block the queue
      await this.redis.lrem(this.queueKey, 1, h);
      return { item: undefined, length: n - 1, malformed: true };
    }
    return { item, length: n };
  }

  async remove(id: string): Promise<void> {
    await this.redis.eval(REMOVE_HEAD, 1, this.queueKey, idPrefix(id));
  }

  async acquire(): Promise<boolean> {
    return (await this.redis.eval(ACQUIRE, 1, this.leaseKey, this.holder, String(this.leaseMs))) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.leaseKey, this.holder);
  }
}

/** the id goes first, so the head can be recognised by its prefix */
function serialise(item: QueuedWebhook): string {
  return JSON.stringify({ id: item.id, type: item.type, queuedAt: item.queuedAt, body: item.body });
}

function idPrefix(id: string): string {
  return `{"id":${JSON.stringify(id)},`;
}

function parse(s: string): QueuedWebhook | undefined {
  try {
    const v = JSON.parse(s) as QueuedWebhook;
    if (typeof v.id === 'string' && typeof v.body === 'string' && typeof v.queuedAt === 'number') return v;
  } catch {
    /* not ours */
  }
  return undefined;
}
