import { randomUUID } from 'node:crypto';
import { TimerHandle } from '../../common/clock';
import { Call } from '../calls/call';
import { Routed } from '../calls/call-router';
import type { InviteHandlerDeps } from '../calls/invite-handler';
import { DialogLike } from '../calls/dialog-like';
import { EndReason, reasonForStatus } from '../calls/end-reason';
import { chosenCodec, G711, SdpError } from '../calls/sdp-rewriter';
import { validateSdp } from '../calls/sdp-validator';
import { CallMedia, Side } from '../kurento/call-media';
import { MediaConnection, MediaUnavailableError } from '../kurento/media-connection';
import { isMediaOverloaded } from '../kurento/media-refusal';
import { CallRecord } from '../state/call-record';
import { ApiError } from './api-error';
import { OriginateRequest } from './api-validation';
import { movesToNextRegistration } from '../registrar/stale-binding';
import { Fork, ForkSide, lateRegistrations, noteForkEnd, prepareForks, registrationsOf, releaseFork, takeSide } from '../calls/fork-call';
import type { ForkGrant } from '../calls/fork-budget';
import { bestFailure } from '../calls/fork-response';
import { ForkSet } from '../calls/fork-set';

/**
 * The source every call started through the REST API counts as in the ring-all fork budget
 * (FERRY_RING_MAX_FORKS_PER_SOURCE): the API has one token, whoever holds it and wherever it calls from.
 */
export const API_FORK_SOURCE = 'api';

/** Retry-After (seconds) on a `POST /api/calls` refused for the fork budget (ringing calls give theirs back within FERRY_NO_ANSWER_MS) */
const FORK_BUDGET_RETRY_AFTER_S = 5;

/** each party's registrations granted from the fork budget at origination (beyond the party's first) */
type PartyGrants = Partial<Record<Side, ForkGrant>>;

/** What an API-started call needs: the same as a party's INVITE, without digest auth or Replaces handling. */
export type OriginatorDeps = Omit<InviteHandlerDeps, 'auth' | 'replacingInvite'>;

interface PendingInvite {
  cancel(): void;
}
/** the INVITE of the party now rung, its ring timer, and which party did not answer */
interface Pending {
  invite?: PendingInvite;
  timer?: TimerHandle;
  noAnswer?: Side;
}

/**
 * Click-to-call (`POST /api/calls`): ring party A; when A answers, ring B; when B answers, the two
 * dialogs are bridged through the call's pipeline and the call is an ordinary Call from then on
 * (same re-INVITE, INFO, BYE handling, same single end path). Party A is the record's caller leg,
 * party B its callee leg. Each party rings at most `ringTimeoutMs` (then the call ends no-answer).
 * While B rings, A hears silence (no ringback is played). Parties are user names (their
 * registrations rung all at once with FERRY_RING=all, else one at a time, newest first: docs/gateway.md)
 * or numbers routed by the dial plan (a trunk).
 */
export class Originator {
  constructor(private readonly d: OriginatorDeps) {}

  /** where a party is reached: a configured user's registration, else the dial plan */
  private async resolve(field: 'a' | 'b', party: string): Promise<Routed> {
    const { d } = this;
    const user = d.config.users.find((u) => u.user === party);
    const target = user ? await d.router.userTarget(user.user) : await d.router.route(party);
    if (!target.ok && user) throw new ApiError(409, `${field}: user ${party} is not registered`, { field });
    if (!target.ok) {
      if (target.status === 480) throw new ApiError(409, `${field}: ${party} is not reachable now (${target.reason})`, { field });
      throw new ApiError(404, `${field}: no user or route for ${party}`, { field });
    }
    return target;
  }

