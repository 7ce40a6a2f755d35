import type Srf from 'drachtio-srf';
import type { ForkBudget } from '../calls/fork-budget';
import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { Call } from '../calls/call';
import { CallRegistry } from '../calls/call-registry';
import { CallRouter, Routed } from '../calls/call-router';
import { DialogLike, InDialogRequest, InDialogResponse } from '../calls/dialog-like';
import { snapshotDialog } from '../calls/dialog-snapshot';
import { bumpVersion, chosenCodec, direction, restrictCodecs, withDirection } from '../calls/sdp-rewriter';
import { countSdpRejection, type LoopbackMediaRule, validateSdp } from '../calls/sdp-validator';
import { SipConfig } from '../config/sip-config';
import { callParties } from '../events/call-event-data';
import { Side } from '../kurento/call-media';
import { KSdpEndpoint } from '../kurento/kurento-types';
import { MediaConnection } from '../kurento/media-connection';
import { CallLeg, LegKind, TransferEntry } from '../state/call-record';
import { DialogRef, parseReferTo, parseReplaces, sipfrag } from './refer-to';
import type { StateStore } from '../state/state-store';
import { movesToNextRegistration } from '../registrar/stale-binding';
import type { FlowBoundRegistrations } from '../registrar/flow-binding';
import type { RingMode } from '../config/gateway-config';
import { Fork, lateRegistrations, noteForkEnd, registrationsOf, releaseFork } from '../calls/fork-call';
import type { CallEventBus } from '../events/call-events';
import type { LateRegistrations } from '../calls/late-registrations';
import type { RegistrationsElsewhere } from '../registrar/registrations-elsewhere';
import { bestFailure } from '../calls/fork-response';
import { ForkOutcome, ForkSet } from '../calls/fork-set';

/** how long a BYE to the party that leaves may go unanswered before the transfer carries on */
const BYE_WAIT_MS = 500;
/** how long the final NOTIFY may go unanswered before the transferor's leg is hung up anyway */
const NOTIFY_WAIT_MS = 1000;

export type TransferBy = 'api' | 'caller' | 'callee';

export interface BlindTransferOptions {
  /** the number or user to dial (routed like a new call: a registered user or a trunk) */
  target: string;
  /** the party that stays and is connected to the target; default the caller */
  keep?: Side;
  by: TransferBy;
}

export type TransferResult =
  | { ok: true; target: string; party: string }
  | { ok: false; status: number; reason: string };

export interface TransferDeps {
  srf: Srf;
  config: SipConfig;
  router: CallRouter;
  /** where a registered target's binding is forgotten when ferry sip cannot send to it */
  store: Pick<StateStore, 'removeRegistration'>;
  /** bindings that live on a connection: removed once a request proves it gone (flow-binding.ts) */
  flows?: FlowBoundRegistrations;
  registry: CallRegistry;
  media: MediaConnection;
  clock: Clock;
  log: Logger;
  /** a transfer target that has not answered within this long is cancelled (the gateway's no-answer time) */
  noAnswerMs: number;
  /** played to the staying party while a blind transfer's target rings (FERRY_TRANSFER_RINGBACK_URI) */
  ringbackUri?: string;
  /** a target user with several registrations (FERRY_RING): `all` rings them at once, `newest` (or unset) one at a time */
  ring?: RingMode;
  /** registrations rung at once beyond the first, per source of the party that leaves (the transferor) and in all */
  forkBudget?: ForkBudget;
  /** loopback media targets in SDP (FERRY_ALLOW_LOOPBACK_MEDIA); default from-loopback */
  loopbackMedia?: LoopbackMediaRule;
  /** the gateway's event bus: a registration the target user makes while its registrations ring joins them */
  events?: CallEventBus;
  /** registrations made at the other gateways sharing the store: they join the target's ring too */
  elsewhere?: RegistrationsElsewhere;
}

