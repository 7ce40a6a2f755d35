/** Command-line options of `npm run bench:media -- [options]`, parsed and checked once. */
import type { ArrivalProcess, SetupPacing } from './phases/bench-target';
import { machineCpus, parseCpuList, resolvePinning, type CpuPinning } from './servers/cpu-pinning';

export type TargetId = 'rtpengine' | 'ferry-rtp' | 'ferry-webrtc' | 'node-floor';
/** The default targets; `node-floor` (a bare node:dgram relay: what Node alone costs per packet) only when named. */
const ALL_TARGETS: TargetId[] = ['rtpengine', 'ferry-rtp', 'ferry-webrtc'];
const KNOWN_TARGETS: TargetId[] = [...ALL_TARGETS, 'node-floor'];

export interface BenchOptions {
  quick: boolean;
  steps: number[];
  windowMs: number;
  settleMs: number;
  drainMs: number;
  lossLimitPct: number;
  targets: TargetId[];
  rtpWorkers: number;
  webrtcWorkers: number;
  /** 'lean' (default): werift browsers whose packets bypass werift's track machinery; 'full': track.writeRtp/onReceiveRtp. */
  browser: 'lean' | 'full';
  setupConcurrency: number;
  /** --setup-rate: open-loop arrivals, calls per second (undefined: closed-loop bursts of setupConcurrency). */
  setupRate: number | undefined;
  /** --arrivals: how the open-loop arrivals are spaced (default even: one every 1/R s). */
  arrivals: ArrivalProcess;
  /** --arrival-seed: the seed of the poisson arrivals (default 1). */
  arrivalSeed: number;
  /** What the targets use: setupRate / arrivals / arrivalSeed or setupConcurrency, resolved once. */
  setupPacing: SetupPacing;
  /** ferry-webrtc: subscribe to each WebRtcEndpoint's ICE and DTLS state events to mark ferry's own times (default on). */
  serverSetupMarks: boolean;
  profile: boolean;
  outDir: string | undefined;
  logLevel: string;
  rtpengineBinary: string;
  rtpenginePortMin: number;
  rtpenginePortMax: number;
  writeDocs: boolean;
  /** Stop at the first step with total loss above the limit, dead calls included. */
  strictStop: boolean;
  /** Niceness for the servers, load workers and orchestrator (0 = unchanged; negative needs root). */
  nice: number;
  /** Extra environment for ferry media (e.g. FERRY_MEDIA_* settings, DEBUG=werift*). */
  mediaEnv: Record<string, string>;
  /** Relay workers of ferry media (FERRY_MEDIA_WORKERS); undefined = ferry media's own default. */
  mediaWorkers: number | undefined;
  /** What ferry media's relay workers are (FERRY_MEDIA_WORKER_KIND); undefined = ferry media's default (thread). */
  mediaWorkerKind: 'thread' | 'process' | undefined;
  /** Event-loop lag p99 (ms) a worker may show and still count as carrying the load (per-core capacity). */
  lagLimitMs: number;
  /** Also stop stepping at the first step whose worst worker lag p99 reaches the lag limit. */
  stopOnLag: boolean;
  /** Bisection probes after the ladder, between the largest passing and the first failing step (ferry targets). */
  refine: number;
  /** --server-cpus / --generator-cpus, checked against the machine's CPUs: undefined = no pinning. */
  pinning: CpuPinning | undefined;
}

