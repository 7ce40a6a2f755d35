/**
 * Steps one target through increasing numbers of concurrent calls. At each step: add the calls
 * (timing their setup), let them settle, then measure one window: every packet sent in the window
 * carries the window's epoch, so loss = sent - received per epoch, immune to packets in flight at
 * the window edges. Stops after the first step with loss above the limit or failed setups.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LogHistogram, percentileOf } from '../load/log-histogram';
import type { WorkerReport } from '../load/worker-protocol';
import type { CpuPinning } from '../servers/cpu-pinning';
import { coreBusyBetween, sampleCores, sampleMachine, sampleProcesses } from '../servers/proc-sampler';
import { udpDropsOf } from '../servers/udp-drops';
import { coreBusyCell, generatorLimit } from '../report/markdown-report';
import type { SetupWindow, StepResult } from '../report/step-result';
import { workerLagsOf, worstWorkerLagP99 } from '../report/worker-lag';
import type { BenchTarget, CallSetup } from './bench-target';
import { settledRss } from './settled-baseline';

export interface StepPlan {
  steps: number[];
  windowMs: number;
  settleMs: number;
  drainMs: number;
  /** Stop stepping once loss exceeds this (%). */
  lossLimitPct: number;
  /** Where window CPU profiles go (targets that support profiling). */
  profileDir?: string;
  /** Where diagnostics of silent streams go. */
  outDir: string;
  /** Stop at the first step whose total loss (dead calls included) exceeds the limit. */
  strictStop: boolean;
  /** FERRY_MEDIA_WORKERS given to ferry media (recorded with each ferry step). */
  mediaWorkers?: number;
  /** Event-loop lag p99 limit of the per-core capacity (ms); with `stopOnLag`, stepping stops above it. */
  lagLimitMs?: number;
  stopOnLag?: boolean;
  /** The run's CPU pinning (recorded with each step, so the report can name the cores). */
  pinning?: CpuPinning;
  /** How the calls were set up ("10 at a time", "5/s even"): recorded with each step. */
  setupMode?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runSteps(
  target: BenchTarget,
  plan: StepPlan,
  progress: (line: string) => void,
  onStep: (r: StepResult) => void,
): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const workers = target.workers();
  const broadcast = (epoch: number): Promise<unknown> => Promise.all(workers.map((w) => w.request({ op: 'epoch', epoch })));
  // the memory baseline once the server has finished its own start-up (settled-baseline.ts)
  const settle = await settledRss(() => sampleProcesses(target.serverPids()).rssBytes);
  progress(`${target.name}: memory baseline ${(settle.rssBytes / 1048576).toFixed(1)} MiB after ${(settle.waitedMs / 1000).toFixed(1)} s${settle.settled ? '' : ' (still moving: read anyway)'}`);
  const baselineRss = settle.rssBytes;
  let callsUp = 0;
  let callsAsked = 0;
  let epoch = 0;
  for (const n of plan.steps) {
    if (n <= callsAsked) continue;
    await broadcast(0);
    progress(`${target.name}: setting up calls ${callsAsked + 1}..${n}`);
    const setupProfiler = plan.profileDir ? target.profiler?.() : undefined;
    await setupProfiler?.start();
    // who was busy while the step's calls were set up: each core, the server, the load workers, this process
    const setupLag = monitorEventLoopDelay({ resolution: 5 });
    setupLag.enable();
    const sk0 = sampleCores();
    const ss0 = sampleProcesses(target.serverPids());
    const sg0 = sampleProcesses(workers.map((w) => w.pid));
    const so0 = process.cpuUsage();
    const setups: CallSetup[] = await target.addCalls(n - callsAsked);
    setupLag.disable();
    const ss1 = sampleProcesses(target.serverPids());
    const sg1 = sampleProcesses(workers.map((w) => w.pid));
    const so1 = process.cpuUsage(so0);
    const setupWindow: SetupWindow = {
      wallMs: ss1.atMs - ss0.atMs,
      serverCpuMs: (ss1.user + ss1.system - ss0.user - ss0.system) * 1000,
      loadWorkersCpuMs: (sg1.user + sg1.system - sg0.user - sg0.system) * 1000,
      orchestratorCpuMs: (so1.user + so1.system) / 1000,
      perCoreBusyPct: coreBusyBetween(sk0, sampleCores()).perCoreBusyPct,
      orchestratorLagP50Ms: setupLag.percentile(50) / 1e6,
      orchestratorLagP99Ms: setupLag.percentile(99) / 1e6,
    };
    if (setupProfiler && plan.profileDir) {
      await setupProfiler.stop(path.join(plan.profileDir, `${target.name.replace(/\W+/g, '-')}-setup-N${n}.cpuprofile`));
    }
    callsAsked = n;
    const ok = setups.filter((s) => s.ok);
    callsUp += ok.length;
    const failures = setups.length - ok.length;
    const setupMs = ok.map((s) => s.ms);
    const setupPhasesP50Ms = phasesP50(ok);
    const late = setups.map((s) => s.arrivalLateMs).filter((v): v is number => v !== undefined);
    const arrivalLate = late.length > 0 ? { p50: percentileOf(late, 50)!, p99: percentileOf(late, 99)!, max: Math.max(...late) } : undefined;
    progress(
      `${target.name}: ${ok.length}/${setups.length} calls up` +
        (setupMs.length ? ` (setup p50 ${fmt(percentileOf(setupMs, 50))} ms, p99 ${fmt(percentileOf(setupMs, 99))} ms)` : '') +
        ` [set-up: ${(setupWindow.wallMs / 1000).toFixed(1)} s, cores ${setupWindow.perCoreBusyPct.map((b) => b.toFixed(0)).join(' / ')} % busy, server CPU ${fmt(setupWindow.serverCpuMs)} ms, load workers ${fmt(setupWindow.loadWorkersCpuMs)} ms, orchestrator ${fmt(setupWindow.orchestratorCpuMs)} ms, its loop lag p50 / p99 ${fmt(setupWindow.orchestratorLagP50Ms)} / ${fmt(setupWindow.orchestratorLagP99Ms)} ms]` +
        (arrivalLate ? ` [arrivals ${plan.setupMode ?? ''} started late by p50 / p99 / max ${fmt(arrivalLate.p50)} / ${fmt(arrivalLate.p99)} / ${fmt(arrivalLate.max)} ms]` : '') +
        (setupPhasesP50Ms ? ` [p50 ms: ${Object.entries(setupPhasesP50Ms).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}]` : '') +
        (failures ? `; ${failures} failed: ${setups.find((s) => !s.ok)?.error}` : '') +
        `; measuring ${plan.windowMs / 1000} s`,
    );
    await sleep(plan.settleMs);

    epoch += 1;
    const profiler = plan.profileDir ? target.profiler?.() : undefined;
    await profiler?.start();
    await broadcast(epoch);
    const t0Wall = Date.now();
    const d0 = { server: udpDropsOf(target.serverPids()), generator: udpDropsOf(workers.map((w) => w.pid)) };
    const s0 = sampleProcesses(target.serverPids());
    const g0 = sampleProcesses(workers.map((w) => w.pid));
    const o0 = process.cpuUsage();
    const m0 = sampleMachine();
    const k0 = sampleCores();
    await sleep(plan.windowMs);
    const k1 = sampleCores();
    const s1 = sampleProcesses(target.serverPids());
    const g1 = sampleProcesses(workers.map((w) => w.pid));
    const o1 = process.cpuUsage(o0);
    const m1 = sampleMachine();
    const t1Wall = Date.now();
    await broadcast(0);
    // Sockets are read after the drain too: packets of the window dropped late still count.
    const dropsAfterWindow = (): { server: number; generator: number } => ({
      server: udpDropsOf(target.serverPids()) - d0.server,
      generator: udpDropsOf(workers.map((w) => w.pid)) - d0.generator,
    });
    if (profiler && plan.profileDir) {
      const file = path.join(plan.profileDir, `${target.name.replace(/\W+/g, '-')}-N${n}.cpuprofile`);
      await profiler.stop(file);
      progress(`${target.name}: window CPU profile ${file}`);
    }
    const rawStats = target.serverStats ? await target.serverStats() : undefined;
    const serverStats = scalarsOf(rawStats);
    await sleep(plan.drainMs);
    const reports: WorkerReport[] = await Promise.all(workers.map((w) => w.report(epoch)));
    const drops = dropsAfterWindow();

    const wallS = (s1.atMs - s0.atMs) / 1000;
    const sent: [number, number] = [0, 0];
    const received: [number, number] = [0, 0];
    let skipped = 0;
    const sendingIds = new Set<number>();
    const heardIds = new Set<number>();
    const sentBy = new Map<number, number>();
    const receivedBy = new Map<number, number>();
    const latency = new LogHistogram();
    for (const r of reports) {
      sent[0] += r.sent[0];
      sent[1] += r.sent[1];
      received[0] += r.received[0];
      received[1] += r.received[1];
      skipped += r.skipped;
      for (const id of r.sendingIds) sendingIds.add(id);
      for (const id of r.heardIds) heardIds.add(id);
      for (const [id, k] of r.sentByStream) sentBy.set(id, (sentBy.get(id) ?? 0) + k);
      for (const [id, k] of r.receivedByStream) receivedBy.set(id, (receivedBy.get(id) ?? 0) + k);
      latency.merge({ counts: r.latencyCounts });
    }
    const totalSent = sent[0] + sent[1];
    // Loss among the streams that delivered anything at all: packet loss under load, apart from dead calls.
    let liveSent = 0;
    let liveReceived = 0;
    for (const [id, k] of sentBy) {
      const got = receivedBy.get(id) ?? 0;
      if (got === 0) continue;
      liveSent += k;
      liveReceived += got;
    }
    const totalRecv = received[0] + received[1];
    const cpuS = s1.user + s1.system - (s0.user + s0.system);
    const lag = target.loopLag?.(t0Wall, t1Wall);
    const workerLags = target.loopLag ? workerLagsOf(rawStats, lag) : [];
    const statsLag = serverStats?.eventLoopLagP99Ms;
    const result: StepResult = {
      target: target.name,
      calls: n,
      callsUp,
      setupFailures: failures,
      ...(failures ? { firstSetupError: setups.find((s) => !s.ok)?.error } : {}),
      setupP50Ms: percentileOf(setupMs, 50),
      setupP99Ms: percentileOf(setupMs, 99),
      ...(setupPhasesP50Ms ? { setupPhasesP50Ms } : {}),
      ...(plan.setupMode !== undefined ? { setupMode: plan.setupMode } : {}),
      ...(arrivalLate ? { arrivalLateP99Ms: arrivalLate.p99, arrivalLateMaxMs: arrivalLate.max } : {}),
      setupWindow,
      windowS: wallS,
      serverCpuPct: (100 * cpuS) / wallS,
      serverUserPct: (100 * (s1.user - s0.user)) / wallS,
      serverSysPct: (100 * (s1.system - s0.system)) / wallS,
      cpuPerCall: callsUp > 0 ? cpuS / wallS / callsUp : 0,
      cpuUsPerPacket: totalSent > 0 ? (cpuS * 1e6) / totalSent : 0,
      rssMiB: s1.rssBytes / 1048576,
      rssPerCallKiB: callsUp > 0 ? (s1.rssBytes - baselineRss) / 1024 / callsUp : 0,
      loopLagP99Ms: lag?.p99Ms,
      loopLagMaxMs: lag?.maxMs,
      statsLagP99Ms: typeof statsLag === 'number' ? statsLag : undefined,
      sentPps: totalSent / wallS,
      lossPct: lossPct(totalSent, totalRecv),
      lossPctAB: lossPct(sent[0], received[0]),
      lossPctBA: lossPct(sent[1], received[1]),
      liveLossPct: lossPct(liveSent, liveReceived),
      serverUdpDrops: drops.server,
      generatorUdpDrops: drops.generator,
      latencyP50Ms: ms(latency.percentile(50)),
      latencyP99Ms: ms(latency.percentile(99)),
      generatorCpuPct: (100 * (g1.user + g1.system - (g0.user + g0.system))) / wallS,
      orchestratorCpuPct: (100 * (o1.user + o1.system)) / 1e6 / wallS,
      generatorSkippedPct: totalSent + skipped > 0 ? (100 * skipped) / (totalSent + skipped) : 0,
      machineBusyCores: (m1.busy - m0.busy) / ((t1Wall - t0Wall) / 1000),
      otherProcessesCores: Math.max(
        0,
        (m1.busy - m0.busy) / ((t1Wall - t0Wall) / 1000) -
          (cpuS + (g1.user + g1.system - (g0.user + g0.system)) + (o1.user + o1.system) / 1e6) / wallS,
      ),
      silentStreams: [...sendingIds].filter((id) => !heardIds.has(id)).length,
      ...(serverStats ? { serverStats } : {}),
      ...(target.loopLag && plan.mediaWorkers !== undefined ? { mediaWorkers: plan.mediaWorkers } : {}),
      ...(workerLags.length > 0 ? { workerLags } : {}),
      coreBusy: coreBusyBetween(k0, k1),
      ...(plan.pinning ? { pinning: plan.pinning } : {}),
    };
    const silentIds = [...sendingIds].filter((id) => !heardIds.has(id));
    if (silentIds.length > 0) {
      const named = silentIds.slice(0, 6).map((id) => target.describeStream?.(id) ?? `stream ${id}`);
      progress(`${target.name}: ${silentIds.length} stream(s) delivered nothing: ${named.join('; ')}${silentIds.length > 6 ? '; ...' : ''}`);
      result.silentStreamNames = named;
      if (target.diagnose) {
        const file = path.join(plan.outDir, `silent-${target.name.replace(/\W+/g, '-')}-N${n}.json`);
        const diag = await target.diagnose(silentIds.slice(0, 20)).catch((e: unknown) => ({ error: String(e) }));
        writeFileSync(file, JSON.stringify(diag, null, 2));
        const summary = (diag as { summary?: unknown }).summary;
        if (typeof summary === 'string') result.silentDiagnosis = summary;
        progress(`${target.name}: silent calls: ${typeof summary === 'string' ? summary : '?'} (details in ${file})`);
      }
    }
    results.push(result);
    onStep(result);
    progress(
      `${target.name}: N=${n} up=${callsUp} cpu=${result.serverCpuPct.toFixed(1)}% ` +
        `(${(result.cpuPerCall * 1000).toFixed(2)} ms/call/s, ${result.cpuUsPerPacket.toFixed(1)} us/pkt) ` +
        `rss/call=${result.rssPerCallKiB.toFixed(0)} KiB lagP99=${fmt(result.loopLagP99Ms)} ms ` +
        `loss=${result.lossPct.toFixed(3)}% (ab ${result.lossPctAB.toFixed(3)} ba ${result.lossPctBA.toFixed(3)}, live streams ${result.liveLossPct.toFixed(3)}) ` +
        `udp drops server/gen=${drops.server}/${drops.generator} ` +
        `gen=${result.generatorCpuPct.toFixed(0)}% skipped=${result.generatorSkippedPct.toFixed(2)}% ` +
        `machine=${result.machineBusyCores.toFixed(2)} cores (others ${result.otherProcessesCores.toFixed(2)}; ` +
        `cores > 50 %: ${coreBusyCell(result)}) ` +
        (generatorLimit(result) ? `GENERATOR-LIMITED (${generatorLimit(result)}) ` : '') +
        (workerLags.length ? `workers lag p99 ${workerLags.map((w) => fmt(w.lagP99Ms)).join('/')} ms ` : '') +
        `silent=${result.silentStreams}`,
    );
    // Stepping stops on packet loss among working calls (the capacity limit), on failed setups, or when
    // more than a tenth of the streams are dead. Dead calls below that still count in `lossPct` (and so
    // in the verdict) but do not hide what the server does at higher N.
    // The worst lag p99 of any worker and of the main loop (the probe), as the per-core capacity counts it.
    const worstLag = Math.max(worstWorkerLagP99(workerLags) ?? 0, result.loopLagP99Ms ?? 0);
    const silentShare = sendingIds.size > 0 ? result.silentStreams / sendingIds.size : 0;
    const stop =
      failures > 0
        ? 'setup failures'
        : totalSent === 0
          ? 'no packets sent'
          : result.liveLossPct > plan.lossLimitPct
            ? `loss among working calls ${result.liveLossPct.toFixed(3)}% > ${plan.lossLimitPct}%`
            : silentShare > 0.1
              ? `${(100 * silentShare).toFixed(0)} % of the streams delivered nothing`
              : plan.strictStop && result.lossPct > plan.lossLimitPct
                ? `loss ${result.lossPct.toFixed(3)}% > ${plan.lossLimitPct}%`
                : plan.stopOnLag && plan.lagLimitMs !== undefined && worstLag >= plan.lagLimitMs
                  ? `event-loop lag p99 ${fmt(worstLag)} ms >= ${plan.lagLimitMs} ms`
                  : undefined;
    if (stop) {
      progress(`${target.name}: stopping here (${stop})`);
      break;
    }
  }
  return results;
}