/**
 * progress of a transfer as the REFER's NOTIFYs tell it (a final status ends the subscription); the
 * promise settles once that NOTIFY is answered or NOTIFY_WAIT_MS passed (the BYE to the transferor waits
 * for the final one, so the transferor reads the outcome before its call is hung up)
 */
type Progress = (status: number, reason: string) => Promise<void> | void;

/** what the INVITE handler knows of a new caller once it is authenticated */
export interface ReplacingCaller {
  party: string;
  uri: string;
  kind: LegKind;
  codecs: string[];
  source?: string;
}

type SrfReq = Srf.SrfRequest & { body: string };
/** the INVITE's response object as the INVITE handler holds it */
export interface ReplacingResponse {
  send(status: number, reason?: string | { headers?: Record<string, string>; body?: string }, opts?: { headers?: Record<string, string>; body?: string }): void;
}

function other(side: Side): Side {
  return side === 'caller' ? 'callee' : 'caller';
}

class TransferFailed extends Error {
  constructor(readonly status: number, readonly reason: string) {
    super(`${status} ${reason}`);
  }
}

/**
 * Call transfer on the B2BUA (docs/transfer.md). All three kinds end the same way: the party that
 * stays keeps its dialog and its endpoint; a new endpoint in the SAME pipeline is connected to it
 * both ways; the leaving party's dialog is hung up and its endpoint released; the call record's leg
 * becomes the new party (so an adopting gateway finds it) and the timeline and `transfers` say so.
 * - blind: REFER without Replaces, or the REST API; the target is dialled as a new leg;
 * - attended: REFER with Replaces naming the transferor's other call through this gateway; that
 *   call's other party is moved into this call's pipeline by one re-INVITE to that party alone;
 * - replaces: an INVITE with a Replaces header takes the place of the party whose dialog it names.
 * One transfer at a time per call; until the new party is connected the old media stays as it was,
 * so a failed transfer leaves the call exactly as before.
 */
export class TransferService {
  private readonly busy = new WeakSet<Call>();

  constructor(private readonly d: TransferDeps) {}

  /** the REST API's blind transfer (and the REFER's, through onRefer) */
  async blind(call: Call, opts: BlindTransferOptions, progress?: Progress): Promise<TransferResult> {
    const keep = opts.keep ?? 'caller';
    const leaving = other(keep);
    const refused = this.refuse(call);
    if (refused) return refused;
    this.busy.add(call);
    try {
      const party = await this.runBlind(call, keep, leaving, opts, progress);
      return { ok: true, target: opts.target, party };
    } catch (err) {
      const f = err instanceof TransferFailed ? err : new TransferFailed(500, (err as Error).message ?? String(err));
      this.failed(call, leaving, f);
      return { ok: false, status: f.status, reason: f.reason };
    } finally {
      this.busy.delete(call);
    }
  }

  /** a REFER from one party of a call (Call routes it here) */
  onRefer(call: Call, side: Side, req: InDialogRequest, res: InDialogResponse): void {
    const target = parseReferTo(req.get('Refer-To'));
    if (!target.ok) {
      call.note('refer-refused', `${side}: ${target.problem}`);
      res.send(400, { headers: { Warning: `399 ferry "${target.problem}"` } });
      return;
    }
    const refused = this.refuse(call);
    if (refused) {
      res.send(refused.status === 409 ? 491 : 481, refused.status === 409 ? 'Request Pending' : 'Call Does Not Exist');
      return;
    }
    const dialog = call.dialog(side);
    if (!dialog) {
      res.send(481);
      return;
    }
    res.send(202, 'Accepted');
    call.note('refer', `${side} -> ${target.uri}${target.replaces ? ' (with Replaces)' : ''}`);
    const notify = this.notifier(call, side, dialog);
    notify(100, 'Trying');
    if (target.replaces) {
      void this.attended(call, side, target.replaces, notify);
    } else {
      void this.blind(call, { target: target.user, keep: other(side), by: side }, notify).then((r) => {
        if (!r.ok) notify(r.status, r.reason);
      });
    }
  }