  /** checks both parties and creates the call; A is rung in the background. Returns the new call. */
  async originate(req: OriginateRequest): Promise<Call> {
    const { d } = this;
    const a = await this.resolve('a', req.a);
    const b = await this.resolve('b', req.b);
    // each party's registrations rung beyond its first, from the API's fork budget: refused when short
    const grants = await this.forkGrants(a, b);
    // the media server this call's pipeline goes on (the same placement as a party's INVITE)
    const placed = d.media.place();
    if (!placed.ok) {
      for (const g of Object.values(grants)) g.release();
      d.log.warn('call refused: no media server available', { a: a.party, b: b.party, detail: placed.detail });
      throw new ApiError(503, placed.detail, {}, { 'Retry-After': '5' });
    }
    const record: CallRecord = {
      id: randomUUID(),
      state: 'routing',
      createdAt: d.clock.now(),
      caller: { uri: a.uri, kind: a.kind, party: a.party },
      callee: { uri: b.uri, kind: b.kind, party: b.party },
      media: { mediaUrl: placed.url },
      owner: d.instanceId,
      origin: 'api',
      ...(req.record ? { record: true } : {}),
      ...(req.tags ? { tags: { ...req.tags } } : {}),
      timeline: [],
    };
    const call = new Call(record, { store: d.store, clock: d.clock, log: d.log, endedRecordTtlMs: d.endedRecordTtlMs, loopbackMedia: d.loopbackMedia, events: d.events });
    d.registry.add(call);
    d.onStarted(record);
    call.once('ended', (r) => d.onEnded(r));
    call.once('ended', () => {
      for (const g of Object.values(grants)) g.release();
    });
    call.note('originate', `api: ${req.a} => ${a.party} (${a.kind}), then ${req.b} => ${b.party} (${b.kind})${req.from ? `, caller id ${req.from}` : ''}`);
    await call.persist().catch((err: unknown) => {
      // not started after all (the store does not answer): the budget taken for it goes back
      for (const g of Object.values(grants)) g.release();
      throw err;
    });
    void this.run(call, req, a, b, placed.conn, grants);
    return call;
  }

  /**
   * With FERRY_RING=all, every registration of a party beyond its first rings with an endpoint of its own:
   * they are taken from the fork budget now, the API counting as one source (API_FORK_SOURCE) against
   * FERRY_RING_MAX_FORKS_PER_SOURCE and with every call against FERRY_RING_MAX_FORKS. Short of either, the
   * call is refused (429 for the API's own share, 503 for the gateway's) and nothing is kept.
   */
  private async forkGrants(a: Routed, b: Routed): Promise<PartyGrants> {
    const { d } = this;
    const budget = d.forkBudget;
    if (d.ring !== 'all' || !budget) return {};
    const grants: PartyGrants = {};
    const wanted: Partial<Record<Side, number>> = {};
    for (const [side, party] of [['caller', a], ['callee', b]] as const) {
      if (!party.user) continue;
      const n = (await registrationsOf(d.router.candidates(party)).catch(() => [])).length;
      if (n > 1) wanted[side] = n - 1;
    }
    for (const side of ['caller', 'callee'] as const) {
      const n = wanted[side];
      if (!n) continue;
      const g = budget.take(API_FORK_SOURCE, n);
      grants[side] = g;
      if (g.extra >= n) continue;
      for (const x of Object.values(grants)) x.release();
      const limit = g.cutBy ?? 'total';
      const asked = (wanted.caller ?? 0) + (wanted.callee ?? 0);
      d.log.warn('call refused: ring-all fork budget', { source: API_FORK_SOURCE, limit, registrations: asked, held: budget.held(API_FORK_SOURCE) });
      const why = limit === 'per-source'
        ? `the API's calls ring as many registrations at once as FERRY_RING_MAX_FORKS_PER_SOURCE allows already; this call would ring ${asked} more`
        : `the gateway's calls ring as many registrations at once as FERRY_RING_MAX_FORKS allows already; this call would ring ${asked} more`;
      throw new ApiError(limit === 'per-source' ? 429 : 503, why, { limit, registrations: asked }, { 'Retry-After': String(FORK_BUDGET_RETRY_AFTER_S) });
    }
    return grants;
  }

