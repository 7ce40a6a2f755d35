import { EventEmitter } from 'node:events';
import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { CallMedia, Side } from '../kurento/call-media';
import { CallLeg, CallRecord, CallState } from '../state/call-record';
import { StateStore } from '../state/state-store';
import { CallEventBus, CallEventType } from '../events/call-events';
import { callEndedData, callParties } from '../events/call-event-data';
import { DialogLike, InDialogRequest, InDialogResponse } from './dialog-like';
import { snapshotDialog } from './dialog-snapshot';
import { EndReason } from './end-reason';
import { answerDirection, bumpVersion, direction, withDirection } from './sdp-rewriter';
import { connectionAddress, countSdpRejection, LoopbackMediaRule, sdpWarning, validateSdp } from './sdp-validator';

/** how long the release waits for a BYE to be answered (the BYE is already on the wire; a dead peer must not hold the release) */
const BYE_WAIT_MS = 500;

/**
 * Entries of one kind a call's timeline keeps. A party can send INFO, re-INVITEs or refused SDP in a loop
 * (in-dialog requests are not held to the per-source rate); each used to add an entry to the record (in the
 * state store, rewritten whole on every change) and a log line, without bound. Past this, an entry of that
 * kind is neither kept nor logged; one `timeline-limited` entry says so (docs/security.md, "Inside a call").
 */
export const MAX_TIMELINE_ENTRIES_PER_KIND = 50;

/**
 * Re-offers (re-INVITEs with SDP) one party may make in a call: REOFFER_BURST at once, then one per
 * REOFFER_REFILL_MS. Each may be carried to the other party as a re-INVITE and published as a call event
 * (call.held, call.resumed: webhooks); past this a re-offer is answered 503 with Retry-After and nothing
 * is carried or published (docs/security.md, "Inside a call"). A person holding and resuming, a transfer,
 * a session refresh (every 90 s at the shortest, RFC 4028; offerless ones are not counted) stay far below.
 */
export const REOFFER_BURST = 10;
export const REOFFER_REFILL_MS = 5_000;

/** End reasons decided by silence rather than by an explicit signal: the only ones that can be false. */
const SILENCE_REASONS: ReadonlySet<EndReason> = new Set<EndReason>(['media-timeout', 'hold-timeout', 'ice-failed']);

export interface CallEvents {
  /** end(reason) began (the first reason); the record is not written yet */
  ending: [reason: EndReason];
  ended: [record: CallRecord];
}

export interface CallDeps {
  store: StateStore;
  clock: Clock;
  log: Logger;
  endedRecordTtlMs: number;
  /** loopback media targets in re-offers (FERRY_ALLOW_LOOPBACK_MEDIA); default from-loopback */
  loopbackMedia?: LoopbackMediaRule;
  /** the gateway's call event bus: ringing, answered, held, resumed and ended are published on it */
  events?: CallEventBus;
}

/**
 * One bridged call: two SIP dialogs and one media pipeline. The record in the state store is
 * written on every change. `end(reason)` is the only exit; it runs once (the first reason wins,
 * later ones are timeline evidence) and follows docs/lifecycle.md, rule 4: record the end, BYE whoever
 * is still there, release the media, keep the record only as a TTL backstop.
 */