  /**
   * An INVITE carrying a Replaces header, from an authenticated caller (the INVITE handler calls
   * this after identifying the caller and checking the SDP). Answers the INVITE itself.
   */
  async onReplacingInvite(req: SrfReq, res: ReplacingResponse, caller: ReplacingCaller): Promise<void> {
    const parsed = parseReplaces(req.get('Replaces'));
    if (!parsed.ok) {
      res.send(400, { headers: { Warning: `399 ferry "${parsed.problem}"` } });
      return;
    }
    const found = this.findDialog(parsed.ref);
    if (!found || found.call.state !== 'answered' || this.busy.has(found.call) || !found.call.media) {
      // RFC 3891 §3: no such confirmed dialog here
      res.send(481, 'Call/Transaction Does Not Exist');
      return;
    }
    const { call, side } = found;
    const keep = other(side);
    const media = call.media!;
    this.busy.add(call);
    call.setLeaving(side);
    let ep: KSdpEndpoint | undefined;
    try {
      const codec = chosenCodec(call.record[keep].localSdp ?? call.dialog(keep)!.local.sdp);
      if (!caller.codecs.includes(codec)) throw new TransferFailed(488, `the call's codec ${codec} is not offered`);
      ep = await this.d.media.guard(media.createEndpoint(caller.kind));
      const answer = await this.d.media.guard(media.answerOn(ep, caller.kind, restrictCodecs(req.body, [codec])));
      const uas = (await this.d.srf.createUAS(req, res as unknown as Srf.SrfResponse, { localSdp: answer } as never)) as unknown as DialogLike;
      const leg: CallLeg = {
        uri: caller.uri,
        kind: caller.kind,
        party: caller.party,
        dialog: snapshotDialog(uas as never, 'uas'),
        ...(caller.source ? { sipSource: caller.source } : {}),
      };
      const entry = this.entry(call, 'replaces', side, side, leg.party);
      await this.switchLeg(call, side, keep, ep, uas, leg);
      ep = undefined;
      this.completed(call, entry);
    } catch (err) {
      if (ep) await media.releaseEndpoint(ep);
      const f = err instanceof TransferFailed ? err : new TransferFailed(500, (err as Error).message ?? String(err));
      try {
        res.send(f.status >= 400 ? f.status : 500);
      } catch {
        /* already answered */
      }
      this.failed(call, side, f);
    } finally {
      this.busy.delete(call);
    }
  }

  /** why this call cannot be transferred now (409 for one already being transferred), or undefined */
  private refuse(call: Call): { ok: false; status: number; reason: string } | undefined {
    if (call.isEnding || call.state !== 'answered' || !call.media) return { ok: false, status: 481, reason: 'the call is not answered or is ending' };
    if (this.busy.has(call)) return { ok: false, status: 409, reason: 'a transfer of this call is already in progress' };
    return undefined;
  }

  /** why `sdp` (an answer from `source`) is refused by the SDP rules (docs/security.md, "SDP validation"), noted on the call; undefined when it is fine */
  private sdpProblem(call: Call, sdp: string, source: string | undefined, what: string): string | undefined {
    const check = validateSdp(sdp, { source: source ?? '', loopbackMedia: this.d.loopbackMedia ?? 'from-loopback' });
    if (check.ok) return undefined;
    countSdpRejection(check.problem);
    call.note('sdp-refused', `${what}: ${check.problem}`);
    return check.problem;
  }

