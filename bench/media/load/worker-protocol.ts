import type { Direction } from './stream-stamp';
import type { EpochReport } from './stream-meter';

/** One media stream a load worker plays: it sends `direction` packets and receives the other way. */
export interface StreamSpec {
  streamId: number;
  direction: Direction;
  ssrc: number;
}

/** Requests the orchestrator sends to a load worker (over the fork() IPC channel). */
export type WorkerRequest =
  // both kinds
  | { op: 'epoch'; epoch: number }
  | { op: 'report'; epoch: number }
  | { op: 'close'; streamIds: number[] }
  | { op: 'exit' }
  // rtp-peer-worker
  | { op: 'open'; streams: StreamSpec[] }
  | { op: 'target'; streamId: number; host: string; port: number }
  // webrtc-peer-worker
  | { op: 'offer'; stream: StreamSpec; lean: boolean }
  /** with `waitConnectedMs`: also wait until connected and answer as waitConnected does (one request instead of two) */
  | { op: 'answer'; streamId: number; sdp: string; waitConnectedMs?: number }
  | { op: 'candidate'; streamId: number; candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }
  | { op: 'waitConnected'; streamId: number; timeoutMs: number }
  // both: the state of some streams, for diagnosing silent ones
  | { op: 'diag'; streamIds: number[] };

export interface WorkerReport extends EpochReport {
  /** Packets that were not stamped RTP (RTCP on the RTP socket, STUN leftovers...). */
  foreign: number;
  /** RTCP packets received (on port+1 for plain RTP). */
  rtcpReceived: number;
  /** Streams this worker currently plays. */
  streams: number;
  /** Ids of the streams this worker is sending on (set up and started). */
  sendingIds: number[];
}

export type WorkerReply =
  | { ok: true; result?: unknown }
  | { ok: false; error: string };

export interface WorkerEnvelope {
  id: number;
  request: WorkerRequest;
}

export interface WorkerResponseEnvelope {
  id: number;
  reply: WorkerReply;
}

/** Serve the IPC channel of a forked load worker with `handle`, one request at a time per message. */
export function serveWorker(handle: (request: WorkerRequest) => Promise<unknown>): void {
  if (!process.send) throw new Error('a load worker must be started with child_process.fork()');
  process.on('message', (raw: unknown) => {
    const env = raw as WorkerEnvelope;
    handle(env.request).then(
      (result) => process.send?.({ id: env.id, reply: { ok: true, result } } satisfies WorkerResponseEnvelope),
      (err: unknown) =>
        process.send?.({
          id: env.id,
          reply: { ok: false, error: err instanceof Error ? err.message : String(err) },
        } satisfies WorkerResponseEnvelope),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
