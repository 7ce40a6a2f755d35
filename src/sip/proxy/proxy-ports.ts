import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { AppConnection } from '../control/app-connection';
import type { SipRequest, SipResponse } from '../message/sip-message';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';

/**
 * What the proxy core needs from the SIP engine, and nothing more: the network request the app was
 * handed, a way to send requests in client transactions, next-hop resolution, the engine's own
 * address, and the app port that writes drachtio answers. The engine passes an object with these
 * members; the proxy core never reaches into the engine otherwise.
 */

/** The server transaction of a network request, as far as the proxy uses it. */
export interface ProxyServerTransaction {
  respond(response: SipResponse): void;
  readonly finalSent: boolean;
  readonly terminated: boolean;
}

/** A network request delivered to an app and not answered yet: what the app asks ferry sip to proxy. */
export interface ProxyPendingRequest {
  txnId: string;
  appId: string;
  request: SipRequest;
  /** where the request came from: responses go back over it */
  flow: Flow;
  txn: ProxyServerTransaction;
}

/** Told what happens to a request the proxy sent (RFC 3261 transaction user). */
export interface ProxyClientUser {
  onResponse(response: SipResponse): void;
  /** Timer B/F fired or the transport failed */
  onTimeout(): void;
}

/** A client transaction the engine started for the proxy. */
export interface ProxyClientTransaction {
  /** stops it at once (no more retransmissions, no more responses) */
  abort(): void;
  readonly terminated: boolean;
}

/** The engine's address, as it writes it in Via, Contact and Record-Route. */
export interface ProxyLocalAddress {
  host(flow: Flow): string;
  port(flow: Flow): number;
  /** a fresh top Via (new branch) for a request sent over `flow` */
  via(flow: Flow): string;
}

/** Writes the drachtio `response|<rid>|...` answers to the app's `proxy` message. */
export interface ProxyAppPort {
  reply(app: AppConnection, rid: string, tokens: string[], sip?: string): void;
}

export interface ProxyServices {
  /** the engine forgets the pending request (its expiry stops): the proxy owns its transaction now */
  finishPending(pending: ProxyPendingRequest): void;
  /** sends `req` (whose top Via the caller has set) in a client transaction counted by the engine */
  sendRequest(req: SipRequest, flow: Flow, user: ProxyClientUser): ProxyClientTransaction;
  /** the flow for a URI or Route value (DNS A record, default port, bound webphone connections) */
  resolve(uriOrRoute: string): Promise<Flow>;
  local: ProxyLocalAddress;
  appPort: ProxyAppPort;
  clock: Clock;
  timers: TimerConfig;
  log: Logger;
}

/** The app's `proxy` control message, as the control port parsed it. */
export interface ProxyCommandMessage {
  rid: string;
  /** the stack transaction id of the network request to proxy */
  transactionId: string;
  remainInDialog: boolean;
  fullResponse: boolean;
  followRedirects: boolean;
  simultaneous: boolean;
  provisionalTimeout: string;
  finalTimeout: string;
  destinations: string[];
  /** the SIP message after the frame's first CRLF: headers the app wants added ('' when none) */
  raw: string;
}
