import type Srf from 'drachtio-srf';
import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { Call } from '../calls/call';
import { CallRegistry } from '../calls/call-registry';
import { claimDialog, unpinSrfDialog } from './dialog-claim';

/** how long one re-claim may take before it is given up (it is tried again on the next reconnection) */
const RECLAIM_WAIT_MS = 5000;
/**
 * CSeq margin of a re-claim over the stored CSeq: the record's CSeq is written at answer time, and
 * session refreshes sent since then were numbered by ferry sip. A rebuilt dialog must continue above
 * them (RFC 3261 only asks for an increasing number).
 */
const RECLAIM_CSEQ_MARGIN = 1000;

export interface DialogReclaimerDeps {
  srf: Srf;
  registry: CallRegistry;
  clock: Clock;
  log: Logger;
}

/**
 * Each time the gateway's control connection to ferry sip comes back (drachtio-srf reconnects by
 * itself), claims both dialogs of every live call this gateway drives. ferry sip treats a dropped app's
 * dialogs as orphans and ends them at FERRY_SIP_ORPHAN_DIALOG_MS unless claimed; and a ferry sip that
 * restarted knows no dialog at all: the claim carries the dialog's identifiers, so it rebuilds them
 * (docs/sip-control-extension.md §6). Nothing goes on the wire. A dialog ferry sip answers 481 for
 * was ended by it while we were away: the call ends, and only the party still there gets a BYE.
 */
export class DialogReclaimer {
  private connectedOnce = false;
  private lostAt: number | undefined;
  reclaims = 0;

  constructor(private readonly d: DialogReclaimerDeps) {}

  /** call once the first control connection is up: every later 'connect' is a reconnection */
  start(): void {
    this.connectedOnce = true;
    const srf = this.d.srf as unknown as { on(event: string, cb: (...args: unknown[]) => void): void };
    srf.on('close', () => {
      if (this.lostAt !== undefined) return;
      this.lostAt = this.d.clock.now();
      // a warning only when calls depend on it (with none, e.g. while ferry start stops everything, it is news, not trouble)
      const liveCalls = this.d.registry.size;
      this.d.log[liveCalls > 0 ? 'warn' : 'info']('sip control connection lost; live calls keep their media', { liveCalls });
    });
    // drachtio-srf's agent announces the connection one event-loop turn before srf does: by then ferry
    // sip may already hand over requests it held for our dialogs (a party's BYE), and the call's srf
    // Dialogs must send the BYE to the other party over the new connection, not the dead one
    const app = (this.d.srf as unknown as { app?: { on(event: string, cb: (...args: unknown[]) => void): void } }).app;
    app?.on('connect', (err: unknown) => {
      if (!err && this.connectedOnce) this.unpinAll();
    });
    srf.on('connect', (err: unknown) => {
      if (err || !this.connectedOnce) return;
      const downMs = this.lostAt === undefined ? undefined : this.d.clock.now() - this.lostAt;
      this.lostAt = undefined;
      this.d.log.info('sip control connection back; claiming the live calls\' dialogs', { downMs, liveCalls: this.d.registry.size });
      void this.reclaimAll();
    });
  }

  /** every live call's srf Dialogs send over the current control connection from now on */
  private unpinAll(): void {
    for (const call of this.d.registry.all()) {
      for (const side of ['caller', 'callee'] as const) {
        const id = call.record[side].dialog?.dialogId;
        if (id) unpinSrfDialog(this.d.srf, id);
      }
    }
  }

  async reclaimAll(): Promise<void> {
    this.reclaims++;
    const calls = this.d.registry.all().filter((c) => !c.isEnding && c.state === 'answered');
    await Promise.all(calls.map((c) => this.reclaim(c)));
  }

  private async reclaim(call: Call): Promise<void> {
    const sides = (['caller', 'callee'] as const).filter((side) => call.record[side].dialog);
    const statuses = await Promise.all(sides.map((side) => this.claim(call, side)));
    const gone = sides.filter((_, i) => statuses[i] === 481);
    if (statuses.every((s) => s !== undefined && s < 300)) {
      call.note('dialogs-reclaimed', 'after the sip control connection came back');
      await call.persist();
    }
    if (gone.length === 0 || call.isEnding) return;
    for (const side of gone) call.note('dialog-gone', `${side}: ferry sip answered our re-claim 481`);
    await call.end('session-expired', gone.length === 1 ? gone[0]! : 'gateway');
  }

  private async claim(call: Call, side: 'caller' | 'callee'): Promise<number | undefined> {
    const snapshot = call.record[side].dialog!;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = this.d.clock.setTimeout(() => r('timeout'), RECLAIM_WAIT_MS);
    });
    try {
      const status = await Promise.race([claimDialog(this.d.srf, snapshot, snapshot.localCseq + RECLAIM_CSEQ_MARGIN), timeout]);
      if (status === 'timeout') {
        call.note('reclaim-unanswered', `${side} dialog ${snapshot.dialogId}`);
        return undefined;
      }
      if (status >= 300 && status !== 481) call.note('reclaim-refused', `${side}: ${status}`);
      return status;
    } catch (err) {
      call.note('reclaim-failed', `${side}: ${(err as Error).message}`);
      return undefined;
    } finally {
      timer?.cancel();
    }
  }
}
