import type { Clock } from '../../common/clock';
import type { AppConnection } from '../control/app-connection';
import type { SipMessage } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import { networkSipTokens, requestSentTokens, responseSentTokens, unsolicitedTokens, type WireMeta } from './app-wire-format';
import type { LocalAddress } from './local-address';

/**
 * The engine's side of the drachtio control protocol: the only code that writes drachtio tokens to an
 * app (the layouts are in app-wire-format.ts). The UAS, UAC and proxy cores tell apps what happened
 * through it and never build tokens themselves.
 */
export class AppPort {
  constructor(private readonly clock: Clock, private readonly local: LocalAddress) {}

  /** `sip|network|...`: a request or response from the network, in a transaction (and dialog) the app knows by id. */
  networkMessage(app: AppConnection, msg: SipMessage, flow: Flow, txnId: string, dialogId: string): void {
    const raw = serializeSipMessage(msg);
    app.send(networkSipTokens(this.meta(raw, flow), txnId, dialogId, this.local.host(flow), this.local.port(flow)), raw.toString('utf8'));
  }

  /** `response|rid|OK|application|...`: the app's request went out as `data`; the app knows it as `txnId` from now on. */
  requestSent(app: AppConnection, rid: string, data: Buffer, flow: Flow, txnId: string): void {
    app.respond(rid, requestSentTokens(this.meta(data, flow), txnId), data.toString('utf8'));
  }

  /** `response|rid|OK|application|...`: the app's response went out as `data` (with the dialog it created, if any). */
  responseSent(app: AppConnection, rid: string, data: Buffer, flow: Flow, txnId: string, dialogId: string): void {
    app.respond(rid, responseSentTokens(this.meta(data, flow), txnId, dialogId), data.toString('utf8'));
  }

  /** `sip|application|...|unsolicited|dialogId`: a request the engine sent by itself in the app's dialog (a BYE). */
  unsolicited(app: AppConnection, data: Buffer, flow: Flow, dialogId: string): void {
    app.send(unsolicitedTokens(this.meta(data, flow), dialogId), data.toString('utf8'));
  }

  /** `response|rid|NOK|reason`: the app's message was refused (the reason made safe for one token). */
  refuse(app: AppConnection, rid: string, reason: string): void {
    app.respond(rid, ['NOK', reason.replace(/[|\r\n]/g, ' ')]);
  }

  /** Any other `response|rid|...` answer (the proxy core's answers to `proxy`). */
  reply(app: AppConnection, rid: string, tokens: string[], sip?: string): void {
    app.respond(rid, tokens, sip);
  }

  private meta(data: Buffer, flow: Flow): WireMeta {
    return { bytes: data.length, flow, time: new Date(this.clock.now()).toISOString().slice(11, 23) };
  }
}
