/**
 * `npm run bench:media`: ferry media under load, compared with rtpengine in the same run.
 * Targets (in this order): rtpengine RTP<->RTP, ferry RtpEndpoint<->RtpEndpoint, ferry
 * WebRtcEndpoint<->RtpEndpoint. Each is stepped up through the concurrency steps until loss
 * exceeds the limit; results go to <out>/results.json and <out>/results.md (and, with
 * --write-docs, into docs/benchmarks.md).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseOptions, UsageRequested, type BenchOptions, type TargetId } from './cli-options';
import { pacingLabel, type BenchTarget } from './phases/bench-target';
import { runSteps } from './phases/step-runner';
import {
  capacity,
  generatorLimitedVerdicts,
  liveCapacity,
  perCoreCapacity,
  ratioTable,
  nodeFloorTable,
  NODE_FLOOR_TARGET,
  resultsTable,
  setupPhasesTable,
  serverCoreSharedVerdicts,
  workerShareVerdict,
} from './report/markdown-report';
import { exportPinning, formatCpuList, pinProcess, threadsOffCpus } from './servers/cpu-pinning';
import { processTree } from './servers/proc-sampler';
import type { StepResult } from './report/step-result';
import { summarizeCpuProfiles } from './report/cpu-profile-summary';

const REPO = path.resolve(__dirname, '..', '..');
const started = Date.now();
/** Read once here: results.md is written at the end of the run, when the load average is the run's own. */
const loadAtStart = os.loadavg();
/** The commit at start: on a shared checkout HEAD may move while the run goes on. */
const gitAtStart = ((): string => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' }).trim() || 'n/a';
  } catch {
    return 'n/a';
  }
})();

