import type { FaultKind } from './soak-options';
import type { PacketBlackhole } from './packet-blackhole';

/** One call the soak placed, as its two parties saw it, plus what was done to it. */
export type Party = 'phone' | 'webphone';

export interface CallFault {
  kind: FaultKind;
  at: number;
  until?: number;
  side?: Party;
}

export interface SoakCall {
  /** soak-wide sequence number */
  id: number;
  slot: number;
  caller: Party;
  placedAt: number;
  answeredAt?: number;
  setupFailedAt?: number;
  setupError?: string;
  /** the webphone leg's SIP Call-ID (matches the gateway's call record) */
  webphoneCallId?: string;
  plannedHangupAt: number;
  plannedHangupBy: Party;
  hangupBy?: Party;
  hangupAt?: number;
  /** when each party was told by a BYE from ferry */
  toldAt: Partial<Record<Party, number>>;
  /** the first end signal either party saw or sent */
  endedAt?: number;
  faults: CallFault[];
  /** a per-call fault is running (the planned hang-up waits for it) */
  busyWith?: FaultKind;
  cablePull?: { at: number; hole: PacketBlackhole; pluggedAt?: number };
  /** the gateway's end reason (from its call record) */
  reason?: string;
  suspectedFalseEnd?: boolean;
  /** the phone's hang-up BYE got no answer in time (noted, not a failure by itself) */
  byeUnanswered?: string;
  /** what went wrong with this call, if anything (filled by the attribution) */
  problems: string[];
}

export function otherParty(p: Party): Party {
  return p === 'phone' ? 'webphone' : 'phone';
}