export const USAGE = `usage: npm run bench:media -- [options]
  --quick                  2 steps (25, 50 calls), 5 s windows: under 2 minutes
  --steps 25,50,100,...    concurrency steps (default 25,50,100,150,200,250,300,400,500)
  --window <s>             measurement window per step (default 15; quick 5)
  --targets a,b,c          any of rtpengine,ferry-rtp,ferry-webrtc (default all three), and node-floor: a bare
                           node:dgram relay, what Node alone costs per relayed packet (only when named)
  --rtp-workers <n>        plain-RTP load processes (default 2)
  --webrtc-workers <n>     werift load processes (default 2)
  --browser lean|full      werift browsers: lean packet path after DTLS (default) or full track API
  --setup-concurrency <n>  closed loop: each step's new calls set up n at a time, the next starting as one
                           finishes, so bursts of n simultaneous set-ups (default 10)
  --setup-rate <R>         open loop instead: each step's new calls arrive at R calls/s (fractions allowed),
                           each set-up started at its arrival whether or not the earlier ones are up, while
                           the calls already up carry their media; set-up p50/p99 per step, and how late the
                           arrivals started (the orchestrator's timers)
  --arrivals even|poisson  --setup-rate spacing: even (default; one call every 1/R s) or poisson (exponential
                           gaps of mean 1/R s from a fixed seed: the same schedule in every run)
  --arrival-seed <n>       seed of the poisson arrivals (default 1)
  --no-server-marks        ferry-webrtc: do not subscribe to the WebRtcEndpoint's ICE/DTLS state events (two
                           requests per call) that give ferry media's own ICE and DTLS connected times
  --loss-limit <pct>       stop stepping when working calls lose more than this (default 0.1), or >10 % of
                           streams are dead; dead calls always count in the verdict
  --strict-stop            stop at the first step whose total loss (dead calls included) is above the limit
  --profile                run ferry media with --cpu-prof and print its hottest functions
  --out <dir>              results directory (default bench/media/results/<timestamp>)
  --log-level <level>      ferry media FERRY_LOG_LEVEL (default warn)
  --rtpengine <path>       rtpengine binary (default /usr/bin/rtpengine)
  --rtpengine-ports a-b    rtpengine media port range (default 21000-24999, below the ephemeral range)
  --nice <n>               run servers, load workers and this process at niceness n (e.g. -5, root only):
                           both servers alike, so other processes on a shared machine disturb less
  --media-env K=V          extra environment for ferry media (repeatable)
  --workers <n>            ferry media relay workers: FERRY_MEDIA_WORKERS=n for the ferry media the bench
                           starts (default: ferry media's own default); per-worker lag is reported
  --worker-kind thread|process
                           what those relay workers are: FERRY_MEDIA_WORKER_KIND (worker threads, the
                           default, or child processes); to compare both, run the bench once with each
  --lag-limit <ms>         event-loop lag p99 a worker may show within the per-core capacity (default 20)
  --stop-on-lag            also stop stepping at the first step whose worst lag p99 (any worker or the
                           main loop) >= --lag-limit
  --refine <k>             after the steps, up to k bisection probes (each on a fresh ferry media set up
                           straight to N) between the largest step within the per-core limits and the
                           first beyond them; stops at 10 calls' resolution (default 0)
  --server-cpus <list>     run the server under test (rtpengine, or ferry media with all its threads) on
                           these CPUs only (taskset -c; e.g. 0 or 0-1,3); both servers alike
  --generator-cpus <list>  run the load workers and this process on these CPUs only; must not overlap
                           --server-cpus. Give either: the other one gets the rest of the machine's CPUs
  --write-docs             replace the results block in docs/benchmarks.md with this run's tables`;

