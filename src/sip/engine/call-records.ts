import type { CdrSender } from '../control/cdr-sender';
import { type Dialog, makeDialogId } from '../dialog/dialog';
import { tagOf } from '../message/name-addr';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { ServerInviteTransaction } from '../transaction/server-invite-transaction';
import type { DialogLifetime } from './dialog-lifetime';

/** calls answered and not yet ended, at most (a bound against a dialog that never came to be after its start record) */
const MAX_STARTED = 100_000;

/**
 * When ferry sip writes call detail records, as drachtio-server does, for every INVITE that starts a call
 * (not a re-INVITE), each leg on its own (a B2BUA call has two):
 * - a network INVITE: `attempt` (network, the INVITE) when it arrives; then `start` (application, `uas`, the
 *   2xx) or `stop` (application, `call-rejected`, the final response — the app's or ferry sip's own, e.g. a
 *   503), or `stop` (network, `call-canceled`, the INVITE) when the caller cancels it;
 * - an app's INVITE: `attempt` (application, the INVITE as sent); then `start` (network, `uac`, the 2xx) or
 *   `stop` (network, `call-canceled` for a 487 else `call-rejected`, the final response);
 * - an answered call: `stop` (network, `normal-release`, the BYE) when the peer hangs up,
 *   (application, `normal-release`, the BYE) when an app does, (application, `system-initiated-termination`,
 *   the BYE) when ferry sip ends it itself (no ACK, orphan deadline, stop).
 * A proxied INVITE gets its `attempt` and its upstream `start` (role `proxy-uas`) or `stop` only.
 */
export class CallRecords {
  /** dialog ids of answered calls whose stop record is still to come */
  private readonly started = new Set<string>();
  private readonly proxied = new WeakSet<ServerInviteTransaction>();

  constructor(private readonly sender: CdrSender, dialogs: DialogLifetime) {
    dialogs.on('ended', (d) => this.started.delete(d.id));
  }

  /** A new INVITE from the network (no To tag) got its server transaction. */
  networkInvite(req: SipRequest, txn: ServerInviteTransaction): void {
    this.sender.send('attempt', 'network', undefined, () => text(req));
    txn.onFinal = (res) => this.networkInviteAnswered(req, txn, res);
  }

  /** The app proxies the network INVITE of `txn`: its upstream answer is a proxy's. */
  proxying(txn: ServerInviteTransaction): void {
    this.proxied.add(txn);
  }

  /** The caller cancelled the network INVITE of `txn` before its final response. */
  networkInviteCancelled(txn: ServerInviteTransaction): void {
    if (!txn.onFinal) return;
    txn.onFinal = undefined;
    this.sender.send('stop', 'network', 'call-canceled', () => text(txn.request));
  }

  private networkInviteAnswered(req: SipRequest, txn: ServerInviteTransaction, res: SipResponse): void {
    if (res.status >= 300) {
      this.sender.send('stop', 'application', 'call-rejected', () => text(res));
      return;
    }
    const proxied = this.proxied.has(txn);
    if (!proxied) this.markStarted(makeDialogId(callIdOf(req), tagOf(req.headers.get('From')) ?? ''));
    this.sender.send('start', 'application', proxied ? 'proxy-uas' : 'uas', () => text(res));
  }

  /** An app's new INVITE went out as `data`. */
  appInvite(data: Buffer): void {
    this.sender.send('attempt', 'application', undefined, () => data.toString('utf8'));
  }

  /** The final response to an app's new INVITE (from the network, or the stack's own 408/503). */
  appInviteAnswered(req: SipRequest, res: SipResponse): void {
    if (res.status >= 300) {
      this.sender.send('stop', 'network', res.status === 487 ? 'call-canceled' : 'call-rejected', () => text(res));
      return;
    }
    this.markStarted(makeDialogId(callIdOf(req), tagOf(req.headers.get('From')) ?? ''));
    this.sender.send('start', 'network', 'uac', () => text(res));
  }

  /** The peer's BYE in `dialog` arrived. */
  networkBye(dialog: Dialog, bye: SipRequest): void {
    if (this.started.delete(dialog.id)) this.sender.send('stop', 'network', 'normal-release', () => text(bye));
  }

  /** An app's BYE in `dialog` went out as `data`. */
  appBye(dialog: Dialog, data: Buffer): void {
    if (this.started.delete(dialog.id)) this.sender.send('stop', 'application', 'normal-release', () => data.toString('utf8'));
  }

  /** ferry sip ends `dialog` with its own BYE (no ACK, orphan deadline, app gone, stop). */
  engineBye(dialog: Dialog, bye: SipRequest): void {
    if (this.started.delete(dialog.id)) this.sender.send('stop', 'application', 'system-initiated-termination', () => text(bye));
  }

  /** answered calls whose stop record is still to come (tests, dumps) */
  get openCalls(): number {
    return this.started.size;
  }

  private markStarted(dialogId: string): void {
    if (this.started.size >= MAX_STARTED) {
      const oldest = this.started.values().next().value;
      if (oldest !== undefined) this.started.delete(oldest);
    }
    this.started.add(dialogId);
  }
}

function text(msg: SipRequest | SipResponse): string {
  return serializeSipMessage(msg).toString('utf8');
}