/** The top-level numbers of a /stats reply (its per-pipeline detail would bloat results.json). */
function scalarsOf(stats: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!stats) return undefined;
  return Object.fromEntries(Object.entries(stats).filter(([, v]) => typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean'));
}

function lossPct(sent: number, received: number): number {
  return sent > 0 ? (100 * Math.max(0, sent - received)) / sent : 0;
}

function ms(us: number | undefined): number | undefined {
  return us === undefined ? undefined : us / 1000;
}

function fmt(v: number | undefined): string {
  return v === undefined ? '-' : v.toFixed(1);
}

/** p50 of each phase mark over the set-ups that recorded it (undefined when no set-up recorded any). */
export function phasesP50(setups: readonly CallSetup[]): Record<string, number> | undefined {
  const byKey = new Map<string, number[]>();
  for (const s of setups) {
    for (const [k, v] of Object.entries(s.phases ?? {})) {
      if (v === undefined || !Number.isFinite(v)) continue;
      let list = byKey.get(k);
      if (!list) byKey.set(k, (list = []));
      list.push(v);
    }
  }
  if (byKey.size === 0) return undefined;
  const out: Record<string, number> = {};
  for (const [k, list] of byKey) out[k] = percentileOf(list, 50) ?? NaN;
  return out;
}
