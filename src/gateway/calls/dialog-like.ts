import { EventEmitter } from 'node:events';

/**
 * The part of a drachtio-srf `Dialog` a call uses. A live call holds real srf Dialogs; an adopted
 * call (taken over from a dead gateway) holds adapters with the same shape built from the
 * stored dialog snapshot (src/gateway/adoption/).
 */
export interface DialogLike extends EventEmitter {
  readonly id: string;
  readonly connected: boolean;
  local: { sdp: string; uri?: string; contact?: string };
  remote: { sdp: string; uri?: string };
  sip: { callId: string; localTag: string; remoteTag: string };
  destroy(opts?: { headers?: Record<string, string> }): Promise<unknown>;
  modify(sdp: string): Promise<string>;
  request(opts: { method: string; body?: string; headers?: Record<string, string> }): Promise<{ status: number }>;
}

/** what srf hands to in-dialog request listeners */
export interface InDialogRequest {
  method: string;
  body: string;
  /** where the request came from (srf sets it; requests replayed to adopted dialogs may not) */
  source_address?: string;
  get(name: string): string | undefined;
  has(name: string): boolean;
}
export interface InDialogResponse {
  send(status: number, reason?: string | { body?: string; headers?: Record<string, string> }, opts?: { body?: string; headers?: Record<string, string> }): void;
}
