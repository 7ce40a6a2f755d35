/** The measurements of one target at one concurrency step. */
import type { CpuPinning } from '../servers/cpu-pinning';
import type { CoreBusy } from '../servers/proc-sampler';
import type { WorkerLag } from './worker-lag';

export interface StepResult {
  target: string;
  /** Calls asked for. */
  calls: number;
  /** Calls whose setup succeeded (per-call figures divide by this). */
  callsUp: number;
  setupFailures: number;
  firstSetupError?: string;
  /** Setup time of the calls added in this step. */
  setupP50Ms: number | undefined;
  setupP99Ms: number | undefined;
  /**
   * p50 of each set-up phase mark (ms since the set-up started), over the calls that came up, when the target
   * records them (ferry-webrtc: processOffer, serverIceConnected / serverDtlsConnected on ferry media's clock,
   * iceConnected / dtlsConnected on the browser's, done).
   */
  setupPhasesP50Ms?: Record<string, number>;
  /** How the step's calls were set up: "10 at a time" (closed loop, --setup-concurrency) or "5/s even" (--setup-rate). */
  setupMode?: string;
  /** Open-loop arrivals: how late the set-ups started against their schedule, p99 and max, ms. */
  arrivalLateP99Ms?: number;
  arrivalLateMaxMs?: number;
  /** Who was busy while this step's calls were set up (absent from results written before it was measured). */
  setupWindow?: SetupWindow;
  windowS: number;
  /** Media-server CPU over the window, % of one core (user+system, all threads and child processes). */
  serverCpuPct: number;
  serverUserPct: number;
  serverSysPct: number;
  /** Media-server CPU seconds per call per second of wall time. */
  cpuPerCall: number;
  /** Media-server CPU per forwarded packet (us): CPU / packets it was sent in the window. */
  cpuUsPerPacket: number;
  rssMiB: number;
  /** (RSS now - RSS before the first call) / callsUp. */
  rssPerCallKiB: number;
  loopLagP99Ms: number | undefined;
  loopLagMaxMs: number | undefined;
  /** eventLoopLagP99Ms from ferry media's /stats, when it reports one. */
  statsLagP99Ms: number | undefined;
  sentPps: number;
  /** Loss over both directions, %, and per direction (0 = a-to-b / webrtc-to-rtp, 1 = b-to-a / rtp-to-webrtc). */
  lossPct: number;
  lossPctAB: number;
  lossPctBA: number;
  /** Kernel receive-buffer drops during the window (and drain) on the server's sockets / the load generator's. */
  serverUdpDrops: number;
  generatorUdpDrops: number;
  /** Loss among the streams that delivered at least one packet (excludes dead calls). */
  liveLossPct: number;
  latencyP50Ms: number | undefined;
  latencyP99Ms: number | undefined;
  /** Load-generator CPU (all worker processes), % of one core. */
  generatorCpuPct: number;
  /** The orchestrator's own CPU (this process: call set-up, epochs, sampling), % of one core. */
  orchestratorCpuPct?: number;
  /** Share of sends the generator skipped because it fell behind: > 1 % means it, not the server, was the limit. */
  generatorSkippedPct: number;
  /** Whole-machine busy cores (of `cores`). */
  machineBusyCores: number;
  /** Machine busy cores not spent by the server, the load workers or the orchestrator: other people's processes. */
  otherProcessesCores: number;
  /** Sending streams of which nothing arrived in the window (dead calls or directions). */
  silentStreams: number;
  /** The first few of them, described by the target (call / pipeline). */
  silentStreamNames?: string[];
  /** What the server says about them (e.g. "16× server ICE CONNECTED DTLS FAILED ..."). */
  silentDiagnosis?: string;
  serverStats?: Record<string, unknown>;
  /** FERRY_MEDIA_WORKERS this run set for ferry media (--workers), if any. */
  mediaWorkers?: number;
  /** Per relay worker of ferry media: pipelines, elements, event-loop lag (one entry without worker threads). */
  workerLags?: WorkerLag[];
  /** Per-core busy % of the machine over the window (/proc/stat), and how many cores were above 50 %. */
  coreBusy?: CoreBusy;
  /** --server-cpus / --generator-cpus of the run (absent: server and generator shared every CPU). */
  pinning?: CpuPinning;
  /** A bisection probe of the per-core capacity search (--refine): a fresh server set up straight to N. */
  refinement?: boolean;
}

/** CPU over the set-up of one step's calls: which side (server or load generator) was the busy one. */
export interface SetupWindow {
  wallMs: number;
  /** The media server's CPU (all threads, child processes), ms. */
  serverCpuMs: number;
  /** The load workers' CPU (werift browsers, RTP phones), ms. */
  loadWorkersCpuMs: number;
  /** The orchestrator's own CPU (kurento-client, the set-up's requests), ms. */
  orchestratorCpuMs: number;
  /** Busy % of each core, cpu0 first. */
  perCoreBusyPct: number[];
  /** The orchestrator's event-loop delay: how long each reply waited for it, roughly. */
  orchestratorLagP50Ms: number;
  orchestratorLagP99Ms: number;
}
