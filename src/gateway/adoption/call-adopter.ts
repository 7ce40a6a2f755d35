import type Srf from 'drachtio-srf';
import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { Call } from '../calls/call';
import { CallEventBus } from '../events/call-events';
import { CallRegistry } from '../calls/call-registry';
import { CallMedia } from '../kurento/call-media';
import { MediaConnection } from '../kurento/media-connection';
import { GatewayMetrics } from '../http/metrics';
import { CallRecord } from '../state/call-record';
import { StateStore } from '../state/state-store';
import { StoreUnavailableError } from '../state/store-unavailable-error';
import { AdoptedDialog } from './adopted-dialog';
import { AdoptedDialogs } from './adopted-dialogs';
import { DialogRequest, HeldInDialogRequests } from './held-in-dialog-requests';
import { InDialogResponse } from '../calls/dialog-like';

/** how long an adopted dialog's claim in ferry sip may take before it is logged as unanswered */
const CLAIM_WAIT_MS = 5000;

export interface CallAdopterDeps {
  store: StateStore;
  media: MediaConnection;
  srf: Srf;
  registry: CallRegistry;
  clock: Clock;
  log: Logger;
  instanceId: string;
  leaseMs: number;
  intervalMs: number;
  endedRecordTtlMs: number;
  metrics: GatewayMetrics;
  /** the adopting gateway's event bus: an adopted call's later events are published from here */
  events?: CallEventBus;
}

/**
 * Takes over calls whose owning gateway's lease expired (at start and then periodically):
 * - answered calls whose media objects still exist: re-attach to them by id
 *   (kurento-client getMediaobjectById), subscribe to their events, rebuild both dialogs from the
 *   record, and from then on handle BYE / re-INVITE / INFO / UPDATE for them;
 * - calls whose media is gone (the media server released them while no gateway was alive), calls
 *   caught half-way through ending, and calls never answered: finish them (BYE whoever is still
 *   there, release what is left, mark the record ended with a TTL backstop).
 * A claim in the store (SET NX) makes sure only one gateway adopts a given call. A gateway restarted
 * with its previous instance id adopts its own calls in its first scan, without waiting for a lease.
 * In-dialog requests for unknown dialogs that arrive before the first scan has finished, or that
 * belong to a call still waiting for its dead owner's lease, are held (HeldInDialogRequests) and
 * delivered to the call once it is adopted. Every adopted
 * dialog is claimed in ferry sip, so the engine's orphan-dialog timer never ends an adopted call.
 */
export class CallAdopter {
  readonly dialogs = new AdoptedDialogs();
  private readonly held: HeldInDialogRequests;
  private timer: TimerHandle | undefined;
  private scanning = false;
  /** calls being adopted right now: their dialogs take requests only once the call is connected to them */
  private readonly adopting = new Set<string>();

  constructor(private readonly d: CallAdopterDeps) {
    // a request of a dead owner's call waits at most for that owner's lease to run out and one scan
    const holdMs = d.leaseMs + d.intervalMs + 1000;
    this.held = new HeldInDialogRequests((req, res) => this.dialogs.dispatch(req, res), (req) => this.awaitsAdoption(req), holdMs, d.clock, d.log);
  }

  /** a live call in the store, not driven here, has a dialog with this request's Call-ID */
  private async awaitsAdoption(req: DialogRequest): Promise<boolean> {
    const callId = req.get('Call-ID');
    if (!callId) return false;
    const calls = await this.d.store.listCalls();
    return calls.some(
      (rec) =>
        rec.state !== 'ended' &&
        (!this.d.registry.has(rec.id) || this.adopting.has(rec.id)) &&
        (rec.caller.dialog?.callId === callId || rec.callee.dialog?.callId === callId),
    );
  }

  /** an in-dialog request srf has no Dialog for (a dialog adopted, or to be adopted, from a dead gateway, or unknown) */
  offer(req: DialogRequest, res: InDialogResponse): void {
    this.held.offer(req, res);
  }