  private async runBlind(call: Call, keep: Side, leaving: Side, opts: BlindTransferOptions, progress?: Progress): Promise<string> {
    const { d } = this;
    const routed = await d.router.route(opts.target);
    if (!routed.ok) throw new TransferFailed(routed.status, routed.reason);
    /** the registration (or trunk) tried last: the one that answered */
    let route: Routed = routed;
    const media = call.media!;
    const codec = chosenCodec(call.record[keep].localSdp ?? call.dialog(keep)!.local.sdp);
    call.setLeaving(leaving);
    call.note('transfer-started', `blind by ${opts.by}: ${call.record[keep].party} to ${opts.target} (${route.party}); ${call.record[leaving].party} leaves`);
    void call.persist();
    let ep: KSdpEndpoint | undefined;
    let ringback: { stop(restore: boolean): Promise<void> } | undefined;
    try {
      if (d.ringbackUri) {
        ringback = await d.media.guard(media.ringback(keep, d.ringbackUri)).catch((err: Error) => {
          call.note('ringback-failed', err.message);
          return undefined;
        });
        if (ringback) call.note('ringback', `to ${keep}`);
      }
      const keepParty = call.record[keep].party;
      const ringUntil = d.clock.now() + d.noAnswerMs;
      let epKind: LegKind | undefined;
      let offer = '';
      let failure: TransferFailed | undefined;
      let dialog: (DialogLike & { res?: { source_address?: string } }) | undefined;
      // FERRY_RING=all: a user with several registrations has them all rung at once, as for a call
      let targets = d.ring === 'all' && routed.user ? await registrationsOf(d.router.candidates(routed)).catch(() => []) : [];
      // within the budget of the transferor's source, as its calls are (docs/security.md, "Ringing all registrations")
      const grant = targets.length > 1 ? d.forkBudget?.take(call.record[leaving].sipSource ?? '', targets.length - 1) : undefined;
      // a user's only registration rings as a set of one: a registration the user makes while it rings joins it
      // (cut to one by the budget: one at a time, as the budget has nothing left for a join)
      let ringSet = targets.length >= 1;
      if (grant && grant.extra < targets.length - 1) {
        call.note('ring-all-limited', `transfer: ${grant.extra + 1} of ${targets.length} registrations at once (${grant.cutBy} limit)`);
        targets = targets.slice(0, grant.extra + 1);
        ringSet = targets.length > 1;
      }
      if (ringSet) {
        try {
          // a registration the target makes while these ring joins them, within the same source's budget
          const late = lateRegistrations({ call, media, server: d.media }, {
            ...(d.events ? { events: d.events } : {}),
            ...(d.elsewhere ? { elsewhere: d.elsewhere } : {}),
            candidates: (first) => d.router.candidates(first),
            ...(d.forkBudget ? { take: () => d.forkBudget!.take(call.record[leaving].sipSource ?? '', 1) } : {}),
          }, targets[0]!, [codec], 'transfer: ');
          const won = await this.ringAll(call, targets, codec, `<sip:${keepParty}@${d.config.domain}>`, ringUntil, progress, late).finally(() => late.stop());
          [ep, dialog, route] = [won.ep, won.dialog, won.to];
        } finally {
          grant?.release();
        }
      } else grant?.release();
      // a registered user's registrations one at a time, newest first, as for a call (docs/gateway.md, "A call", step 2)
      if (!ringSet) for await (const to of d.router.candidates(routed)) {
        if (to !== routed) call.note('next-registration', `transfer: ${to.uri} (${to.kind})`);
        if (epKind !== to.kind) {
          // a new endpoint for the target's kind; an offer not answered yet serves the next registration of the same kind
          if (ep) await media.releaseEndpoint(ep);
          ep = undefined;
          ep = await d.media.guard(media.createEndpoint(to.kind));
          epKind = to.kind;
          offer = await d.media.guard(media.offerFrom(ep, to.kind, [codec]));
        }
        if (call.isEnding) throw new TransferFailed(487, 'the call ended during the transfer');
        route = to;
        let timer: TimerHandle | undefined;
        let noAnswer = false;
        let onEnding: (() => void) | undefined;
        try {
          dialog = (await d.srf
            .createUAC(
              to.uri,
              {
                localSdp: offer,
                headers: { From: `<sip:${keepParty}@${d.config.domain}>` },
                ...(to.nextHop ? { proxy: to.nextHop } : {}),
                ...(to.trunk?.outboundAuth ? { auth: { username: to.trunk.outboundAuth.username, password: to.trunk.outboundAuth.password } } : {}),
              } as never,
              {
                cbRequest: (err: unknown, r: { cancel(): void } | undefined) => {
                  if (err || !r) return;
                  // the target rings FERRY_NO_ANSWER_MS in all, however many registrations are tried
                  timer = d.clock.setTimeout(() => {
                    noAnswer = true;
                    r.cancel();
                  }, Math.max(0, ringUntil - d.clock.now()));
                  // the call ending meanwhile cancels the new leg at once
                  onEnding = () => r.cancel();
                  call.once('ending', onEnding);
                },
                cbProvisional: (p: { status: number; reason: string }) => {
                  if (p.status === 180 || p.status === 183) progress?.(p.status === 183 ? 183 : 180, p.status === 183 ? 'Session Progress' : 'Ringing');
                },
              } as never,
            )
            .finally(() => {
              timer?.cancel();
              if (onEnding) call.removeListener('ending', onEnding);
            })) as unknown as DialogLike & { res?: { source_address?: string } };
          break;
        } catch (e) {
          const err = e as { status?: number; reason?: string; message?: string };
          if (noAnswer) throw new TransferFailed(408, 'Request Timeout');
          // a registration ferry sip could not send to is forgotten and the next one tried (stale-binding.ts)
          const next = await movesToNextRegistration(d.store, to, err, call, d.flows);
          // a user that cannot be reached (ferry sip's 410 for a gone connection, 503 for none) is
          // unavailable to the transferor, as to a caller (docs/gateway.md, "A call")
          failure = err.status === 410 || (err.status === 503 && to.user)
            ? new TransferFailed(480, 'Temporarily Unavailable')
            : new TransferFailed(err.status ?? 480, err.reason ?? err.message ?? 'Temporarily Unavailable');
          if (!next || call.isEnding) throw failure;
        }
      }
      if (!dialog || !ep) throw failure ?? new TransferFailed(480, 'Temporarily Unavailable');
      if (call.isEnding) {
        await dialog.destroy().catch(() => undefined);
        throw new TransferFailed(487, 'the call ended during the transfer');
      }
      // the target's answer is held to the rules of every other SDP: media is never aimed where an offer may not aim it
      const refused = this.sdpProblem(call, dialog.remote.sdp, dialog.res?.source_address, 'transfer target answer');
      if (refused) {
        await dialog.destroy({ headers: { Reason: 'SIP;cause=488;text="SDP refused"' } }).catch(() => undefined);
        throw new TransferFailed(488, 'Not Acceptable Here');
      }
      await d.media.guard(media.acceptAnswerOn(ep, dialog.remote.sdp));
      const leg: CallLeg = {
        uri: route.uri,
        kind: route.kind,
        party: route.party,
        dialog: snapshotDialog(dialog as never, 'uac'),
        ...(dialog.res?.source_address ? { sipSource: dialog.res.source_address } : {}),
      };
      const entry = { ...this.entry(call, 'blind', opts.by, leaving, route.party), target: opts.target };
      await progress?.(200, 'OK');
      await this.switchLeg(call, leaving, keep, ep, dialog, leg);
      ep = undefined;
      // the new party is the staying party's source now: the player just goes
      await ringback?.stop(false);
      ringback = undefined;
      this.completed(call, entry);
      return route.party;
    } finally {
      // a failed transfer: the staying party hears the transferor again
      if (ringback) {
        await ringback.stop(true);
        call.note('media-restored', `${keep} hears ${leaving} again`);
      }
      if (ep) await media.releaseEndpoint(ep);
    }
  }