export class Call extends EventEmitter<CallEvents> {
  readonly record: CallRecord;
  media: CallMedia | undefined;
  private dialogs: { caller?: DialogLike; callee?: DialogLike } = {};
  /** a REFER from one party goes here (the gateway's transfer core sets it when the call is registered); without it: 501 */
  referHandler: ((call: Call, side: Side, req: InDialogRequest, res: InDialogResponse) => void) | undefined;
  /** how to stop watching each party's dialog (a transfer hands a leg to another dialog) */
  private unwatch: { caller?: () => void; callee?: () => void } = {};
  /** while set, a BYE from this party does not end the call: it is being transferred away (the transfer decides) */
  private leaving: { side: Side; gone: boolean } | undefined;
  private ending: Promise<void> | undefined;
  private persistChain: Promise<void> = Promise.resolve();
  private timers: TimerHandle[] = [];
  /** the party whose media leg went silent, when the media server ended the call on silence */
  private silentSide: Side | undefined;
  /** a re-offer being handled (answered, then carried to the other party): settles when it is done; one at a time */
  private reofferBusy: Promise<void> | undefined;
  /** the party whose re-offer is being handled (its answer is carried to the other party) */
  private reofferSide: Side | undefined;
  /** a re-offer waits for the one being handled (one may wait; another meanwhile gets 491) */
  private reofferWaiting = false;
  /** each party's re-offer bucket (REOFFER_BURST, one back per REOFFER_REFILL_MS) */
  private readonly reofferTokens: Record<Side, { tokens: number; at: number }>;
  readonly log: Logger;

  constructor(record: CallRecord, private readonly deps: CallDeps) {
    super();
    this.record = record;
    this.log = deps.log.child({ callId: record.id });
    const now = deps.clock.now();
    this.reofferTokens = { caller: { tokens: REOFFER_BURST, at: now }, callee: { tokens: REOFFER_BURST, at: now } };
  }

  get state(): CallState {
    return this.record.state;
  }

  get isEnding(): boolean {
    return this.ending !== undefined;
  }

  note(event: string, detail?: string): void {
    const timeline = this.record.timeline;
    let kept = 0;
    for (const e of timeline) if (e.event === event) kept++;
    if (kept >= MAX_TIMELINE_ENTRIES_PER_KIND) {
      if (kept === MAX_TIMELINE_ENTRIES_PER_KIND && !timeline.some((e) => e.event === 'timeline-limited' && e.detail === event)) {
        timeline.push({ t: this.deps.clock.now(), event: 'timeline-limited', detail: event });
        this.log.info('timeline-limited', { detail: event, limit: MAX_TIMELINE_ENTRIES_PER_KIND });
      }
      return;
    }
    timeline.push({ t: this.deps.clock.now(), event, ...(detail ? { detail } : {}) });
    this.log.info(event, detail ? { detail } : {});
  }

  setState(state: CallState, event?: string, detail?: string): void {
    const previous = this.record.state;
    this.record.state = state;
    if (event) this.note(event, detail);
    if (state === 'ringing' && previous !== 'ringing') this.publish('call.ringing', { parties: callParties(this.record) });
  }

  /** publishes one of this call's events on the gateway's bus (with the call's id and tags) */
  publish(type: CallEventType, data: Record<string, unknown>): void {
    this.deps.events?.publish({ type, callId: this.record.id, ...(this.record.tags ? { tags: { ...this.record.tags } } : {}), data });
  }

