import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import Redis from 'ioredis';
import { runSlot, type SoakContext } from './call-slot';
import { attribute, type GatewayEnd } from './end-attribution';
import { faultPlan } from './fault-plan';
import { FaultInjector } from './fault-injector';
import { censusLeaks, fdBaseline, settledCensus } from './leak-census';
import { ResourceSampler } from './resource-sampler';
import { buildReport, type SoakReport } from './soak-report';
import type { SoakOptions } from './soak-options';
import { SoakWorld } from './soak-world';

/** every call record of the run, by the webphone leg's Call-ID */
async function gatewayEnds(world: SoakWorld): Promise<Map<string, GatewayEnd>> {
  const redis = new Redis(world.stack.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const out = new Map<string, GatewayEnd>();
  try {
    for (const key of await redis.keys(`${world.stack.redisPrefix}call:*`)) {
      const raw = await redis.get(key);
      if (!raw) continue;
      const r = JSON.parse(raw) as {
        id: string; state: string; reason?: string; suspectedFalseEnd?: boolean; timeline?: GatewayEnd['timeline'];
        media?: { pipelineId?: string };
        caller: { kind: string; dialog?: { callId: string } }; callee: { kind: string; dialog?: { callId: string } };
      };
      const leg = r.caller.kind === 'webrtc' ? r.caller : r.callee;
      const end: GatewayEnd = { id: r.id, state: r.state, reason: r.reason, suspectedFalseEnd: r.suspectedFalseEnd, timeline: r.timeline, pipelineId: r.media?.pipelineId };
      out.set(leg.dialog?.callId ?? `no-dialog:${r.id}`, end);
    }
  } finally {
    redis.disconnect();
  }
  return out;
}

/**
 * One soak run: start the world, keep `calls` calls going for `durationMs` while the seeded faults are
 * injected, hang up whatever is still up, wait for everything to settle, count leaks, match every end
 * to its cause and return the report (report.ok is the verdict).
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const startedAt = Date.now();
  log(`soak: ${options.calls} calls, ${options.durationMs / 1000} s, seed ${options.seed}, T_dead ${options.deadMs} ms`);
  const world = await SoakWorld.create(options);
  const sampler = new ResourceSampler(() => ({
    sip: world.pid('sip'), media: world.pid('media'), gateway: world.pid('gateway'), redis: world.pid('redis'), soak: process.pid,
  }));
  try {
    const baseline = await fdBaseline(world);
    log(`soak: stack up, ${world.stack.how} (sip ${world.stack.sipPort}, media ${world.stack.mediaPort}, gateway http ${world.stack.httpPort}, ${world.stack.redisUrl}); ${world.slots.length} webphones registered`);
    sampler.start();
    const ctx: SoakContext = { options, world, calls: [], live: new Set(), stopping: false, log };
    const plan = faultPlan(options);
    const injector = new FaultInjector(ctx);
    const runStart = Date.now();
    const slots = world.slots.map((slot) => runSlot(slot, ctx));
    const faults = injector.run(plan, runStart);
    const progress = setInterval(() => {
      const ended = ctx.calls.filter((c) => c.endedAt !== undefined).length;
      log(`soak: +${Math.round((Date.now() - runStart) / 1000)} s: ${ctx.calls.length} placed, ${ctx.live.size} up, ${ended} ended, ${injector.injected.length} faults`);
    }, 10_000);
    await sleep(options.durationMs);
    ctx.stopping = true;
    log('soak: run over; hanging up the calls still up');
    await faults;
    await Promise.all(slots);
    await injector.settle();
    clearInterval(progress);
    const runEndedAt = Date.now();
    const census = await settledCensus(world, baseline, 45_000);
    const records = await gatewayEnds(world);
    const attribution = attribute(ctx.calls, injector.injected, records, options.orphanDialogMs);
    // which calls the pipelines left in ferry media belonged to
    const byPipeline = new Map([...records.values()].filter((r) => r.pipelineId).map((r) => [r.pipelineId!, r]));
    const leftovers = census.leftoverPipelines.map((p) => {
      const r = byPipeline.get(p.id);
      return { ...p, call: r ? `${r.id} ${r.state}${r.reason ? ` ${r.reason}` : ''}: ${(r.timeline ?? []).map((e) => e.event).join(',')}` : 'no call record names it' };
    });
    sampler.stop();
    return buildReport({
      options, startedAt, runEndedAt, finishedAt: Date.now(), calls: ctx.calls, plan, faults: injector.injected,
      webphoneDisconnects: world.slots.flatMap((s) => s.webphone.disconnects.map((d) => ({ webphone: s.webphone.user, ...d }))),
      attribution, census: { ...census, leftoverPipelines: leftovers }, leaks: censusLeaks(census), resources: sampler.summary(), loadAverages: sampler.loadAverages,
      machine: { cpus: os.cpus().length, memoryMb: Math.round(os.totalmem() / 1048576) },
    });
  } finally {
    sampler.stop();
    await world.close();
  }
}