  private async run(call: Call, req: OriginateRequest, a: Routed, b: Routed, server: MediaConnection, grants: PartyGrants): Promise<void> {
    const { d } = this;
    const ringMs = req.ringTimeoutMs ?? d.noAnswerMs;
    const pending: Pending = {};
    // the call ends (DELETE, media, A hangs up) while a party still rings: cancel that INVITE
    call.once('ending', () => {
      pending.timer?.cancel();
      pending.invite?.cancel();
    });
    let side: Side = 'caller';
    /** a party is being INVITEd (an error without a status then means it could not be reached) */
    let signalling = false;
    let media: CallMedia | undefined;
    try {
      const building = CallMedia.build(server, { caller: a.kind, callee: b.kind }, call.log, d.clock);
      media = await server.guard(building).catch((err: unknown) => {
        if (err instanceof MediaUnavailableError) void building.then((m) => m.release(), () => undefined);
        throw err;
      });
      call.attachMedia(media);
      call.note('media-created', media.ids.pipelineId);
      await call.persist();
      if (call.isEnding) return;

      // party A: sees party B's number as the caller
      signalling = true;
      const answeredA = await this.ring(call, 'caller', a, server, media, G711, `<sip:${sipUser(req.b)}@${d.config.domain}>`, ringMs, pending, grants);
      signalling = false;
      if (!answeredA) return;
      const dialogA = answeredA.dialog;
      a = answeredA.to;
      const earlyBye = (): void => {
        call.note('bye', 'from caller (before the callee answered)');
        void call.end('sip-bye', 'caller');
      };
      dialogA.on('destroy', earlyBye);
      call.holdDialog('caller', dialogA);
      if (!this.acceptable(call, 'caller', dialogA.remote.sdp, a)) throw new SdpError("party A's answer was refused");
      await server.guard(media.acceptAnswer('caller', dialogA.remote.sdp));
      const codec = chosenCodec(dialogA.remote.sdp);
      call.note('a-answered', `codec ${codec}`);
      void call.persist();

      // party B: offered the codec A chose (no transcoding), sees `from` or party A
      side = 'callee';
      const shown = req.from ?? a.party;
      signalling = true;
      const answeredB = await this.ring(call, 'callee', b, server, media, [codec], `<sip:${sipUser(shown)}@${d.config.domain}>`, ringMs, pending, grants);
      signalling = false;
      if (!answeredB) return;
      const dialogB = answeredB.dialog;
      b = answeredB.to;
      if (!this.acceptable(call, 'callee', dialogB.remote.sdp, b)) {
        await dialogB.destroy().catch(() => undefined);
        throw new SdpError("party B's answer was refused");
      }
      await server.guard(media.acceptAnswer('callee', dialogB.remote.sdp));
      call.note('callee-answered', `codec ${chosenCodec(dialogB.remote.sdp)}`);
      dialogA.off('destroy', earlyBye);
      if (!dialogA.connected || call.isEnding) {
        // A left while B answered: B is hung up by the end path
        call.holdDialog('callee', dialogB);
        if (!call.isEnding) void call.end('sip-bye', 'caller');
        return;
      }
      call.connect(dialogA, dialogB, { roles: { caller: 'uac', callee: 'uac' } });
    } catch (err) {
      if (call.isEnding) return;
      const e = err as { status?: number; reason?: string; message?: string };
      let reason: EndReason;
      // the party's own answer (a failure status, no answer, unreachable) ends it "by" that party;
      // anything else (media, a refused SDP) by the gateway, which then hangs up every party that is up
      let by: Side | 'gateway' = side;
      if (pending.noAnswer) reason = 'no-answer';
      else if (err instanceof MediaUnavailableError) [reason, by] = ['media-lost', 'gateway'];
      else if (isMediaOverloaded(err)) [reason, by] = ['media-overloaded', 'gateway'];
      else if (e.status) reason = reasonForStatus(e.status);
      else if (err instanceof SdpError) [reason, by] = ['failed', 'gateway'];
      else if (signalling) reason = 'unavailable';
      else [reason, by] = ['media-error', 'gateway'];
      call.note('failed', `${side}: ${e.status ? `${e.status} ${e.reason ?? ''}`.trim() : String(e.message ?? err)}`);
      await call.end(reason, by);
    }
  }

