import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/logger';
import type { AppRouter } from '../control/app-router';
import type { FlowBindings } from '../registrar/flow-bindings';
import type { ClientTransactionTable } from '../transaction/client-transaction-table';
import type { ServerTransactionTable } from '../transaction/server-transaction-table';
import type { TimerConfig } from '../transaction/timer-config';
import type { AppPort } from './app-port';
import type { CallRecords } from './call-records';
import type { RequestHandler } from '../control/request-handler';
import type { ClientRequest } from './client-request';
import type { DialogLifetime } from './dialog-lifetime';
import type { LocalAddress } from './local-address';
import type { NextHopResolver } from './next-hop-resolver';
import type { PendingServerRequest, PendingServerRequests } from './pending-server-requests';
import type { RestartHeldRequests } from './restart-held-requests';
import type { UnroutedRequestHold } from './unrouted-request-hold';

/** What the engine's parts share: time, configuration, the app side, and the engine's tables. */
export interface EngineContext {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly router: AppRouter;
  readonly resolver: NextHopResolver;
  readonly bindings: FlowBindings;
  readonly local: LocalAddress;
  readonly log: Logger;
  readonly appPort: AppPort;
  readonly dialogs: DialogLifetime;
  /** call detail records (cdr:attempt/start/stop) for the apps that asked for them */
  readonly cdr: CallRecords;
  readonly serverTxns: ServerTransactionTable<PendingServerRequest>;
  readonly clients: ClientTransactionTable<ClientRequest>;
  readonly pending: PendingServerRequests;
  /** in-dialog requests for dialogs unknown right after start, waiting for their app's claim */
  readonly restartHeld: RestartHeldRequests;
  /** new requests no app routes yet, waiting (right after start, or while no app is connected) for one that does */
  readonly unroutedHold: UnroutedRequestHold;
  /** outbound connection mode: where the new requests of the methods it takes go (absent: to the connected apps) */
  readonly requestHandler?: RequestHandler;
  /** set once the engine stops: no new request goes to an app, nothing new is held */
  readonly lifecycle: { closing: boolean };
}
