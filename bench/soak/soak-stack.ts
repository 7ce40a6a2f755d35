import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, type Stack } from '../../test/helpers/stack';
import { SoakRedis } from './private-redis';

/**
 * The ferry processes a soak runs against, however they were started: what the soak needs to know
 * (ports, Redis, pids) and the one thing it does to them (kill a part and have it back).
 */
export type SoakPart = 'sip' | 'media' | 'gateway' | 'redis';
export type KilledPart = 'media' | 'gateway' | 'redis';

export interface SoakStack {
  /** how the stack was started, for the report */
  readonly how: string;
  readonly sipPort: number;
  readonly wsPort: number;
  readonly mediaPort: number;
  readonly httpPort: number;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  pid(part: SoakPart): number | undefined;
  /**
   * SIGKILL the part and resolve once it is back and ready (same ports; the gateway with the same id),
   * with the moment the signal was sent
   */
  killAndRestore(part: KilledPart, downMs: number): Promise<{ killedAt: number }>;
  stop(): Promise<void>;
}

export interface SoakStackOptions {
  /** environment for every ferry part */
  env: Record<string, string>;
  /** every `ferry sip stats {...}` line ferry sip prints */
  onSipStats: (json: string) => void;
}

/**
 * The three parts as separate processes (test/helpers/stack.ts) on the soak's own redis-server; a
 * killed part is started again by the soak after `downMs`, the gateway with its instance id.
 */
export async function startPartsStack(options: SoakStackOptions): Promise<SoakStack> {
  const redis = await SoakRedis.create();
  let stack: Stack;
  try {
    stack = await startStack({
      redisUrl: redis.url,
      env: options.env,
      onLine: (part, line) => {
        if (part === 'sip' && line.startsWith('ferry sip stats ')) options.onSipStats(line.slice('ferry sip stats '.length));
      },
    });
  } catch (err) {
    await redis.destroy();
    throw err;
  }
  return {
    how: 'separate processes (test/helpers/stack.ts) on the soak\'s own redis-server',
    sipPort: stack.sipPort,
    wsPort: stack.wsPort,
    mediaPort: stack.mediaPort,
    httpPort: stack.httpPort,
    redisUrl: redis.url,
    redisPrefix: stack.redisPrefix,
    pid: (part) => (part === 'redis' ? redis.pid : stack.pid(part)),
    async killAndRestore(part, downMs) {
      const killedAt = Date.now();
      if (part === 'redis') {
        await redis.kill();
        await sleep(Math.max(downMs, 2000));
        await redis.start();
        return { killedAt };
      }
      await stack.kill(part, 'SIGKILL');
      await sleep(downMs);
      await stack.restart(part);
      return { killedAt };
    },
    async stop() {
      await stack.stop().catch(() => undefined);
      await redis.destroy().catch(() => undefined);
    },
  };
}