  /**
   * Rings one party: with FERRY_RING=all a registered user's registrations all at once (ringAll), else
   * `first`, then (a registered user) its other registrations one at a time, newest first, while a try fails in a way that moves on (stale-binding.ts); the party's leg in the record,
   * and for a registration of the other kind its endpoint, follow each try. The party rings `ringMs` in
   * all. Resolves with the dialog of the registration that answered, undefined when the call ended
   * meanwhile; throws the failure that ended the search.
   */
  private async ring(call: Call, side: Side, first: Routed, server: MediaConnection, media: CallMedia, codecs: readonly string[], from: string, ringMs: number, pending: Pending, grants: PartyGrants): Promise<{ dialog: DialogLike; to: Routed } | undefined> {
    const { d } = this;
    const ringUntil = d.clock.now() + ringMs;
    try {
      if (d.ring === 'all' && first.user) {
        // FERRY_RING=all: a user with several registrations has them all rung at once
        let targets = await registrationsOf(d.router.candidates(first));
        // a user's only registration rings as a set of one: a registration the user makes while it rings joins it
        // (cut to one by the budget: one at a time, as the budget has nothing left for a join)
        let ringSet = targets.length >= 1;
        const granted = grants[side]?.extra ?? 0;
        if (d.forkBudget && targets.length - 1 > granted) {
          // registered more since the call was made: the rest from the budget as for any call, else fewer ring
          const more = d.forkBudget.take(API_FORK_SOURCE, targets.length - 1 - granted);
          grants[side] = joined(grants[side], more);
          if (more.extra < targets.length - 1 - granted) {
            call.note('ring-all-limited', `${side}: ${granted + more.extra + 1} of ${targets.length} registrations at once (${more.cutBy ?? 'total'} limit)`);
            targets = targets.slice(0, granted + more.extra + 1);
            ringSet = targets.length > 1;
          }
        }
        if (ringSet) return await this.ringAll(call, { call, media, server, targets, side }, codecs, from, ringMs, ringUntil, pending);
      }
      return await this.ringInTurn(call, side, first, server, media, codecs, from, ringMs, ringUntil, pending);
    } finally {
      // this party's ring is over: what it held of the budget goes back
      grants[side]?.release();
    }
  }

  /** a party's registrations one at a time, newest first (or a trunk's number) */
  private async ringInTurn(call: Call, side: Side, first: Routed, server: MediaConnection, media: CallMedia, codecs: readonly string[], from: string, ringMs: number, ringUntil: number, pending: Pending): Promise<{ dialog: DialogLike; to: Routed } | undefined> {
    const { d } = this;
    let offer: string | undefined;
    let failure: unknown;
    for await (const to of d.router.candidates(first)) {
      if (to !== first) {
        call.note('next-registration', `${side}: ${to.uri} (${to.kind})`);
        call.record[side] = { uri: to.uri, kind: to.kind, party: to.party };
        if (await server.guard(media.switchKind(side, to.kind))) {
          offer = undefined;
          call.record.media = { ...call.record.media, ...media.ids };
          call.note(`${side}-endpoint-replaced`, `${to.kind} ${media.ids[side === 'caller' ? 'callerEndpointId' : 'calleeEndpointId']}`);
        }
        void call.persist();
      }
      // an offer not answered yet serves the next registration of the same kind as well
      offer ??= await server.guard(media.offer(side, codecs));
      try {
        const dialog = await this.invite(call, side, to, offer, from, ringMs, ringUntil, pending);
        return dialog ? { dialog, to } : undefined;
      } catch (err) {
        const next = !pending.noAnswer && (await movesToNextRegistration(d.store, to, err as { status?: number; reason?: string }, call, d.flows));
        if (!next || call.isEnding) throw err;
        failure = err;
      }
    }
    throw failure;
  }