  /**
   * A blind transfer's target is a user with several registrations and FERRY_RING=all: each gets its own
   * new endpoint's offer (the staying party's codec) at once; the first to answer is the target (its
   * endpoint and dialog are returned, the transfer goes on as for one registration), the others are
   * cancelled ("Call completed elsewhere") and their endpoints released. The call ending meanwhile
   * cancels them all; nobody answering by `ringUntil` is a 408, every one failing the best failure.
   */
  private async ringAll(call: Call, targets: readonly Routed[], codec: string, from: string, ringUntil: number, progress: Progress | undefined, late: LateRegistrations): Promise<{ ep: KSdpEndpoint; dialog: DialogLike & { res?: { source_address?: string } }; to: Routed }> {
    const { d } = this;
    const media = call.media!;
    call.note('ring-all', targets.length === 1 ? 'transfer: 1 registration (one made while it rings joins)' : `transfer: ${targets.length} registrations at once`);
    const made = await Promise.allSettled(targets.map(async (to): Promise<Fork> => {
      call.note('fork', `transfer: ${to.uri} (${to.kind})`);
      const ep = await d.media.guard(media.createEndpoint(to.kind));
      try {
        return { to, ep, own: true, offer: await d.media.guard(media.offerFrom(ep, to.kind, [codec])) };
      } catch (err) {
        await media.releaseEndpoint(ep);
        throw err;
      }
    }));
    const forks = made.filter((m): m is PromiseFulfilledResult<Fork> => m.status === 'fulfilled').map((m) => m.value);
    const unmade = made.find((m): m is PromiseRejectedResult => m.status === 'rejected');
    if (unmade || call.isEnding) {
      await Promise.all(forks.map((f) => releaseFork(media, f)));
      if (unmade) throw unmade.reason;
      throw new TransferFailed(487, 'the call ended during the transfer');
    }
    let noAnswer = false;
    let timer: TimerHandle | undefined;
    let ringing = false;
    const set: ForkSet<Fork> = new ForkSet<Fork>(d.srf, forks, {
      sent: () => {
        // the target rings FERRY_NO_ANSWER_MS in all, from the first INVITE
        timer ??= d.clock.setTimeout(() => {
          if (set.answered) return;
          noAnswer = true;
          set.cancelAll();
        }, Math.max(0, ringUntil - d.clock.now()));
      },
      ringing: () => {
        if (ringing) return;
        ringing = true;
        void progress?.(180, 'Ringing');
      },
      ended: async (f, end) => {
        await noteForkEnd(d.store, call, f, end, d.flows);
        await releaseFork(media, f);
      },
    }, { from });
    late.attach(set);
    // the call ending meanwhile cancels every registration still ringing
    const onEnding = (): void => set.cancelAll();
    call.once('ending', onEnding);
    let outcome: ForkOutcome<Fork>;
    try {
      outcome = await set.outcome;
    } finally {
      timer?.cancel();
      call.removeListener('ending', onEnding);
    }
    if (!outcome.answered) {
      if (noAnswer) throw new TransferFailed(408, 'Request Timeout');
      if (call.isEnding) throw new TransferFailed(487, 'the call ended during the transfer');
      const err = (outcome.global ?? bestFailure(outcome.failures.map((x) => ({ ...x.err, x })))?.x)?.err;
      // a user that cannot be reached is unavailable to the transferor, as to a caller
      if (!err?.status || err.status === 410 || err.status === 503) throw new TransferFailed(480, 'Temporarily Unavailable');
      throw new TransferFailed(err.status, err.reason ?? 'failed');
    }
    call.note('fork-answered', `transfer: ${outcome.fork.to.uri} (${outcome.fork.to.kind})`);
    return { ep: outcome.fork.ep, dialog: outcome.dialog as DialogLike & { res?: { source_address?: string } }, to: outcome.fork.to };
  }