  async start(): Promise<void> {
    try {
      await this.scan();
    } finally {
      this.held.open();
    }
    this.timer = this.d.clock.setInterval(() => void this.scan(), this.d.intervalMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.held.close();
  }

  async scan(): Promise<number> {
    if (this.scanning) return 0;
    this.scanning = true;
    let adopted = 0;
    try {
      const calls = await this.d.store.listCalls();
      for (const rec of calls) {
        if (rec.state === 'ended' || this.d.registry.has(rec.id)) continue;
        // a record owned by our own id that we do not drive is from our previous life (restart)
        if (rec.owner !== this.d.instanceId && (await this.d.store.leaseAlive(rec.owner))) continue;
        if (!(await this.d.store.claimAdoption(rec.id, this.d.instanceId, this.d.leaseMs))) continue;
        this.adopting.add(rec.id);
        try {
          await this.adopt(rec);
          adopted++;
        } catch (err) {
          this.d.log.error('adoption failed', { callId: rec.id, err: (err as Error).message });
        } finally {
          this.adopting.delete(rec.id);
        }
      }
    } catch (err) {
      // a store outage is logged once by the store itself, not once per scan
      if (!(err instanceof StoreUnavailableError)) this.d.log.warn('adoption scan failed', { err: (err as Error).message });
    } finally {
      this.scanning = false;
    }
    return adopted;
  }

  private async adopt(rec: CallRecord): Promise<void> {
    const previous = rec.owner;
    rec.owner = this.d.instanceId;
    const call = new Call(rec, { store: this.d.store, clock: this.d.clock, log: this.d.log, endedRecordTtlMs: this.d.endedRecordTtlMs, events: this.d.events });
    call.note('adopted', `from ${previous}${previous === this.d.instanceId ? ' (this instance, restarted)' : ' (lease expired)'}, state ${rec.state}`);
    this.d.registry.add(call);
    this.d.metrics.callsAdopted++;
    call.once('ended', (r) => this.d.metrics.callEnded(r));

    const dialogs: { caller?: AdoptedDialog; callee?: AdoptedDialog } = {};
    for (const side of ['caller', 'callee'] as const) {
      const leg = rec[side];
      if (!leg.dialog) continue;
      dialogs[side] = new AdoptedDialog(this.d.srf, leg.dialog, { local: leg.localSdp ?? '', remote: leg.remoteSdp ?? '' });
    }
    // the dialogs take the peers' requests only once the call listens to them (a BYE handed to a
    // dialog before that would be answered and lost); until then such requests are held
    const listen = (): void => {
      for (const dlg of Object.values(dialogs)) if (dlg) this.dialogs.add(dlg);
      this.held.deliver();
    };

    const { pipelineId, callerEndpointId, calleeEndpointId } = rec.media;
    let media: CallMedia | undefined;
    if (pipelineId && callerEndpointId && calleeEndpointId) {
      try {
        media = await CallMedia.attach(this.d.media, { pipelineId, callerEndpointId, calleeEndpointId, mediaUrl: rec.media.mediaUrl }, { caller: rec.caller.kind, callee: rec.callee.kind }, call.log, this.d.clock);
        call.attachMedia(media);
        call.note('media-reattached', pipelineId);
      } catch (err) {
        call.note('media-gone', `${pipelineId}: ${(err as Error).message}`);
      }
    }

    if (rec.state === 'answered' && media && dialogs.caller && dialogs.callee) {
      call.connect(dialogs.caller, dialogs.callee, { adopted: true });
      // and requests ferry sip held for this call while no gateway was connected (a party's BYE, say)
      listen();
      await call.persist();
      this.d.log.info('call adopted', { callId: rec.id, from: previous });
      if (!call.isEnding) {
        this.claimDialogs(call, { caller: dialogs.caller, callee: dialogs.callee }).catch((err: Error) => call.log.error('claiming the dialogs failed', { err: err.message }));
      }
      return;
    }
    // finish: the call ended (or never got answered) while no gateway was alive. A dialog ferry sip
    // no longer knows was ended by it (BYE with a Reason) while no gateway was there: no second BYE
    const existing = (['caller', 'callee'] as const).filter((side) => dialogs[side]);
    const statuses = await Promise.all(existing.map((side) => this.claim(call, side, dialogs[side]!)));
    existing.forEach((side, i) => {
      if (statuses[i] !== 481) return;
      dialogs[side]!.connected = false;
      call.note('dialog-gone', `${side}: ferry sip answered our claim 481`);
    });
    call.connect(dialogs.caller ?? new DeadDialog(), dialogs.callee ?? new DeadDialog(), { adopted: true });
    // a party's held BYE ends it as that party's hang-up (only the other one gets our BYE)
    listen();
    const reason = rec.reason ?? (rec.state === 'answered' ? 'session-expired' : 'failed');
    await call.end(reason, 'gateway');
    for (const dlg of Object.values(dialogs)) if (dlg) this.dialogs.remove(dlg);
  }

  /**
   * Claims both dialogs of an adopted call in ferry sip. A 481 means the engine no longer has that
   * dialog (its party is gone, e.g. the engine ended it as an orphan while no gateway was alive): the
   * call ends, and only a party whose dialog is still there gets a BYE.
   */
  private async claimDialogs(call: Call, dialogs: { caller: AdoptedDialog; callee: AdoptedDialog }): Promise<void> {
    const sides = ['caller', 'callee'] as const;
    const statuses = await Promise.all(sides.map((side) => this.claim(call, side, dialogs[side])));
    const gone = sides.filter((_, i) => statuses[i] === 481);
    if (gone.length === 0 || call.isEnding) return;
    for (const side of gone) {
      dialogs[side].connected = false;
      call.note('dialog-gone', `${side}: ferry sip answered our claim 481`);
    }
    await call.end('session-expired', gone.length === 1 ? gone[0]! : 'gateway');
  }

  /** one claim, bounded: resolves with ferry sip's status, or undefined (unanswered, failed) */
  private async claim(call: Call, side: 'caller' | 'callee', dlg: AdoptedDialog): Promise<number | undefined> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = this.d.clock.setTimeout(() => r('timeout'), CLAIM_WAIT_MS);
    });
    try {
      const status = await Promise.race([dlg.claim(), timeout]);
      if (status === 'timeout') {
        call.note('claim-unanswered', `${side} dialog ${dlg.id}`);
        return undefined;
      }
      if (status >= 300 && status !== 481) call.note('claim-refused', `${side}: ${status}`);
      else if (status < 300) this.d.log.info('dialog claimed', { callId: call.record.id, side, dialogId: dlg.id });
      return status;
    } catch (err) {
      call.note('claim-failed', `${side}: ${(err as Error).message}`);
      return undefined;
    } finally {
      timer?.cancel();
    }
  }
}

/** stands in for a leg that never had a dialog (the call was not answered) */
class DeadDialog extends AdoptedDialog {
  constructor() {
    super(undefined as never, { dialogId: '', callId: '', localTag: '', remoteTag: '', localCseq: 0, remoteTarget: '', routeSet: [], localUri: '', remoteUri: '', role: 'uas' }, { local: '', remote: '' });
    this.connected = false;
  }
}
