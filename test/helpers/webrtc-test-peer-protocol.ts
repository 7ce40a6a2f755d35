/**
 * Messages between a test process and the WebRTC test peer host (webrtc-test-peer-host.ts), over the
 * child-process IPC channel with advanced serialization (Buffers arrive as Uint8Array).
 */

/** Operations on a peer; `create` makes peer `peer` with `args[0]` as its options. */
export type PeerOperation =
  | 'create'
  | 'createOffer'
  | 'answer'
  | 'setAnswer'
  | 'addCandidate'
  | 'sendRtp'
  | 'sendRtcp'
  | 'replay'
  | 'sendRaw'
  | 'closeNotify'
  | 'holdDatagrams'
  | 'freeze'
  | 'close';

export interface PeerRequest {
  id: number;
  peer: number;
  op: PeerOperation;
  args: unknown[];
}

export type PeerEventName = 'rtp' | 'rtcp' | 'dtlsState' | 'candidate' | 'connected' | 'sentSrtp';

export type HostMessage =
  | { kind: 'ready'; pid: number; modulesFromSrc: string[] }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: string }
  | { kind: 'event'; peer: number; event: PeerEventName; args: unknown[] };

/** The largest number of peers one host keeps at once (a runaway test fails instead of exhausting ports). */
export const MAX_PEERS_PER_HOST = 64;
