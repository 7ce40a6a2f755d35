import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { AppConnection } from '../control/app-connection';
import type { AppProxyMessage } from '../control/control-server';
import type { SipRequest, SipResponse } from '../message/sip-message';
import type { ClientTransaction } from '../transaction/client-transaction-table';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';
import type { AppRouter } from '../control/app-router';
import type { AppPort } from './app-port';
import type { LocalAddress } from './local-address';
import type { ConnectedHops } from './next-hop-resolver';
import type { PendingServerRequest } from './pending-server-requests';

/**
 * Where the engine hands the `proxy` verb (drachtio-srf `srf.proxyRequest`) and the requests only a
 * proxy can take. The engine calls exactly these members; the proxy core implements them.
 */
export interface ProxyDispatch {
  /** The app asks to proxy the network request it knows as `m.transactionId` (`pending` undefined: no such request). */
  proxy(app: AppConnection, m: AppProxyMessage, pending: PendingServerRequest | undefined): void;
  /** A request with a To tag that matches no dialog (a record-routed proxied call's in-dialog request); true if taken. */
  onUnmatchedInDialogRequest?(req: SipRequest, flow: Flow, txn: ServerTransaction): boolean;
  /** True when a request with a To tag that matches no dialog carries the Record-Route of a call the proxy stays in (it would be relayed). */
  relays?(req: SipRequest, flow: Flow): boolean;
  /** An ACK that matches no server INVITE transaction and no dialog; true if taken. */
  onUnmatchedAck?(req: SipRequest, flow: Flow): boolean;
  /** A CANCEL matched the INVITE server transaction `inviteTxn` (the CANCEL is answered 200, the INVITE 487 if it was open). */
  onCancelled?(inviteTxn: ServerTransaction): void;
  /** counts merged into the engine's stats */
  stats?(): { proxySessions: number; proxyForwards: number };
  /** engine shutdown: stop every timer */
  shutdown?(): void;
}

/** What the engine lends the proxy core. */
export interface ProxyServices {
  /** the engine forgets the pending request (its expiry stops): the proxy owns its transaction now */
  finishPending(pending: PendingServerRequest): void;
  /** sends `req` (its top Via set by the caller) over `flow` in a client transaction the engine counts and routes responses to */
  sendRequest(req: SipRequest, flow: Flow, user: { onResponse(res: SipResponse): void; onTimeout(): void }): ClientTransaction;
  /** the next hop for a URI or Route value */
  resolve(uriOrRoute: string): Promise<Flow>;
  /** ...with the targets after it, for a request that fails at the first (RFC 3263 §4.3) */
  resolveTargets?(uriOrRoute: string): Promise<ConnectedHops>;
  local: LocalAddress;
  appPort: AppPort;
  router: AppRouter;
  clock: Clock;
  timers: TimerConfig;
  log: Logger;
}
