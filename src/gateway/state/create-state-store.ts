import { Clock, systemClock } from '../../common/clock';
import { createLogger, Logger } from '../../common/logger';
import { MemoryStateStore } from './memory-state-store';
import { RedisStateStore } from './redis-state-store';
import { ResilientStateStore } from './resilient-state-store';
import { StateStore } from './state-store';

export interface StateStoreOptions {
  /** bound of every store operation (FERRY_STORE_TIMEOUT_MS), default 500 ms */
  timeoutMs?: number;
  log?: Logger;
}

/**
 * Redis when a URL is given — bounded, mirrored and written back after an outage
 * (ResilientStateStore) — the in-memory store otherwise (it cannot be unreachable).
 */
export function createStateStore(redisUrl: string | undefined, prefix: string, clock: Clock = systemClock, opts: StateStoreOptions = {}): StateStore {
  if (!redisUrl) return new MemoryStateStore(clock);
  const timeoutMs = opts.timeoutMs ?? 500;
  const redis = new RedisStateStore(redisUrl, prefix, clock, { commandTimeoutMs: timeoutMs });
  return new ResilientStateStore(redis, { timeoutMs, clock, log: opts.log ?? createLogger('gateway.store') });
}
