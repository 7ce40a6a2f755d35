import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { fdCount, type FerryPart, type SoakWorld } from './soak-world';

/**
 * What must be back to zero once every call has ended: ferry media's pipelines and bound ports,
 * ferry sip's dialogs, call records in Redis that are not ended (or lack their TTL) and live-call
 * index entries pointing at no ended record (for this run's key prefix), and each ferry process's open file descriptors (back to within `FD_MARGIN` of
 * the count at the start).
 */
export const FD_MARGIN = 10;

export interface Census {
  mediaPipelines: number;
  mediaBoundPorts: number;
  mediaElements: number;
  /** pipelines still in ferry media at the end: id, owner sessions, orphaned, element count */
  leftoverPipelines: { id: string; owners: string[]; orphaned: boolean; elements: number }[];
  sipDialogs: number;
  sipTransactions: number;
  /** entries of the gateway's live-call index (ended calls stay listed until their record expires) */
  redisIndexEntries: number;
  /** index entries whose record is gone or not ended, and call records not ended or without a TTL */
  redisLiveRecords: number;
  fds: Record<FerryPart, { start: number | undefined; end: number | undefined }>;
}

export interface FdBaseline {
  sip?: number;
  media?: number;
  gateway?: number;
}

export async function fdBaseline(world: SoakWorld): Promise<FdBaseline> {
  return { sip: await fdCount(world.pid('sip')), media: await fdCount(world.pid('media')), gateway: await fdCount(world.pid('gateway')) };
}

interface MediaStats {
  pipelines: number;
  boundPorts: number;
  elements: number;
  pipelinesDetail?: { id: string; owners: string[]; orphaned: boolean; elements: unknown[] }[];
}

async function mediaStats(port: number): Promise<MediaStats> {
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  return (await res.json()) as MediaStats;
}

async function redisCounts(world: SoakWorld): Promise<{ index: number; live: number }> {
  const redis = new Redis(world.stack.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    const prefix = world.stack.redisPrefix;
    const index = await redis.smembers(`${prefix}calls`);
    const live = new Set<string>();
    for (const key of await redis.keys(`${prefix}call:*`)) {
      const raw = await redis.get(key);
      if (!raw) continue;
      const state = (JSON.parse(raw) as { state?: string }).state;
      if (state !== 'ended' || (await redis.pttl(key)) < 0) live.add(key);
    }
    for (const id of index) {
      const raw = await redis.get(`${prefix}call:${id}`);
      if (!raw || (JSON.parse(raw) as { state?: string }).state !== 'ended') live.add(`${prefix}call:${id}`);
    }
    return { index: index.length, live: live.size };
  } finally {
    redis.disconnect();
  }
}

export async function takeCensus(world: SoakWorld, baseline: FdBaseline): Promise<Census> {
  const media = await mediaStats(world.stack.mediaPort).catch((): MediaStats => ({ pipelines: -1, boundPorts: -1, elements: -1 }));
  const sip = (await world.freshSipStats()) ?? {};
  const redis = await redisCounts(world).catch(() => ({ index: -1, live: -1 }));
  const fd = async (part: FerryPart): Promise<{ start: number | undefined; end: number | undefined }> => ({ start: baseline[part], end: await fdCount(world.pid(part)) });
  return {
    mediaPipelines: media.pipelines,
    mediaBoundPorts: media.boundPorts,
    mediaElements: media.elements,
    leftoverPipelines: (media.pipelinesDetail ?? []).map((p) => ({ id: p.id, owners: p.owners, orphaned: p.orphaned, elements: p.elements.length })),
    sipDialogs: sip.dialogs ?? -1,
    sipTransactions: (sip.serverTransactions ?? 0) + (sip.clientTransactions ?? 0),
    redisIndexEntries: redis.index,
    redisLiveRecords: redis.live,
    fds: { sip: await fd('sip'), media: await fd('media'), gateway: await fd('gateway') },
  };
}

export function censusLeaks(c: Census): string[] {
  const leaks: string[] = [];
  if (c.mediaPipelines !== 0) leaks.push(`ferry media pipelines: ${c.mediaPipelines}`);
  if (c.mediaBoundPorts !== 0) leaks.push(`ferry media bound ports: ${c.mediaBoundPorts}`);
  if (c.mediaElements !== 0) leaks.push(`ferry media elements: ${c.mediaElements}`);
  if (c.sipDialogs !== 0) leaks.push(`ferry sip dialogs: ${c.sipDialogs}`);
  if (c.redisLiveRecords !== 0) leaks.push(`Redis call records still live (not ended, without TTL, or indexed without a record): ${c.redisLiveRecords}`);
  for (const [part, { start, end }] of Object.entries(c.fds)) {
    if (start === undefined || end === undefined) leaks.push(`${part}: file descriptors unreadable (start ${start}, end ${end})`);
    else if (end > start + FD_MARGIN) leaks.push(`${part}: ${end} file descriptors open, ${start} at the start (margin ${FD_MARGIN})`);
  }
  return leaks;
}

/** Polls the census until nothing leaks or `timeoutMs` passes (the gateway prunes its index lazily). */
export async function settledCensus(world: SoakWorld, baseline: FdBaseline, timeoutMs: number): Promise<Census> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await takeCensus(world, baseline);
    if (censusLeaks(c).length === 0 || Date.now() > deadline) return c;
    await sleep(1000);
  }
}