/** `available`: the CPUs --server-cpus / --generator-cpus are checked against (default: this process's). */
export function parseOptions(argv: readonly string[], available: readonly number[] = machineCpus()): BenchOptions {
  const quick = argv.includes('--quick');
  const o: BenchOptions = {
    quick,
    steps: quick ? [25, 50] : [25, 50, 100, 150, 200, 250, 300, 400, 500],
    windowMs: quick ? 5000 : 15000,
    settleMs: quick ? 1500 : 3000,
    // Packets a stalled server delivers more than this after the window count as lost.
    drainMs: quick ? 1500 : 3000,
    lossLimitPct: 0.1,
    targets: [...ALL_TARGETS],
    rtpWorkers: 2,
    webrtcWorkers: 2,
    browser: 'lean',
    setupConcurrency: 10,
    setupRate: undefined,
    arrivals: 'even',
    arrivalSeed: 1,
    setupPacing: { kind: 'concurrency', limit: 10 },
    serverSetupMarks: true,
    profile: false,
    outDir: undefined,
    logLevel: 'warn',
    rtpengineBinary: '/usr/bin/rtpengine',
    rtpenginePortMin: 21000,
    rtpenginePortMax: 24999,
    writeDocs: false,
    strictStop: false,
    nice: 0,
    mediaEnv: {},
    mediaWorkers: undefined,
    mediaWorkerKind: undefined,
    lagLimitMs: 20,
    stopOnLag: false,
    refine: 0,
    pinning: undefined,
  };
  let serverCpus: number[] | undefined;
  let generatorCpus: number[] | undefined;
  let concurrencyGiven = false;
  const errors: string[] = [];
  const positiveInt = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) errors.push(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string | undefined => argv[++i];
    switch (flag) {
      case '--quick':
        break;
      case '--steps': {
        const v = value() ?? '';
        o.steps = v.split(',').map((x) => positiveInt('--steps', x));
        if ([...o.steps].sort((a, b) => a - b).join() !== o.steps.join()) errors.push('--steps must be increasing');
        break;
      }
      case '--window':
        o.windowMs = positiveInt(flag, value()) * 1000;
        break;
      case '--targets': {
        const list = (value() ?? '').split(',') as TargetId[];
        for (const t of list) if (!KNOWN_TARGETS.includes(t)) errors.push(`unknown target ${JSON.stringify(t)}`);
        o.targets = list;
        break;
      }
      case '--rtp-workers':
        o.rtpWorkers = positiveInt(flag, value());
        break;
      case '--webrtc-workers':
        o.webrtcWorkers = positiveInt(flag, value());
        break;
      case '--browser': {
        const v = value();
        if (v !== 'lean' && v !== 'full') errors.push('--browser must be lean or full');
        else o.browser = v;
        break;
      }
      case '--setup-concurrency':
        o.setupConcurrency = positiveInt(flag, value());
        concurrencyGiven = true;
        break;
      case '--setup-rate': {
        const v = value();
        const n = Number(v);
        if (!(n > 0) || !Number.isFinite(n)) errors.push(`--setup-rate needs a number of calls per second > 0, got ${JSON.stringify(v)}`);
        else o.setupRate = n;
        break;
      }
      case '--arrivals': {
        const v = value();
        if (v !== 'even' && v !== 'poisson') errors.push(`--arrivals must be even or poisson, got ${JSON.stringify(v)}`);
        else o.arrivals = v;
        break;
      }
      case '--arrival-seed':
        o.arrivalSeed = positiveInt(flag, value());
        break;
      case '--loss-limit': {
        const n = Number(value());
        if (!(n >= 0)) errors.push('--loss-limit needs a number >= 0');
        o.lossLimitPct = n;
        break;
      }
      case '--nice': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < -20 || n > 19) errors.push('--nice needs an integer from -20 to 19');
        else o.nice = n;
        break;
      }
      case '--strict-stop':
        o.strictStop = true;
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--no-server-marks':
        o.serverSetupMarks = false;
        break;
      case '--out':
        o.outDir = value();
        break;
      case '--log-level':
        o.logLevel = value() ?? 'warn';
        break;
      case '--rtpengine':
        o.rtpengineBinary = value() ?? '';
        break;
      case '--rtpengine-ports': {
        const m = /^(\d+)-(\d+)$/.exec(value() ?? '');
        if (!m || Number(m[1]) >= Number(m[2])) errors.push('--rtpengine-ports needs <min>-<max>');
        else {
          o.rtpenginePortMin = Number(m[1]);
          o.rtpenginePortMax = Number(m[2]);
        }
        break;
      }
      case '--media-env': {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(value() ?? '');
        if (!m) errors.push('--media-env needs NAME=value');
        else o.mediaEnv[m[1]!] = m[2]!;
        break;
      }
      case '--workers':
        o.mediaWorkers = positiveInt(flag, value());
        break;
      case '--worker-kind': {
        const v = value();
        if (v !== 'thread' && v !== 'process') errors.push(`--worker-kind must be thread or process, got ${JSON.stringify(v)}`);
        else o.mediaWorkerKind = v;
        break;
      }
      case '--lag-limit': {
        const n = Number(value());
        if (!(n > 0)) errors.push('--lag-limit needs a number of ms > 0');
        else o.lagLimitMs = n;
        break;
      }
      case '--stop-on-lag':
        o.stopOnLag = true;
        break;
      case '--refine': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0 || n > 10) errors.push('--refine needs an integer from 0 to 10');
        else o.refine = n;
        break;
      }
      case '--server-cpus':
      case '--generator-cpus': {
        let list: number[] | undefined;
        try {
          list = parseCpuList(value() ?? '');
        } catch (err) {
          errors.push(`${flag}: ${(err as Error).message}`);
        }
        if (flag === '--server-cpus') serverCpus = list;
        else generatorCpus = list;
        break;
      }
      case '--write-docs':
        o.writeDocs = true;
        break;
      case '--help':
      case '-h':
        throw new UsageRequested();
      default:
        errors.push(`unknown option ${flag}`);
    }
  }
  if (o.setupRate !== undefined && concurrencyGiven) errors.push('--setup-rate and --setup-concurrency exclude each other: give one');
  if (o.setupRate === undefined && (argv.includes('--arrivals') || argv.includes('--arrival-seed'))) {
    errors.push('--arrivals and --arrival-seed go with --setup-rate');
  }
  if (o.mediaWorkers !== undefined && o.mediaEnv.FERRY_MEDIA_WORKERS !== undefined && o.mediaEnv.FERRY_MEDIA_WORKERS !== String(o.mediaWorkers)) {
    errors.push('--workers and --media-env FERRY_MEDIA_WORKERS disagree: give one');
  }
  if (o.mediaWorkerKind !== undefined && o.mediaEnv.FERRY_MEDIA_WORKER_KIND !== undefined && o.mediaEnv.FERRY_MEDIA_WORKER_KIND !== o.mediaWorkerKind) {
    errors.push('--worker-kind and --media-env FERRY_MEDIA_WORKER_KIND disagree: give one');
  }
  if (!errors.some((e) => e.startsWith('--server-cpus') || e.startsWith('--generator-cpus'))) {
    try {
      o.pinning = resolvePinning(serverCpus, generatorCpus, available);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) throw new Error(`${errors.join('\n')}\n${USAGE}`);
  o.setupPacing =
    o.setupRate !== undefined
      ? { kind: 'rate', perSecond: o.setupRate, arrivals: o.arrivals, seed: o.arrivalSeed }
      : { kind: 'concurrency', limit: o.setupConcurrency };
  if (o.mediaWorkers !== undefined) o.mediaEnv.FERRY_MEDIA_WORKERS = String(o.mediaWorkers);
  if (o.mediaWorkerKind !== undefined) o.mediaEnv.FERRY_MEDIA_WORKER_KIND = o.mediaWorkerKind;
  return o;
}

export class UsageRequested extends Error {
  constructor() {
    super(USAGE);
  }
}