  /** attended transfer: REFER with Replaces in call X from `side`; the named dialog is the transferor's leg of call Y */
  private async attended(x: Call, side: Side, ref: DialogRef, notify: Progress): Promise<void> {
    const found = this.findDialog(ref);
    if (!found || found.call === x) {
      x.note('transfer-failed', 'attended: the dialog named by Replaces is not a call of this gateway');
      notify(481, 'Call/Transaction Does Not Exist');
      return;
    }
    const y = found.call;
    const ySideA = found.side;
    const ySideC = other(ySideA);
    const keep = other(side);
    if (this.refuse(y) || this.busy.has(x)) {
      notify(491, 'Request Pending');
      return;
    }
    this.busy.add(x);
    this.busy.add(y);
    x.setLeaving(side);
    y.setLeaving(ySideA);
    const media = x.media!;
    let ep: KSdpEndpoint | undefined;
    try {
      const dialogC = y.dialog(ySideC);
      if (!dialogC) throw new TransferFailed(481, 'Call/Transaction Does Not Exist');
      const legC: CallLeg = { ...y.record[ySideC] };
      x.note('transfer-started', `attended by ${side}: ${x.record[keep].party} to ${legC.party} (call ${y.record.id}); ${x.record[side].party} leaves`);
      const codec = chosenCodec(x.record[keep].localSdp ?? x.dialog(keep)!.local.sdp);
      ep = await this.d.media.guard(media.createEndpoint(legC.kind));
      const offer = await this.d.media.guard(media.offerFrom(ep, legC.kind, [codec]));
      // the one re-INVITE: to the joining party alone, moving its media onto the new endpoint
      const answer = await dialogC.modify(offer).catch((err: { status?: number; message?: string }) => {
        throw new TransferFailed(err.status ?? 500, `re-INVITE to ${legC.party} failed: ${err.message ?? err}`);
      });
      dialogC.local.sdp = offer;
      if (this.sdpProblem(x, answer || dialogC.remote.sdp, legC.sipSource, 'joining party answer')) throw new TransferFailed(488, 'Not Acceptable Here');
      await this.d.media.guard(media.acceptAnswerOn(ep, answer || dialogC.remote.sdp));
      y.detachLeg(ySideC);
      y.note('transferred-away', `${legC.party} joined call ${x.record.id}`);
      const entry = this.entry(x, 'attended', side, side, legC.party);
      await notify(200, 'OK');
      await this.switchLeg(x, side, keep, ep, dialogC, legC);
      ep = undefined;
      this.completed(x, entry);
      y.setLeaving(undefined);
      await y.end('transferred', 'gateway');
    } catch (err) {
      if (ep) await media.releaseEndpoint(ep);
      const f = err instanceof TransferFailed ? err : new TransferFailed(500, (err as Error).message ?? String(err));
      notify(f.status, f.reason);
      this.failed(x, side, f);
      y.setLeaving(undefined);
      if (y.leftDuringTransfer && !y.isEnding) void y.end('sip-bye', ySideA);
    } finally {
      this.busy.delete(x);
      this.busy.delete(y);
    }
  }