function progress(line: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[bench ${t}s] ${line}\n`);
}

async function createTarget(id: TargetId, o: BenchOptions, outDir: string): Promise<BenchTarget> {
  switch (id) {
    case 'rtpengine': {
      const { RtpengineTarget } = await import('./phases/rtpengine-target');
      return new RtpengineTarget({
        binary: o.rtpengineBinary,
        portMin: o.rtpenginePortMin,
        portMax: o.rtpenginePortMax,
        logFile: path.join(outDir, 'rtpengine.log'),
        rtpWorkers: o.rtpWorkers,
        setupPacing: o.setupPacing,
      });
    }
    case 'ferry-rtp': {
      const { FerryRtpTarget } = await import('./phases/ferry-rtp-target');
      return new FerryRtpTarget({
        logFile: path.join(outDir, 'ferry-media-rtp.log'),
        lagFile: path.join(outDir, 'ferry-media-rtp.lag.jsonl'),
        logLevel: o.logLevel,
        rtpWorkers: o.rtpWorkers,
        setupPacing: o.setupPacing,
        profile: o.profile,
        env: o.mediaEnv,
      });
    }
    case 'node-floor': {
      const { NodeFloorTarget } = await import('./phases/node-floor-target');
      return new NodeFloorTarget({ rtpWorkers: o.rtpWorkers, setupPacing: o.setupPacing });
    }
    case 'ferry-webrtc': {
      const { FerryWebRtcTarget } = await import('./phases/ferry-webrtc-target');
      return new FerryWebRtcTarget({
        logFile: path.join(outDir, 'ferry-media-webrtc.log'),
        lagFile: path.join(outDir, 'ferry-media-webrtc.lag.jsonl'),
        logLevel: o.logLevel,
        rtpWorkers: o.rtpWorkers,
        webrtcWorkers: o.webrtcWorkers,
        setupPacing: o.setupPacing,
        leanBrowsers: o.browser === 'lean',
        serverSetupMarks: o.serverSetupMarks,
        profile: o.profile,
        env: o.mediaEnv,
      });
    }
  }
}

function environment(o: BenchOptions, argv: string[]): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const tryRun = (cmd: string, args: string[]): string => {
    try {
      // rtpengine prints its version on stderr.
      return execFileSync(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' }).trim() || 'n/a';
    } catch {
      return 'n/a';
    }
  };
  return [
    `- command: \`npm run bench:media${argv.length ? ` -- ${argv.join(' ')}` : ''}\``,
    `- date: ${new Date(started).toISOString()}, git ${gitAtStart} (at start); load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    `- machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}`,
    `- rtpengine: ${tryRun('sh', ['-c', `${o.rtpengineBinary} --version 2>&1`])} (userspace, --table=-1, --num-threads=2)`,
    pinningLine(o),
    `- niceness of servers, load workers and orchestrator: ${o.nice}${o.nice !== 0 ? ' (--nice; other processes on the machine keep 0)' : ''}`,
    `- ferry media relay workers: ${o.mediaWorkers !== undefined ? `FERRY_MEDIA_WORKERS=${o.mediaWorkers} (--workers)` : "ferry media's default (no --workers)"}, kind ${o.mediaEnv.FERRY_MEDIA_WORKER_KIND !== undefined ? `FERRY_MEDIA_WORKER_KIND=${o.mediaEnv.FERRY_MEDIA_WORKER_KIND}${o.mediaWorkerKind !== undefined ? ' (--worker-kind)' : ''}` : 'thread (the default; no --worker-kind)'}; load average at start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`,
    `- load: 50 packets/s each way per call, 172-byte RTP (PCMU, 160-byte payload); ${o.rtpWorkers} plain-RTP load processes, ${o.webrtcWorkers} werift load processes (${o.browser} browsers); window ${o.windowMs / 1000} s per step; ${setupModeText(o)}${o.targets.includes('ferry-webrtc') ? (o.serverSetupMarks ? ' (ferry-webrtc: ICE/DTLS state events subscribed for ferry\'s own set-up marks)' : ' (--no-server-marks)') : ''}`,
  ].join('\n');
}

/** How each step's new calls were set up, for the environment line of results.md. */
function setupModeText(o: BenchOptions): string {
  const p = o.setupPacing;
  if (p.kind === 'concurrency') return `set-up closed loop, ${p.limit} at a time (--setup-concurrency ${p.limit}: bursts of ${p.limit} simultaneous set-ups)`;
  return (
    `set-up open loop, calls arriving at ${p.perSecond}/s (--setup-rate ${p.perSecond}, ${p.arrivals} arrivals` +
    `${p.arrivals === 'poisson' ? `, seed ${p.seed}` : ': one every ' + (1000 / p.perSecond).toFixed(0) + ' ms'}), each started at its arrival`
  );
}

function pinningLine(o: BenchOptions): string {
  const p = o.pinning;
  if (!p) return `- CPU pinning: none (server, load workers and orchestrator share all ${os.cpus().length} CPUs; --server-cpus / --generator-cpus pin them apart)`;
  return (
    `- CPU pinning: server under test (rtpengine, ferry media: every thread) on CPU ${formatCpuList(p.serverCpus)}; ` +
    `load workers and orchestrator on CPU ${formatCpuList(p.generatorCpus)} (taskset; --server-cpus ${formatCpuList(p.serverCpus)} --generator-cpus ${formatCpuList(p.generatorCpus)})`
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let o: BenchOptions;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stdout.write(`${(err as Error).message}\n`);
    process.exitCode = err instanceof UsageRequested ? 0 : 2;
    return;
  }
  if (o.nice !== 0) {
    process.env.FERRY_BENCH_NICE = String(o.nice);
    os.setPriority(o.nice);
  }
  if (o.pinning) {
    exportPinning(o.pinning);
    try {
      // The orchestrator and every thread it has; the load workers it forks are started through taskset too.
      pinProcess(process.pid, o.pinning.generatorCpus);
    } catch (err) {
      process.stdout.write(`--server-cpus / --generator-cpus need taskset (util-linux): ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
  }
  const outDir = o.outDir ?? path.join(__dirname, 'results', new Date(started).toISOString().replace(/[:.]/g, '-'));
  mkdirSync(outDir, { recursive: true });
  progress(`results in ${outDir}; steps ${o.steps.join(',')}; targets ${o.targets.join(',')}`);

  const results: StepResult[] = [];
  const notes: string[] = [];
  if (o.pinning && o.mediaWorkers !== undefined && o.mediaWorkers > o.pinning.serverCpus.length && o.targets.some((t) => t !== 'rtpengine')) {
    const warn = `- ${o.mediaWorkers} relay workers share the ${o.pinning.serverCpus.length} CPU(s) of --server-cpus ${formatCpuList(o.pinning.serverCpus)}: per-core figures are per CPU given, not per worker`;
    progress(warn.slice(2));
    notes.push(warn);
  }
  const active: BenchTarget[] = [];
  const onSignal = (): void => {
    progress('interrupted: stopping servers and load workers');
    void Promise.all(active.map((t) => t.stop().catch(() => undefined))).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  for (const id of o.targets) {
    if (id === 'rtpengine') {
      const { RtpengineProcess } = await import('./servers/rtpengine-process');
      if (!RtpengineProcess.available(o.rtpengineBinary)) {
        progress(`rtpengine: ${o.rtpengineBinary} not found; skipped (the ratio table shows ferry's figures alone)`);
        notes.push(`- rtpengine: not installed (${o.rtpengineBinary}); no anchor in this run (apt-get install -y rtpengine-daemon)`);
        continue;
      }
    }
    const targetName = await runTarget(id, o.steps, false);
    // The per-core capacity search, refined: bisect between the largest step that passed and the first
    // that failed, each probe on a fresh server set up straight to its N.
    if (targetName && id !== 'rtpengine') {
      for (let k = 0; k < o.refine; k++) {
        const c = perCoreCapacity(results, targetName, o.lossLimitPct, o.lagLimitMs);
        if (c.firstFailureCalls === undefined) break;
        const mid = c.calls + Math.round((c.firstFailureCalls - c.calls) / 2);
        if (mid - c.calls < REFINE_RESOLUTION || c.firstFailureCalls - mid < REFINE_RESOLUTION) break;
        progress(`${targetName}: refining the per-core capacity between N=${c.calls} and N=${c.firstFailureCalls}: N=${mid} on a fresh server`);
        await runTarget(id, [mid], true);
      }
    }
  }

  /** One target on a fresh server through `steps`; returns its name, or undefined when it could not run. */
  async function runTarget(id: TargetId, steps: number[], refine: boolean): Promise<string | undefined> {
    const target = await createTarget(id, o, outDir);
    active.push(target);
    try {
      progress(`${target.name}: starting${refine ? ' (refinement)' : ''}`);
      await target.start();
      if (o.pinning) {
        // The server's whole process tree (bin/ferry may run ferry media as its child), every thread.
        const checks = target.serverPids().flatMap((root) => processTree(root)).map((pid) => threadsOffCpus(pid, o.pinning!.serverCpus));
        const processes = checks.length;
        const threads = checks.reduce((a, c) => a + c.threads, 0);
        const off = checks.flatMap((c) => c.off);
        const line = off.length
          ? `${target.name}: ${off.length} of ${threads} server thread(s) NOT on CPU ${formatCpuList(o.pinning.serverCpus)}: ${off.slice(0, 4).join('; ')}`
          : `${target.name}: all ${threads} server threads (${processes} process${processes === 1 ? '' : 'es'}) on CPU ${formatCpuList(o.pinning.serverCpus)} after start`;
        progress(line);
        if (!refine) notes.push(`- ${line}`);
      }
      const r = await runSteps(
        target,
        {
          steps,
          windowMs: o.windowMs,
          settleMs: o.settleMs,
          drainMs: o.drainMs,
          lossLimitPct: o.lossLimitPct,
          outDir,
          strictStop: o.strictStop,
          lagLimitMs: o.lagLimitMs,
          stopOnLag: o.stopOnLag,
          setupMode: pacingLabel(o.setupPacing),
          ...(o.pinning ? { pinning: o.pinning } : {}),
          ...(o.mediaWorkers !== undefined ? { mediaWorkers: o.mediaWorkers } : {}),
          ...(o.profile ? { profileDir: outDir } : {}),
        },
        progress,
        (step) => {
          results.push(refine ? { ...step, refinement: true } : step);
          writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2));
        },
      );
      progress(`${target.name}: releasing ${r.at(-1)?.callsUp ?? 0} calls`);
      const verdict = await target.releaseAll();
      progress(`${target.name}: ${verdict}`);
      notes.push(`- ${target.name}${refine ? ` (refinement N=${steps.join(',')})` : ''}: after release: ${verdict}`);
      return target.name;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      progress(`${target.name}: FAILED: ${msg}`);
      notes.push(`- ${target.name}: failed: ${msg.split('\n')[0]}`);
      return undefined;
    } finally {
      await target.stop().catch((e: unknown) => progress(`${target.name}: stop failed: ${String(e)}`));
      active.splice(active.indexOf(target), 1);
    }
  }

  let profile = '';
  if (o.profile) {
    // Per ferry target: the window profile of its largest step within the loss limit (else its last step).
    const parts: string[] = [];
    for (const name of ['ferry webrtc-rtp', 'ferry rtp-rtp']) {
      const steps = results.filter((r) => r.target === name);
      const pick = [...steps].reverse().find((r) => r.lossPct <= o.lossLimitPct && r.setupFailures === 0) ?? steps.at(-1);
      if (!pick) continue;
      const file = path.join(outDir, `${name.replace(/\W+/g, '-')}-N${pick.calls}.cpuprofile`);
      parts.push(`#### ${name}, N=${pick.calls}, one ${o.windowMs / 1000} s window (main thread)`, '', summarizeCpuProfiles([file], REPO, 25), '');
      // The relay worker threads' profiles of the same window (<file>.worker<id>.cpuprofile), where the packets are.
      const base = path.basename(file, '.cpuprofile');
      const workerFiles = readdirSync(outDir)
        .filter((f) => f.startsWith(`${base}.worker`) && f.endsWith('.cpuprofile'))
        .map((f) => path.join(outDir, f));
      if (workerFiles.length > 0) {
        parts.push(`#### ${name}, N=${pick.calls}, the same window, relay worker threads (${workerFiles.length})`, '', summarizeCpuProfiles(workerFiles, REPO, 30), '');
      }
      const setupFile = path.join(outDir, `${name.replace(/\W+/g, '-')}-setup-N${pick.calls}.cpuprofile`);
      parts.push(`#### ${name}: setting up the calls of the step to N=${pick.calls}`, '', summarizeCpuProfiles([setupFile], REPO, 15), '');
    }
    profile = parts.join('\n');
    writeFileSync(path.join(outDir, 'cpu-profile.md'), profile);
  }

  const webrtcCap = capacity(results, 'ferry webrtc-rtp', o.lossLimitPct);
  const md = [
    '### Environment',
    environment(o, argv),
    '',
    '### Per step',
    resultsTable(results),
    '',
    ...(setupPhasesTable(results)
      ? [
          '### Set-up: who was busy, and its phases (p50 ms since the MediaPipeline create; ferry media\'s clock beside the browser\'s)',
          setupPhasesTable(results)!,
          '',
        ]
      : []),
    '### ferry CPU per call relative to rtpengine (same run, same N; per call = µs per packet × 100 packets/s)',
    ratioTable(results),
    '',
    ...(results.some((r) => r.target === NODE_FLOOR_TARGET)
      ? ['### The floor of a relay on node:dgram (same run, same N)', nodeFloorTable(results), '']
      : []),
    '### Verdict',
    o.targets.includes('ferry-webrtc')
      ? `- ferry WebRTC↔RTP: ${webrtcCap} concurrent calls with every call up and carrying media and loss ≤ ${o.lossLimitPct} % (target: ≥ 200): **${webrtcCap >= 200 ? 'met' : 'not met'}**; counting only the calls that carried media: ${liveCapacity(results, 'ferry webrtc-rtp', o.lossLimitPct)}`
      : '- ferry WebRTC↔RTP: not run (--targets)',
    `- ferry RTP↔RTP: ${capacity(results, 'ferry rtp-rtp', o.lossLimitPct)} (working calls only: ${liveCapacity(results, 'ferry rtp-rtp', o.lossLimitPct)}); rtpengine RTP↔RTP: ${capacity(results, 'rtpengine rtp-rtp', o.lossLimitPct)} (largest step tried: ${Math.max(...o.steps)})`,
    ...(['ferry rtp-rtp', 'ferry webrtc-rtp'] as const)
      .filter((t) => results.some((r) => r.target === t))
      .map((t) => {
        const c = perCoreCapacity(results, t, o.lossLimitPct, o.lagLimitMs);
        if (c.calls === 0) {
          return `- per-core capacity, ${t}: **no step passed** (loss < ${o.lossLimitPct} % and every lag p99 < ${o.lagLimitMs} ms)${c.firstFailure ? `; first: ${c.firstFailure}` : ''} — try smaller --steps`;
        }
        return (
          `- per-core capacity, ${t}: **${c.perWorker.toFixed(0)} calls per worker** (N=${c.calls} with ${c.workers} worker${c.workers === 1 ? '' : 's'} at loss < ${o.lossLimitPct} % and every worker's lag p99 < ${o.lagLimitMs} ms` +
          `${c.firstFailure ? `; first step beyond: ${c.firstFailure}` : '; no step beyond it failed — try larger --steps'})`
        );
      }),
    ...(['ferry rtp-rtp', 'ferry webrtc-rtp'] as const).flatMap((t) => workerShareVerdict(results, t) ?? []),
    ...generatorLimitedVerdicts(results),
    ...serverCoreSharedVerdicts(results),
    ...notes,
    ...results
      .filter((r) => r.silentStreams > 0)
      .map(
        (r) =>
          `- ${r.target} N=${r.calls}: ${r.silentStreams} stream(s) delivered nothing${r.silentDiagnosis ? `: ${r.silentDiagnosis}` : ''}`,
      ),
    ...(profile ? ['', '### ferry media CPU profile (hottest functions, self time)', profile] : []),
    '',
  ].join('\n');
  writeFileSync(path.join(outDir, 'results.md'), md);
  process.stdout.write(`\n${md}\n`);
  if (o.writeDocs) {
    writeDocs(md);
    progress('docs/benchmarks.md updated');
  }
  progress(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** The refinement stops when the interval left is narrower than this many calls. */
const REFINE_RESOLUTION = 10;

const BEGIN = '<!-- bench:media results begin -->';
const END = '<!-- bench:media results end -->';

function writeDocs(md: string): void {
  const file = path.join(REPO, 'docs', 'benchmarks.md');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = `# Benchmarks\n\n${BEGIN}\n${END}\n`;
  }
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  text = a >= 0 && b > a ? `${text.slice(0, a + BEGIN.length)}\n${md}\n${text.slice(b)}` : `${text}\n${BEGIN}\n${md}\n${END}\n`;
  writeFileSync(file, text);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:media failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
