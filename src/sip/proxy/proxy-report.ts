import type { AppConnection } from '../control/app-connection';
import type { SipResponse } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { Flow } from '../transport/flow';
import type { AppPort } from '../engine/app-port';

/**
 * The answers to an app's `proxy` message, as drachtio-srf's Request#proxy reads them: every final
 * response a target sent, as `OK|network|bytes|proto|addr|port|time|||continue` + the message
 * (srf keeps the request pending while `continue` is there), then `OK|done` once; or `NOK|reason`.
 */
export class ProxyReport {
  private finished = false;

  constructor(private readonly appPort: AppPort, private readonly app: AppConnection, private readonly rid: string,
    private readonly now: () => number, private readonly fullResponse: boolean) {}

  get done(): boolean {
    return this.finished;
  }

  /** A final response from a target (only with `fullResponse`, which srf always asks for). */
  response(res: SipResponse, from: Flow): void {
    if (this.finished || !this.fullResponse) return;
    const data = serializeSipMessage(res);
    const time = new Date(this.now()).toISOString().slice(11, 23);
    this.appPort.reply(this.app, this.rid, ['OK', 'network', String(data.length), from.protocol, from.remoteAddress, String(from.remotePort),
      time, '', '', 'continue'], data.toString('utf8'));
  }

  /** The proxy operation is over (srf resolves `proxyRequest`). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.appPort.reply(this.app, this.rid, ['OK', 'done']);
  }

  /** The proxy operation could not start (srf rejects `proxyRequest` with this reason). */
  fail(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.appPort.reply(this.app, this.rid, ['NOK', reason.replace(/[|\r\n]/g, ' ')]);
  }
}