  /** writes the record (serialised, so writes never reorder) */
  persist(ttlMs?: number): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify(this.record)) as CallRecord;
    this.persistChain = this.persistChain
      .then(() => this.deps.store.putCall(snapshot, ttlMs))
      .catch((err: Error) => {
        this.log.error('state store write failed', { err: err.message });
      });
    return this.persistChain;
  }

  attachMedia(media: CallMedia): void {
    this.media = media;
    this.record.media = { ...this.record.media, ...media.ids };
    media.on('leaving-ended', (reason, side, detail) => {
      if (this.leaving?.side === side) this.leaving.gone = true;
      this.note('media-ended', `${side} (being transferred away: the call goes on): ${detail}`);
    });
    media.on('ended', (reason, side, detail) => {
      this.note('media-ended', `${side}: ${detail}`);
      if (SILENCE_REASONS.has(reason) && !this.ending) this.silentSide = side;
      void this.end(reason, 'media');
    });
  }

  addTimer(t: TimerHandle): void {
    this.timers.push(t);
  }

  /** a party's dialog, once it is up */
  dialog(side: Side): DialogLike | undefined {
    return this.dialogs[side];
  }

  /**
   * A dialog that is up before the call is bridged (an originated call's first party, while the
   * second rings): end() hangs it up too. connect() later takes it over.
   */
  holdDialog(side: Side, d: DialogLike): void {
    this.dialogs[side] = d;
  }

  /**
   * both dialogs are up: watch them for BYE, re-INVITE, INFO, UPDATE. `roles`: our side of each
   * dialog (default: the caller called us, we called the callee; an originated call placed both)
   */
  connect(caller: DialogLike, callee: DialogLike, opts: { adopted?: boolean; roles?: { caller: 'uas' | 'uac'; callee: 'uas' | 'uac' } } = {}): void {
    this.dialogs = { caller, callee };
    if (!opts.adopted) {
      this.record.caller.dialog = snapshotDialog(caller as never, opts.roles?.caller ?? 'uas');
      this.record.callee.dialog = snapshotDialog(callee as never, opts.roles?.callee ?? 'uac');
      this.record.answeredAt = this.deps.clock.now();
      this.setState('answered', 'answered');
      this.publish('call.answered', { parties: callParties(this.record) });
    }
    this.record.caller.localSdp = caller.local.sdp;
    this.record.caller.remoteSdp = caller.remote.sdp;
    this.record.callee.localSdp = callee.local.sdp;
    this.record.callee.remoteSdp = callee.remote.sdp;
    this.watch('caller', caller);
    this.watch('callee', callee);
    void this.persist();
  }

  /** listens to one party's dialog for BYE, re-INVITE, INFO, UPDATE, REFER */
  private watch(side: Side, d: DialogLike): void {
    this.unwatch[side]?.();
    const onDestroy = (): void => {
      if (this.leaving?.side === side) {
        this.leaving.gone = true;
        this.note('bye', `from ${side} (being transferred away: the call goes on)`);
        return;
      }
      this.note('bye', `from ${side}`);
      void this.end('sip-bye', side);
    };
    const onModify = (req: InDialogRequest, res: InDialogResponse): void => void this.onReinvite(side, req, res);
    const onInfo = (req: InDialogRequest, res: InDialogResponse): void => void this.onInfo(side, req, res);
    const onUpdate = (req: InDialogRequest, res: InDialogResponse): void => this.onUpdate(side, req, res);
    const onRefer = (req: InDialogRequest, res: InDialogResponse): void => {
      if (this.referHandler && !this.ending) this.referHandler(this, side, req, res);
      else res.send(this.ending ? 481 : 501);
    };
    d.on('destroy', onDestroy);
    d.on('modify', onModify);
    d.on('info', onInfo);
    d.on('update', onUpdate);
    d.on('refer', onRefer);
    this.unwatch[side] = () => {
      d.removeListener('destroy', onDestroy);
      d.removeListener('modify', onModify);
      d.removeListener('info', onInfo);
      d.removeListener('update', onUpdate);
      d.removeListener('refer', onRefer);
    };
  }

  /**
   * Transfer: while `side` is set, that party's BYE does not end the call (`leftDuringTransfer` tells
   * whether it came); undefined clears it.
   */
  setLeaving(side: Side | undefined): void {
    this.leaving = side ? { side, gone: false } : undefined;
    if (this.media) this.media.leavingSide = side;
  }

  get leftDuringTransfer(): boolean {
    return this.leaving?.gone ?? false;
  }

  /**
   * Transfer: `side` is now another party on another dialog. The old dialog is no longer watched nor
   * hung up by end() (it is returned; the transfer hangs it up); the record's leg becomes `leg`.
   */
  replaceLeg(side: Side, d: DialogLike, leg: CallLeg): DialogLike | undefined {
    const old = this.detachLeg(side);
    this.dialogs[side] = d;
    this.record[side] = leg;
    leg.localSdp = d.local.sdp;
    leg.remoteSdp = d.remote.sdp;
    this.watch(side, d);
    return old;
  }

  /** Transfer: the party's dialog leaves this call (not watched, not hung up by end()); it is returned. */
  detachLeg(side: Side): DialogLike | undefined {
    this.unwatch[side]?.();
    this.unwatch[side] = undefined;
    const old = this.dialogs[side];
    this.dialogs[side] = undefined;
    return old;
  }

  private other(side: Side): Side {
    return side === 'caller' ? 'callee' : 'caller';
  }

  /** re-INVITE from one party: carry hold/resume across and update the media endpoint */
  private async onReinvite(side: Side, req: InDialogRequest, res: InDialogResponse): Promise<void> {
    if (!this.dialogs[side] || !this.dialogs[this.other(side)] || this.ending) {
      res.send(481);
      return;
    }
    if (!this.acceptableSdp(side, req, res)) return;
    const offer = req.body;
    // a re-offer (not an offerless session refresh) is held to the party's rate and waits its turn
    const done = offer ? await this.reofferTurn(side, res) : () => {};
    if (!done) return;
    const from = this.dialogs[side];
    const to = this.dialogs[this.other(side)];
    try {
      if (!from || !to || this.ending) {
        res.send(481);
        return;
      }
      if (!offer) {
        // offerless re-INVITE (session refresh): answer with what we have
        res.send(200, { body: from.local.sdp, headers: { 'Content-Type': 'application/sdp' } });
        return;
      }
      const dir = direction(offer);
      const legRecord = side === 'caller' ? this.record.caller : this.record.callee;
      const changed = legRecord.direction !== dir && !(legRecord.direction === undefined && dir === 'sendrecv');
      legRecord.direction = dir;
      let answer = await this.media?.renegotiate(side, offer);
      if (!answer) answer = bumpVersion(withDirection(from.local.sdp, answerDirection(dir)));
      from.local.sdp = answer;
      legRecord.localSdp = answer;
      legRecord.remoteSdp = offer;
      res.send(200, { body: answer, headers: { 'Content-Type': 'application/sdp' } });
      void this.persist();
      if (changed) {
        this.note(dir === 'sendrecv' ? 'resume' : 'hold', `${side} sent a=${dir}`);
        this.publish(dir === 'sendrecv' ? 'call.resumed' : 'call.held', { by: side, direction: dir, parties: callParties(this.record) });
        const toOffer = bumpVersion(withDirection(to.local.sdp, dir));
        const theirAnswer = await this.modifyWithRetry(to, toOffer);
        to.local.sdp = toOffer;
        const otherRecord = side === 'caller' ? this.record.callee : this.record.caller;
        otherRecord.localSdp = toOffer;
        // an answer aiming media where no offer may is noted and not applied: the endpoint keeps what it had
        if (theirAnswer && this.acceptableAnswer(this.other(side), theirAnswer)) {
          otherRecord.direction = direction(theirAnswer);
          otherRecord.remoteSdp = theirAnswer;
          // tell the RTP endpoint what the phone now sends (hold switches its liveness to T_hold);
          // ferry media takes a second SDP on an RtpEndpoint as a re-INVITE, its answer is not needed
          if (otherRecord.kind === 'rtp') await this.media?.renegotiate(this.other(side), theirAnswer);
        }
        void this.persist();
      }
    } catch (err) {
      const e = err as { status?: number; message?: string };
      this.note('reinvite-failed', `${side}: ${e.status ?? ''} ${e.message ?? err}`.trim());
      try {
        res.send(488);
      } catch {
        /* already answered */
      }
    } finally {
      done();
    }
  }

  /**
   * `side`'s turn to have its re-offer handled, or undefined when it was answered here: 491 (RFC 3261 §14.1:
   * the sender retries after a random wait) when the other party's re-offer is being carried to this one
   * (its re-INVITE and ours cross: glare), or when one re-offer already waits; 503 with Retry-After past the
   * party's REOFFER_BURST. Otherwise it waits for the party's own re-offer being handled, if any (a quick hold
   * then resume is served in order). The turn ends with the function returned.
   */
  private async reofferTurn(side: Side, res: InDialogResponse): Promise<(() => void) | undefined> {
    if (this.reofferBusy && (this.reofferWaiting || this.reofferSide !== side)) {
      this.note('reinvite-491', `${side}: a re-offer from ${this.reofferSide} is in progress${this.reofferWaiting ? ' and one waits' : ''}`);
      res.send(491);
      return undefined;
    }
    const b = this.reofferTokens[side];
    const now = this.deps.clock.now();
    const refilled = Math.floor((now - b.at) / REOFFER_REFILL_MS);
    if (refilled > 0) {
      b.tokens = Math.min(REOFFER_BURST, b.tokens + refilled);
      b.at = b.tokens === REOFFER_BURST ? now : b.at + refilled * REOFFER_REFILL_MS;
    }
    if (b.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((b.at + REOFFER_REFILL_MS - now) / 1000));
      this.note('reinvite-refused', `${side}: more than ${REOFFER_BURST} re-offers, one per ${REOFFER_REFILL_MS / 1000} s`);
      res.send(503, { headers: { 'Retry-After': String(retryAfter) } });
      return undefined;
    }
    b.tokens--;
    if (this.reofferBusy) {
      this.reofferWaiting = true;
      while (this.reofferBusy) await this.reofferBusy;
      this.reofferWaiting = false;
    }
    let settle!: () => void;
    const busy = new Promise<void>((r) => { settle = r; });
    this.reofferBusy = busy;
    this.reofferSide = side;
    return () => {
      if (this.reofferBusy === busy) {
        this.reofferBusy = undefined;
        this.reofferSide = undefined;
      }
      settle();
    };
  }

  /** re-INVITE the other party; on 491 (glare, RFC 3261 14.1) wait a little and try again */
  private async modifyWithRetry(d: DialogLike, sdp: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await d.modify(sdp);
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status !== 491 || attempt >= 4 || this.ending) throw err;
        this.note('reinvite-glare', `491, retry ${attempt}`);
        await new Promise<void>((r) => this.deps.clock.setTimeout(r, 200 + Math.floor(Math.random() * 800)));
      }
    }
  }

  /** SIP INFO (e.g. application/dtmf-relay): relay to the other party */
  private async onInfo(side: Side, req: InDialogRequest, res: InDialogResponse): Promise<void> {
    const to = this.dialogs[this.other(side)];
    if (!to) {
      res.send(481);
      return;
    }
    try {
      const ct = req.get('Content-Type');
      const r = await to.request({ method: 'INFO', body: req.body, headers: ct ? { 'Content-Type': ct } : {} });
      res.send(r.status ?? 200);
      this.note('info', `${side} -> ${this.other(side)}${ct ? ` (${ct})` : ''}`);
    } catch {
      res.send(200);
    }
  }

  /**
   * Where a leg's SIP comes from, which every SDP of the leg is judged by: the address recorded when
   * the call was set up, else the request's own source, else (a record written before the address was
   * kept) the address of the party's earlier SDP.
   */
  private legSource(side: Side, requestSource?: string): string {
    const leg = side === 'caller' ? this.record.caller : this.record.callee;
    return leg.sipSource ?? requestSource ?? (leg.remoteSdp ? connectionAddress(leg.remoteSdp) : undefined) ?? '';
  }

  /**
   * A re-offer (re-INVITE, UPDATE) passes the same SDP checks as a new call; else 488 with a Warning
   * and nothing changes. The loopback rule judges it by the leg's SIP source, as the first offer was.
   */
  private acceptableSdp(side: Side, req: InDialogRequest, res: InDialogResponse): boolean {
    if (!req.body) return true;
    const source = this.legSource(side, req.source_address);
    const check = validateSdp(req.body, { source, loopbackMedia: this.deps.loopbackMedia ?? 'from-loopback' });
    if (check.ok) return true;
    countSdpRejection(check.problem);
    this.note('sdp-refused', `${side} ${req.method}: ${check.problem}`);
    res.send(488, { headers: { Warning: sdpWarning(check.detail) } });
    return false;
  }

  /** the other party's answer to our re-INVITE, held to the same rules (judged by the leg's SIP source) */
  private acceptableAnswer(side: Side, answer: string): boolean {
    const source = this.legSource(side);
    const check = validateSdp(answer, { source, loopbackMedia: this.deps.loopbackMedia ?? 'from-loopback' });
    if (check.ok) return true;
    countSdpRejection(check.problem);
    this.note('sdp-refused', `${side} answer: ${check.problem}`);
    return false;
  }

  /** UPDATE: JsSIP's session-timer refresh carries no SDP; answer it ourselves */
  private onUpdate(side: Side, req: InDialogRequest, res: InDialogResponse): void {
    if (!this.acceptableSdp(side, req, res)) return;
    const d = this.dialogs[side];
    const headers: Record<string, string> = {};
    if (req.has('Session-Expires')) headers['Session-Expires'] = `${req.get('Session-Expires')!.split(';')[0]};refresher=uac`;
    if (req.body && d) res.send(200, { body: d.local.sdp, headers: { ...headers, 'Content-Type': 'application/sdp' } });
    else res.send(200, { headers });
  }

  /**
   * Ends the call once: (a) record the end and reason, (b) BYE whoever is still there, (c, d) release
   * the media (the media server tells the peers: RTCP BYE, DTLS close), then keep the record ended
   * with a TTL backstop. `by` is the side that ended it, or 'media'/'gateway'.
   */
  end(reason: EndReason, by: Side | 'media' | 'gateway'): Promise<void> {
    if (this.ending) {
      this.note('end-signal-ignored', `${reason} from ${by} (already ending: ${this.record.reason})`);
      return this.ending;
    }
    this.ending = (async () => {
      this.emit('ending', reason);
      this.record.reason = reason;
      this.record.endedBy = by;
      this.setState('ending', 'ending', `${reason} (by ${by})`);
      await this.persist();
      for (const t of this.timers) t.cancel();
      this.timers = [];
      const byes: Promise<unknown>[] = [];
      for (const side of ['caller', 'callee'] as const) {
        const d = this.dialogs[side];
        if (d && d.connected && side !== by) {
          // a peer that never answers our BYE must not hold the release back
          let timer: TimerHandle | undefined;
          const timeout = new Promise<'timeout'>((r) => {
            timer = this.deps.clock.setTimeout(() => r('timeout'), BYE_WAIT_MS);
          });
          byes.push(
            Promise.race([d.destroy({ headers: { Reason: `SIP;cause=200;text="${reason}"` } }), timeout]).then(
              (r) => {
                this.note(r === 'timeout' ? 'bye-unanswered' : 'bye-sent', `to ${side}`);
                if (r !== 'timeout' && side === this.silentSide) {
                  // the party we judged gone answered at once: it was there all along
                  this.record.suspectedFalseEnd = true;
                  this.note('suspected-false-end', `${reason} on the ${side}'s leg, but the ${side} answered our BYE`);
                  this.log.warn('suspected false end', { reason, side });
                }
              },
              (err: Error) => this.note('bye-failed', `to ${side}: ${err?.message ?? err}`),
            ).finally(() => timer?.cancel()),
          );
        }
      }
      await Promise.all(byes);
      if (this.media) {
        await this.media.release();
        this.note('media-released');
      }
      this.record.endedAt = this.deps.clock.now();
      this.setState('ended', 'ended', reason);
      this.log.info('call ended', { reason, by, timeline: this.record.timeline.map((e) => e.event).join(',') });
      this.publish('call.ended', callEndedData(this.record));
      await this.persist(this.deps.endedRecordTtlMs);
      this.emit('ended', this.record);
    })();
    return this.ending;
  }
}