  /**
   * Rings every registration of a party at once (docs/gateway.md, "A call", step 2): each gets its
   * own endpoint's offer; the first to answer serves the party's side (its endpoint takes the side's
   * place), the others are cancelled ("Call completed elsewhere") and their endpoints released. The party
   * rings until `ringUntil` in all. Resolves as ring() does; throws the best failure when none answered.
   */
  private async ringAll(call: Call, fs: ForkSide, codecs: readonly string[], from: string, ringMs: number, ringUntil: number, pending: Pending): Promise<{ dialog: DialogLike; to: Routed } | undefined> {
    const { d } = this;
    const { side, media } = fs;
    if (call.isEnding) return undefined;
    call.note('ring-all', fs.targets.length === 1 ? `${side}: 1 registration (one made while it rings joins)` : `${side}: ${fs.targets.length} registrations at once`);
    // a registration the party's user makes while these ring joins them, within the API's budget
    const late = lateRegistrations(fs, {
      ...(d.events ? { events: d.events } : {}),
      ...(d.elsewhere ? { elsewhere: d.elsewhere } : {}),
      candidates: (first) => d.router.candidates(first),
      ...(d.forkBudget ? { take: () => d.forkBudget!.take(API_FORK_SOURCE, 1) } : {}),
    }, fs.targets[0]!, codecs, side === 'caller' ? 'caller: ' : '');
    try {
      return await this.ringForks(call, fs, codecs, from, ringMs, ringUntil, pending, late);
    } finally {
      late.stop();
    }
  }

  private async ringForks(call: Call, fs: ForkSide, codecs: readonly string[], from: string, ringMs: number, ringUntil: number, pending: Pending, late: ReturnType<typeof lateRegistrations>): Promise<{ dialog: DialogLike; to: Routed } | undefined> {
    const { d } = this;
    const { side, media } = fs;
    const forks = await prepareForks(fs, codecs);
    if (call.isEnding) {
      await Promise.all(forks.map((f) => releaseFork(media, f)));
      return undefined;
    }
    let timerStarted = false;
    const rung = new Set<Fork>();
    const set: ForkSet<Fork> = new ForkSet<Fork>(d.srf, forks, {
      sent: () => {
        if (timerStarted) return;
        timerStarted = true;
        pending.timer = d.clock.setTimeout(() => {
          if (set.answered) return;
          pending.noAnswer = side;
          call.note('no-answer', `${side} after ${ringMs} ms`);
          set.cancelAll();
        }, Math.max(0, ringUntil - d.clock.now()));
        call.addTimer(pending.timer);
      },
      ringing: (f, status) => {
        if (rung.has(f)) return;
        rung.add(f);
        call.note('fork-ringing', `${side}: ${status} ${f.to.uri}`);
        // as for a party rung alone: B ringing after A answered is noted once (`callee-ringing`)
        if (call.state === 'routing') call.setState('ringing', 'ringing', `${side} ${status}`);
        else if (rung.size === 1) call.note(`${side}-ringing`, String(status));
        if (!call.isEnding) void call.persist();
      },
      ended: async (f, end) => {
        await noteForkEnd(d.store, call, f, end, d.flows);
        if (!call.isEnding) void call.persist();
        await releaseFork(media, f);
      },
    }, { from });
    late.attach(set);
    // the call ending meanwhile (DELETE, party A hanging up, the media) cancels every registration still ringing
    pending.invite = { cancel: () => set.cancelAll() };
    const outcome = await set.outcome;
    pending.timer?.cancel();
    pending.invite = undefined;
    if (!outcome.answered) {
      const best = outcome.global ?? bestFailure(outcome.failures.map((x) => ({ ...x.err, x })))?.x;
      throw best?.err ?? Object.assign(new Error('no registration answered'), { status: 480, reason: 'Temporarily Unavailable' });
    }
    const { fork: f, dialog } = outcome;
    if (call.isEnding) {
      await dialog.destroy({ headers: { Reason: `SIP;cause=200;text="${call.record.reason ?? 'failed'}"` } }).catch(() => undefined);
      return undefined;
    }
    call.note('fork-answered', `${side}: ${f.to.uri} (${f.to.kind})`);
    try {
      await takeSide(fs, f);
    } catch (err) {
      await dialog.destroy().catch(() => undefined);
      throw err;
    }
    const source = sourceOf(dialog);
    call.record[side] = { uri: f.to.uri, kind: f.to.kind, party: f.to.party, ...(source ? { sipSource: source } : {}) };
    void call.persist();
    return { dialog, to: f.to };
  }

