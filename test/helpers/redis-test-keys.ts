import type Redis from 'ioredis';

/** Deletes every key under `prefix` (one test's keys in the shared Redis) and disconnects the client. */
export async function removeTestKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
}