  /**
   * The common end of every transfer: `ep` (answered by the joining party) is connected both ways to
   * the staying party's endpoint, the call's `leaving` side becomes the new dialog and leg, the
   * leaving party's endpoint is released and its dialog hung up.
   */
  private async switchLeg(call: Call, leaving: Side, keep: Side, ep: KSdpEndpoint, dialog: DialogLike, leg: CallLeg): Promise<void> {
    const media = call.media!;
    await this.d.media.guard(media.connectTo(keep, ep));
    const old = call.replaceLeg(leaving, dialog, leg);
    call.setLeaving(undefined);
    await media.replaceEndpoint(leaving, ep, leg.kind);
    call.record.media = { ...call.record.media, ...media.ids };
    if (old?.connected) await this.hangUp(call, old, leaving);
    else call.note('transferor-gone', `${leaving} had already hung up`);
    await this.takeOffHold(call, keep);
  }

  /**
   * A transferor usually holds the call before its REFER (ferry relayed that as a sendonly re-INVITE
   * to the party that stays): once the new party is connected, the staying party is re-INVITEd back
   * to sendrecv — its own dialog only, nothing goes through another party.
   */
  private async takeOffHold(call: Call, keep: Side): Promise<void> {
    const kd = call.dialog(keep);
    if (!kd || direction(kd.local.sdp) === 'sendrecv') return;
    const offer = bumpVersion(withDirection(kd.local.sdp, 'sendrecv'));
    try {
      const answer = await kd.modify(offer);
      kd.local.sdp = offer;
      const leg = call.record[keep];
      leg.localSdp = offer;
      if (answer) {
        leg.remoteSdp = answer;
        leg.direction = direction(answer);
        if (leg.kind === 'rtp') await call.media?.renegotiate(keep, answer);
      }
      call.note('resume', `${keep} taken off hold after the transfer`);
    } catch (err) {
      call.note('reinvite-failed', `${keep} (off hold after the transfer): ${(err as Error).message ?? err}`);
    }
  }

