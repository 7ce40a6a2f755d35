import type { LoadWorker } from '../load/load-worker';
import type { LoopLag } from '../probe/loop-lag-reader';

/** The outcome of setting up one call. */
export interface CallSetup {
  ok: boolean;
  ms: number;
  error?: string;
  /** Marks of the set-up's phases, ms since it started (targets that record them: ferry-webrtc). */
  phases?: Record<string, number | undefined>;
  /** Open-loop arrivals (--setup-rate): how late this call's set-up started against its scheduled arrival, ms. */
  arrivalLateMs?: number;
}

/**
 * How a step's new calls are set up. Closed loop (`concurrency`, --setup-concurrency): at most `limit` set-ups in
 * flight, the next one starting when one finishes, so a burst of `limit` calls at once. Open loop (`rate`,
 * --setup-rate): call i arrives at its scheduled time (arrivalOffsetsMs) whether or not the earlier ones are up.
 */
export type SetupPacing =
  | { kind: 'concurrency'; limit: number }
  | { kind: 'rate'; perSecond: number; arrivals: ArrivalProcess; seed: number };

/** `even`: one call every 1/R s; `poisson`: exponential gaps of mean 1/R s from a seeded generator. */
export type ArrivalProcess = 'even' | 'poisson';

/** A label for tables and progress lines: "10 at a time", "5/s even", "5/s poisson (seed 1)". */
export function pacingLabel(p: SetupPacing): string {
  return p.kind === 'concurrency'
    ? `${p.limit} at a time`
    : `${p.perSecond}/s ${p.arrivals}${p.arrivals === 'poisson' ? ` (seed ${p.seed})` : ''}`;
}

/**
 * When each of `count` calls arrives, ms after the first (which arrives at 0). `even`: i × 1000/R.
 * `poisson`: cumulative exponential gaps of mean 1000/R ms drawn from mulberry32(seed): the same seed gives the
 * same schedule, so runs at one rate compare call for call.
 */
export function arrivalOffsetsMs(count: number, perSecond: number, arrivals: ArrivalProcess, seed = 1): number[] {
  if (!(perSecond > 0)) throw new Error(`arrival rate must be > 0, got ${perSecond}`);
  const gapMs = 1000 / perSecond;
  if (arrivals === 'even') return Array.from({ length: count }, (_, i) => i * gapMs);
  const random = mulberry32(seed);
  const out: number[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (i > 0) at += -Math.log(1 - random()) * gapMs;
    out.push(at);
  }
  return out;
}

/** A small seeded PRNG (uniform in [0, 1)); enough for arrival gaps, not for anything secret. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Set up one call per item, paced as `pacing` says (closed-loop bursts or open-loop arrivals). In open loop each
 * set-up starts on its own timer at its arrival time, none waits for another, and each result records how late
 * its start was against the schedule (a busy orchestrator loop shows here).
 */
export async function runSetups<T>(items: readonly T[], pacing: SetupPacing, fn: (item: T) => Promise<CallSetup>): Promise<CallSetup[]> {
  if (pacing.kind === 'concurrency') return runLimited(items, pacing.limit, fn);
  const offsets = arrivalOffsetsMs(items.length, pacing.perSecond, pacing.arrivals, pacing.seed);
  const t0 = performance.now();
  return Promise.all(
    items.map(
      (item, i) =>
        new Promise<CallSetup>((resolve) => {
          const start = (): void => {
            const lateMs = Math.max(0, performance.now() - t0 - offsets[i]!);
            fn(item).then(
              (setup) => resolve({ ...setup, arrivalLateMs: lateMs }),
              (err: unknown) => resolve({ ok: false, ms: 0, error: err instanceof Error ? err.message : String(err), arrivalLateMs: lateMs }),
            );
          };
          if (offsets[i]! <= 0) start();
          else setTimeout(start, offsets[i]!);
        }),
    ),
  );
}

/**
 * One thing under load: a media server plus the call shape pushed through it
 * (rtpengine RTP<->RTP, ferry RtpEndpoint<->RtpEndpoint, ferry WebRtcEndpoint<->RtpEndpoint).
 */
export interface BenchTarget {
  /** Short id used in tables: 'rtpengine rtp-rtp', 'ferry rtp-rtp', 'ferry webrtc-rtp'. */
  readonly name: string;
  /** Start the server and the load workers. */
  start(): Promise<void>;
  /** Pids whose CPU and RSS count as the media server's (descendants are included). */
  serverPids(): number[];
  /** The load generator processes (for epochs, reports and generator CPU). */
  workers(): LoadWorker[];
  /** Set up `count` more calls; resolves with one entry per call. */
  addCalls(count: number): Promise<CallSetup[]>;
  /** Event-loop lag of the server over [fromMs, toMs] (epoch ms), when it has an event loop. */
  loopLag?(fromMs: number, toMs: number): LoopLag | undefined;
  /** Extra live figures from the server (ferry: its /stats), read at the end of a window. */
  serverStats?(): Promise<Record<string, unknown> | undefined>;
  /** Name a stream for diagnostics (which call, which pipeline, which direction). */
  describeStream?(streamId: number): string;
  /** Everything known about some silent streams (server and generator side), for a diagnostics file. */
  diagnose?(streamIds: number[]): Promise<unknown>;
  /** Window-exact CPU profiling of the server, when it was started for it. */
  profiler?(): { start(): Promise<unknown>; stop(file: string): Promise<void> } | undefined;
  /** Release every call and check the server is back to zero; returns a one-line verdict. */
  releaseAll(): Promise<string>;
  /** Stop the server and the workers (always safe to call). */
  stop(): Promise<void>;
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function runLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** Time one call setup, turning a failure into a value. */
export async function timeSetup(fn: () => Promise<void>, timeoutMs: number): Promise<CallSetup> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`call setup timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true, ms: performance.now() - t0 };
  } catch (err) {
    return { ok: false, ms: performance.now() - t0, error: err instanceof Error ? err.message : String(err) };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
