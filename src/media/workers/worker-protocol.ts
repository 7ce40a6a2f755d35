import type { LegEndReason } from '../relay/media-leg';
import type { MediaConfig } from '../server/media-config';
import type { ProcessFaultCounts } from '../../common/process-faults';

/**
 * Messages between ferry media's control plane (main thread) and its relay workers (worker threads or
 * child processes, src/media/workers/relay-worker.ts, relay-transport.ts). Every message is
 * structured-cloned (a MessagePort, or an IPC channel with `serialization: 'advanced'`); no functions, no
 * sockets. One channel per worker keeps order: events an operation emits arrive before its reply.
 */

/** What the control plane knows of an element without asking its worker (refreshed by every reply and event). */
export interface ElementState {
  /** An RtpEndpoint or WebRtcEndpoint (a call's endpoint: releasing it releases the pipeline). */
  callEndpoint: boolean;
  mediaLive: boolean;
  endReason: LegEndReason | undefined;
  endedAt: number;
  mediaState: 'CONNECTED' | 'DISCONNECTED';
  boundPorts: number;
  /** Connected to another call endpoint (lifecycle rule 5: such an endpoint releases its whole pipeline). */
  connectedToCallEndpoint: boolean;
  childIds: string[];
  eventTags: { key: string; value: string }[];
}

export type WorkerRequest =
  | { op: 'createPipeline'; pid: string }
  | { op: 'create'; pid: string; id: string; type: string; params: Record<string, unknown> }
  | { op: 'invoke'; id: string; operation: string; params: Record<string, unknown> }
  | { op: 'teardown'; id: string; notifyPeer: boolean }
  | { op: 'dropPipeline'; pid: string }
  | { op: 'stats' };

export type ToWorker =
  | ({ k: 'req'; rid: number } & WorkerRequest)
  | { k: 'mute'; ids: string[] }
  /** test hook: the worker exits at once, as a crashed worker would (no release, no goodbye). */
  | { k: 'crash' };

export interface SerializedError {
  /** set for a KurentoError */
  code?: number;
  type?: string;
  message: string;
}

export interface WorkerStats {
  pipelines: number;
  elements: number;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  processFaults: ProcessFaultCounts;
  /** element id -> its /stats entry (describeForStats) */
  describe: Record<string, Record<string, unknown>>;
  states: Record<string, ElementState>;
}

export type FromWorker =
  | { k: 'ready' }
  | { k: 'res'; rid: number; ok: true; value: unknown; states?: Record<string, ElementState> }
  | { k: 'res'; rid: number; ok: false; error: SerializedError }
  | { k: 'event'; id: string; type: string; data: Record<string, unknown>; state: ElementState | undefined }
  | { k: 'legEnded'; id: string; reason: LegEndReason; state: ElementState | undefined }
  | { k: 'lag'; eventLoopLagP99Ms: number; eventLoopLagMaxMs: number };

/** What a relay worker is started with (a thread's workerData, a child process's `init` message). */
export interface RelayWorkerData {
  workerId: number;
  config: MediaConfig;
  /** the module to run (relay-worker.js of the bundle, or relay-worker.ts: the bootstrap registers tsx first) */
  module: string;
}

/** A relay child process gets its RelayWorkerData as its first message, then what a thread gets. */
export type ToRelayProcess = ToWorker | { k: 'init'; data: RelayWorkerData };

/** The argument a relay child process is started with (relay-worker.ts runs only then, and only with an IPC channel). */
export const RELAY_PROCESS_FLAG = '--ferry-relay-worker';
