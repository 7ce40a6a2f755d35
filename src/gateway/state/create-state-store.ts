import { Clock, systemClock } from '../../common/clock';
import { MemoryStateStore } from './memory-state-store';
import { RedisStateStore } from './redis-state-store';
import { StateStore } from './state-store';

/** Redis when a URL is given, the in-memory store otherwise. */
export function createStateStore(redisUrl: string | undefined, prefix: string, clock: Clock = systemClock): StateStore {
  return redisUrl ? new RedisStateStore(redisUrl, prefix, clock) : new MemoryStateStore(clock);
}