  private async hangUp(call: Call, d: DialogLike, side: Side): Promise<void> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = this.d.clock.setTimeout(() => r('timeout'), BYE_WAIT_MS);
    });
    const r = await Promise.race([d.destroy({ headers: { Reason: 'SIP;cause=200;text="transferred"' } }).then(() => 'sent' as const, () => 'failed' as const), timeout]);
    timer?.cancel();
    call.note(r === 'sent' ? 'bye-sent' : r === 'timeout' ? 'bye-unanswered' : 'bye-failed', `to the transferred-away ${side}`);
  }

  private entry(call: Call, kind: TransferEntry['kind'], by: TransferBy, side: Side, joined: string): TransferEntry {
    return { at: 0, kind, by, side, left: call.record[side].party, stayed: call.record[other(side)].party, joined };
  }

  private completed(call: Call, entry: TransferEntry): void {
    entry.at = this.d.clock.now();
    (call.record.transfers ??= []).push(entry);
    call.note('transferred', `${entry.kind} by ${entry.by}: ${entry.left} -> ${entry.joined} (${entry.stayed} stays)`);
    call.publish('call.transferred', { ...entry, parties: callParties(call.record) });
    void call.persist();
  }

  private failed(call: Call, leaving: Side, f: TransferFailed): void {
    call.note('transfer-failed', `${f.status} ${f.reason}`);
    const gone = call.leftDuringTransfer;
    call.setLeaving(undefined);
    // a call that ended meanwhile keeps the record its end wrote (with its TTL)
    if (call.isEnding) return;
    void call.persist();
    // the transferor hung up while the target rang: the transferee is left with nobody
    if (gone && !call.isEnding) void call.end('sip-bye', leaving);
  }

  /** the call and side of a dialog this gateway holds, by Call-ID and tags (either order: the namer's view) */
  private findDialog(ref: DialogRef): { call: Call; side: Side } | undefined {
    for (const call of this.d.registry.all()) {
      for (const side of ['caller', 'callee'] as const) {
        const dl = call.dialog(side);
        if (!dl || dl.sip.callId !== ref.callId) continue;
        const tags = [dl.sip.localTag, dl.sip.remoteTag];
        if (tags.includes(ref.toTag) && tags.includes(ref.fromTag)) return { call, side };
      }
    }
    return undefined;
  }

  /** sends the REFER's NOTIFYs (RFC 3515 §2.4.4) in the transferor's dialog; a final status ends the subscription */
  private notifier(call: Call, side: Side, dialog: DialogLike): Progress {
    let done = false;
    let chain: Promise<unknown> = Promise.resolve();
    return (status, reason) => {
      if (done) return;
      const final = status >= 200;
      if (final) done = true;
      const sent = chain.then(() =>
        dialog
          .request({
            method: 'NOTIFY',
            headers: {
              Event: 'refer',
              'Subscription-State': final ? 'terminated;reason=noresource' : 'active;expires=60',
              'Content-Type': 'message/sipfrag;version=2.0',
            },
            body: sipfrag(status, reason),
          })
          .then(
            (r) => call.note('notify-sent', `to ${side}: ${status} ${reason} (answered ${r.status})`),
            (err: Error) => call.note('notify-failed', `to ${side}: ${status}: ${err?.message ?? err}`),
          ),
      );
      chain = sent;
      let timer: TimerHandle | undefined;
      const waited = new Promise<void>((r) => {
        timer = this.d.clock.setTimeout(r, NOTIFY_WAIT_MS);
      });
      return Promise.race([sent.then(() => undefined), waited]).finally(() => timer?.cancel());
    };
  }
}
