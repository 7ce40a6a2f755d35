import type { LoadWorker } from '../load/load-worker';
import type { LoopLag } from '../probe/loop-lag-reader';

/** The outcome of setting up one call. */
export interface CallSetup {
  ok: boolean;
  ms: number;
  error?: string;
  /** Marks of the set-up's phases, ms since it started (targets that record them: ferry-webrtc). */
  phases?: Record<string, number | undefined>;
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