  /** INVITE one party with our offer; resolves with its dialog once it answers, undefined when the call ended meanwhile */
  private async invite(call: Call, side: Side, to: Routed, offer: string, from: string, ringMs: number, ringUntil: number, pending: Pending): Promise<DialogLike | undefined> {
    const { d } = this;
    if (call.isEnding) return undefined;
    const dialog = (await d.srf.createUAC(to.uri, {
      localSdp: offer,
      headers: { From: from },
      ...(to.nextHop ? { proxy: to.nextHop } : {}),
      ...(to.trunk?.outboundAuth ? { auth: { username: to.trunk.outboundAuth.username, password: to.trunk.outboundAuth.password } } : {}),
    } as never, {
      cbRequest: (_err: unknown, r: unknown) => {
        if (!r) return;
        pending.invite = r as PendingInvite;
        pending.timer = d.clock.setTimeout(() => {
          pending.noAnswer = side;
          call.note('no-answer', `${side} after ${ringMs} ms`);
          pending.invite?.cancel();
        }, Math.max(0, ringUntil - d.clock.now()));
        call.addTimer(pending.timer);
      },
      cbProvisional: (p: unknown) => {
        const status = (p as { status: number }).status;
        if (status !== 180 && status !== 183) return;
        if (call.state === 'routing') call.setState('ringing', 'ringing', `${side} ${status}`);
        else call.note(`${side}-ringing`, String(status));
        void call.persist();
      },
    } as never)) as unknown as DialogLike;
    pending.timer?.cancel();
    pending.invite = undefined;
    if (call.isEnding) {
      // answered just as the call ended: hang this party up too
      await dialog.destroy({ headers: { Reason: `SIP;cause=200;text="${call.record.reason ?? 'failed'}"` } }).catch(() => undefined);
      return undefined;
    }
    const leg = side === 'caller' ? call.record.caller : call.record.callee;
    const source = sourceOf(dialog);
    if (source) leg.sipSource ??= source;
    return dialog;
  }

  /** a party's answer passes the same SDP checks as any offer (media is never aimed where it may not be) */
  private acceptable(call: Call, side: Side, sdp: string, to: Routed): boolean {
    const source = (side === 'caller' ? call.record.caller.sipSource : call.record.callee.sipSource) ?? hostOf(to.uri);
    const check = validateSdp(sdp, { source, loopbackMedia: this.d.loopbackMedia ?? 'from-loopback' });
    if (!check.ok) call.note('sdp-refused', `${side} answer: ${check.problem}`);
    return check.ok;
  }
}

/** two grants as one (released together) */
function joined(a: ForkGrant | undefined, b: ForkGrant): ForkGrant {
  if (!a) return b;
  return {
    extra: a.extra + b.extra,
    ...(b.cutBy ? { cutBy: b.cutBy } : {}),
    release: () => {
      a.release();
      b.release();
    },
  };
}

/** what may stand in a SIP URI's user part */
function sipUser(s: string): string {
  return s.replace(/[^A-Za-z0-9\-_.!~*'()&=+$,;?/%]/g, '');
}

function hostOf(uri: string): string {
  return /^sips?:(?:[^@]+@)?([^:;>]+)/.exec(uri)?.[1] ?? '';
}

/** the address the party's 2xx came from, when srf kept it */
function sourceOf(d: DialogLike): string | undefined {
  const res = (d as unknown as { res?: { source_address?: string } }).res;
  return res?.source_address;
}
