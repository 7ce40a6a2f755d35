import type Srf from 'drachtio-srf';
import type { Clock } from '../../common/clock';
import type { CallMedia, Side } from '../kurento/call-media';
import type { KSdpEndpoint } from '../kurento/kurento-types';
import { MediaUnavailableError, type MediaConnection } from '../kurento/media-connection';
import { movesToNextRegistration } from '../registrar/stale-binding';
import type { FlowBoundRegistrations } from '../registrar/flow-binding';
import type { LegKind } from '../state/call-record';
import type { StateStore } from '../state/state-store';
import type { Call } from './call';
import type { Routed } from './call-router';
import type { DialogLike } from './dialog-like';
import { bestFailure } from './fork-response';
import { COMPLETED_ELSEWHERE, ForkEnd, ForkSet, ForkTarget } from './fork-set';
import { chosenCodec, restrictCodecs, SdpError } from './sdp-rewriter';
import { countSdpRejection, LoopbackMediaRule, validateSdp } from './sdp-validator';
import type { CallEventBus } from '../events/call-events';
import type { ForkGrant } from './fork-budget';
import { LateRegistrations } from './late-registrations';
import type { RegistrationsElsewhere } from '../registrar/registrations-elsewhere';

/** at most this many of a user's registrations (the newest) ring at once */
export const MAX_FORKS = 8;

/** FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS's default: a media server lost while forks ring and not back within it ends the search */
export const DEFAULT_MEDIA_LOSS_GRACE_MS = 1500;

/** the Reason on the CANCEL of every registration still ringing when the call's media server is lost */
export const MEDIA_LOST_REASON = 'SIP;cause=503;text="media server lost"';

/** Retry-After (seconds) on the 503 the caller gets when the media server is lost while forks ring */
const MEDIA_LOST_RETRY_AFTER_S = 5;

/** the caller's INVITE, as far as ringing every registration needs it */
export interface ForkedInvite {
  body: string;
  socket?: unknown;
  on(event: 'cancel', listener: (cancel?: { get(name: string): string | undefined; has(name: string): boolean }) => void): unknown;
  removeListener(event: 'cancel', listener: (...args: never[]) => void): unknown;
}

export interface CallerResponse {
  finalResponseSent?: boolean;
  send(status: number, reason?: string, opts?: { headers?: Record<string, string> }): void;
}

export interface RingAllContext {
  srf: Srf;
  store: Pick<StateStore, 'removeRegistration'>;
  clock: Clock;
  noAnswerMs: number;
  loopbackMedia?: LoopbackMediaRule;
  req: ForkedInvite;
  res: CallerResponse;
  call: Call;
  media: CallMedia;
  /** the media server the call is on (every media request is given up at once when it is lost) */
  server: MediaConnection;
  caller: { kind: LegKind; codecs: readonly string[] };
  /** the From header the callee sees */
  from: string;
  /** the registrations, newest first; the first is the one the call's callee endpoint was built for */
  targets: readonly Routed[];
  /** the caller sent CANCEL */
  isCancelled(): boolean;
  /** every fork's offer is made: the INVITEs go out now */
  signalling?(): void;
  /** a media server lost while forks ring and not back within this long ends the search (default DEFAULT_MEDIA_LOSS_GRACE_MS) */
  mediaLossGraceMs?: number;
  /** a registration the user makes while the forks ring joins them (late-registrations.ts); none: the set is fixed */
  late?: LateJoin;
  /** bindings that live on a connection: removed once a fork's answer proves it gone (flow-binding.ts) */
  flows?: FlowBoundRegistrations;
}

/** what a registration made while a party rings needs to join its fork set */
export interface LateJoin {
  events?: CallEventBus;
  /** registrations made at the other gateways sharing the store */
  elsewhere?: RegistrationsElsewhere;
  candidates(first: Routed): AsyncIterable<Routed>;
  /** one more registration from the fork budget of the call's source (none: unlimited) */
  take?(): ForkGrant;
  /** why a registration cannot join, if it cannot */
  refuses?(to: Routed): string | undefined;
  limited?(limit: 'per-source' | 'total' | 'per-call', contact: string): void;
}

export interface Fork extends ForkTarget {
  ep: KSdpEndpoint;
  /** made for this fork (the first fork of the built kind uses the call's endpoint for that side) */
  own: boolean;
}

/** what making the forks of one side of a call needs */
export interface ForkSide {
  call: Call;
  media: CallMedia;
  server: MediaConnection;
  /** the registrations, newest first; the first is the one the side's endpoint was built for */
  targets: readonly Routed[];
  side: Side;
}

/**
 * A call to a user rings every registration at once (FERRY_RING=all; docs/gateway.md, "A call",
 * step 2): each gets an offer from its own endpoint in the call's pipeline (WebRtcEndpoint for a
 * webphone, RtpEndpoint for a phone), the caller hears 180 once any rings, and the first to answer becomes
 * the callee leg: its endpoint is connected to the caller's, the caller is answered (srf createUAS). The
 * others are cancelled (ForkSet) and their endpoints released. Resolves with the two dialogs; throws
 * what the caller is to be told (the best failure, 487 after its CANCEL, 480 after FERRY_NO_ANSWER_MS).
 */
export async function ringAll(c: RingAllContext): Promise<{ uas: DialogLike; uac: DialogLike }> {
  const { call, media, server } = c;
  call.note('ring-all', c.targets.length === 1 ? '1 registration (one made while it rings joins)' : `${c.targets.length} registrations at once`);
  // when a phone calls and a webphone rings, the phone side is negotiated first (the media server gives
  // the browser the phone's codec): every fork is then offered that codec only
  let earlyAnswerA: string | undefined;
  if (c.caller.kind === 'rtp' && c.targets.some((t) => t.kind === 'webrtc')) {
    earlyAnswerA = await server.guard(media.answer('caller', restrictCodecs(c.req.body, [c.caller.codecs[0]!])));
  }
  const codecs = earlyAnswerA ? [c.caller.codecs[0]!] : c.caller.codecs;
  const release = (f: Fork): Promise<void> => releaseFork(media, f);
  // listening from before the offers are made: a REGISTER meanwhile is not missed
  // a webphone is offered the codec of a phone caller's side once that side is answered; with phones only
  // ringing it is not, and answering it now would tie the phones ringing to one codec: a webphone cannot join then
  const late = c.late ? lateRegistrations({ call, media, server }, {
    ...c.late,
    refuses: (to) => (to.kind === 'webrtc' && c.caller.kind === 'rtp' && !earlyAnswerA ? 'a webphone does not join a phone\'s call ringing phones only' : undefined),
  }, c.targets[0]!, codecs, '') : undefined;
  let forks: Fork[];
  try {
    forks = await prepareForks({ call, media, server, targets: c.targets, side: 'callee' }, codecs);
  } catch (err) {
    late?.stop();
    throw err;
  }
  if (c.isCancelled()) {
    late?.stop();
    await Promise.all(forks.map(release));
    throw Object.assign(new Error('cancelled'), { status: 487 });
  }

  c.signalling?.();
  let noAnswer = false;
  let timerStarted = false;
  let ringSent = false;
  const rung = new Set<Fork>();
  const set: ForkSet<Fork> = new ForkSet<Fork>(c.srf, forks, {
    sent: () => {
      if (timerStarted) return;
      timerStarted = true;
      // one ring time for the whole call, from the first INVITE
      call.addTimer(c.clock.setTimeout(() => {
        if (set.answered || call.isEnding) return;
        noAnswer = true;
        call.note('no-answer', `after ${c.noAnswerMs} ms`);
        if (!c.res.finalResponseSent) c.res.send(480, 'Temporarily Unavailable');
        set.cancelAll();
      }, c.noAnswerMs));
    },
    ringing: (f, status) => {
      if (!rung.has(f)) {
        rung.add(f);
        call.note('fork-ringing', `${status} ${f.to.uri}`);
        if (call.state === 'routing') call.setState('ringing', 'ringing', String(status));
        if (!call.isEnding) void call.persist();
      }
      // one 180 for the caller, whichever rings; no early media from a fork is passed on
      if (!ringSent && !c.res.finalResponseSent) {
        ringSent = true;
        c.res.send(180, 'Ringing');
      }
    },
    ended: async (f, end) => {
      await noteForkEnd(c.store, call, f, end, c.flows);
      // the record shows each registration's end while the call goes on (not once it ended: its backstop TTL stays)
      if (!call.isEnding) void call.persist();
      await release(f);
    },
    // an answer while the media server is unreachable cannot be carried (the caller gets 503): the others are not told it completed elsewhere
    answeredCancelHeaders: () => ({ Reason: server.isUp ? COMPLETED_ELSEWHERE : MEDIA_LOST_REASON }),
    globalFailure: (f, err) => {
      call.note('fork-global-failure', `${err.status} ${f.to.uri}: the other registrations are cancelled`);
      // the caller hears it at once, not once every other fork has answered its CANCEL
      if (!c.res.finalResponseSent) c.res.send(err.status!, err.reason);
    },
  }, { from: c.from, socket: c.req.socket });

  const onCancel = (cancel?: { get(name: string): string | undefined; has(name: string): boolean }): void => {
    if (set.answered) return;
    if (!c.res.finalResponseSent) c.res.send(487, 'Request Terminated');
    // the caller's Reason, if any, goes on to every fork (as srf's createB2BUA does)
    set.cancelAll(cancel?.has('Reason') ? { Reason: cancel.get('Reason')! } : {});
  };
  late?.attach(set);
  c.req.on('cancel', onCancel);
  // a CANCEL that came while the offers were made: nothing was sent yet, nothing will ring
  if (c.isCancelled()) onCancel();
  // the media server lost while forks ring: nobody's answer could be carried. Not back within the grace
  // (or back as a new session: the call's objects are gone), the caller gets 503 and every fork is
  // cancelled; a control-connection blip (back with the same session) changes nothing
  const graceMs = c.mediaLossGraceMs ?? DEFAULT_MEDIA_LOSS_GRACE_MS;
  let mediaLost = false;
  let lossTimer: ReturnType<Clock['setTimeout']> | undefined;
  const giveUp = (detail: string): void => {
    lossTimer?.cancel();
    lossTimer = undefined;
    if (set.answered || call.isEnding || mediaLost) return;
    mediaLost = true;
    call.note('media-lost', detail);
    if (!c.res.finalResponseSent) c.res.send(503, 'Service Unavailable', { headers: { 'Retry-After': String(MEDIA_LOST_RETRY_AFTER_S) } });
    set.cancelAll({ Reason: MEDIA_LOST_REASON });
  };
  const onLost = (): void => {
    lossTimer?.cancel();
    lossTimer = c.clock.setTimeout(() => {
      if (!server.isUp) giveUp(`media server unreachable for ${graceMs} ms while ringing`);
    }, graceMs);
  };
  const onRestored = (sameSession: boolean): void => {
    lossTimer?.cancel();
    lossTimer = undefined;
    if (!sameSession) giveUp('media server back as a new session while ringing: the call\'s media objects are gone');
  };
  server.on('lost', onLost);
  server.on('restored', onRestored);
  if (!server.isUp) onLost();
  try {
    const outcome = await set.outcome;
    if (!outcome.answered) {
      if (mediaLost) throw new MediaUnavailableError('media server lost while ringing');
      if (noAnswer) throw Object.assign(new Error('no answer'), { status: 480, reason: 'Temporarily Unavailable' });
      if (c.isCancelled()) throw Object.assign(new Error('cancelled'), { status: 487 });
      const chosen = outcome.global ?? bestFailure(outcome.failures.map((x) => ({ ...x.err, x })))?.x;
      throw chosen?.err ?? Object.assign(new Error('no registration answered'), { status: 480 });
    }
    return await answered(c, outcome.fork, outcome.dialog, earlyAnswerA);
  } finally {
    late?.stop();
    c.req.removeListener('cancel', onCancel as (...args: never[]) => void);
    server.off('lost', onLost);
    server.off('restored', onRestored);
    lossTimer?.cancel();
  }
}

/**
 * A fork over: its endpoint goes, unless it is the side's own (or the call's pipeline went already).
 * Given up at once while the media server is unreachable (kurento-client would wait its 20 s request
 * timeout, holding the call's end back): the endpoint goes with the pipeline, or went with the server.
 */
export function releaseFork(media: CallMedia, f: Fork): Promise<void> {
  return f.own && !media.isReleased ? media.connection.guard(media.releaseEndpoint(f.ep)).catch(() => undefined) : Promise.resolve();
}

/**
 * Listens for registrations `first`'s user makes while its registrations ring (LateRegistrations): each gets an
 * endpoint of its own and an offer with `codecs`, and joins the set once it is attached (timeline entries
 * prefixed `label`). `stop()` once the ring is over.
 */
export function lateRegistrations(fs: Pick<ForkSide, 'call' | 'media' | 'server'>, join: LateJoin, first: Routed, codecs: readonly string[], label: string): LateRegistrations {
  const { call, media, server } = fs;
  return new LateRegistrations({
    ...(join.events ? { events: join.events } : {}),
    ...(join.elsewhere ? { elsewhere: join.elsewhere } : {}),
    candidates: join.candidates,
    maxForks: MAX_FORKS,
    first,
    call,
    label,
    prepare: async (to) => {
      call.note('fork', `${label}${to.uri} (${to.kind})`);
      const ep = await server.guard(media.createEndpoint(to.kind));
      try {
        return { to, ep, own: true, offer: await server.guard(media.offerFrom(ep, to.kind, codecs)) };
      } catch (err) {
        await media.releaseEndpoint(ep).catch(() => undefined);
        throw err;
      }
    },
    release: (f) => releaseFork(media, f),
    ...(join.take ? { take: join.take } : {}),
    ...(join.refuses ? { refuses: join.refuses } : {}),
    ...(join.limited ? { limited: join.limited } : {}),
  });
}

/** an endpoint and an offer for every registration, made together; none is left behind if one fails */
export async function prepareForks(c: ForkSide, codecs: readonly string[]): Promise<Fork[]> {
  const { media, server, side } = c;
  const made = await Promise.allSettled(c.targets.map(async (to, i): Promise<Fork> => {
    c.call.note('fork', `${side === 'caller' ? 'caller: ' : ''}${to.uri} (${to.kind})`);
    if (i === 0 && media.kinds[side] === to.kind) return { to, ep: media[side], own: false, offer: await server.guard(media.offer(side, codecs)) };
    const ep = await server.guard(media.createEndpoint(to.kind));
    try {
      return { to, ep, own: true, offer: await server.guard(media.offerFrom(ep, to.kind, codecs)) };
    } catch (err) {
      await media.releaseEndpoint(ep);
      throw err;
    }
  }));
  const failed = made.find((m): m is PromiseRejectedResult => m.status === 'rejected');
  const forks = made.filter((m): m is PromiseFulfilledResult<Fork> => m.status === 'fulfilled').map((m) => m.value);
  if (failed) {
    await Promise.all(forks.filter((f) => f.own).map((f) => media.releaseEndpoint(f.ep)));
    throw failed.reason;
  }
  return forks;
}

/** the timeline entry of a fork that did not win; a dead registration is forgotten as for one tried alone */
export async function noteForkEnd(store: Pick<StateStore, 'removeRegistration'>, call: Call, f: Fork, end: ForkEnd, flows?: FlowBoundRegistrations): Promise<void> {
  if (end.kind === 'late-answer') {
    call.note('fork-late-answer', `${f.to.uri}: ACKed and hung up`);
    return;
  }
  const what = end.err.status ? `${end.err.status} ${end.err.reason ?? ''}`.trim() : String(end.err.message ?? 'not sent');
  call.note(end.kind === 'cancelled' ? 'fork-cancelled' : 'fork-failed', `${f.to.uri}: ${what}`);
  // a registration nothing could reach (410, no status) is forgotten; 503/408 are noted and kept
  if (end.kind === 'failed') await movesToNextRegistration(store, f.to, end.err, call, flows);
}

/**
 * The registration that answered serves `side`: its endpoint, when it is not the side's own, is connected
 * to the other side's and takes the side's place (the one the call was built with is released).
 */
export async function takeSide(c: Omit<ForkSide, 'targets'>, f: Fork): Promise<void> {
  const { call, media, server, side } = c;
  if (f.ep === media[side]) return;
  await server.guard(media.connectTo(side === 'caller' ? 'callee' : 'caller', f.ep));
  await server.guard(media.replaceEndpoint(side, f.ep, f.to.kind));
  call.record.media = { ...call.record.media, ...media.ids };
  call.note(`${side}-endpoint-replaced`, `${f.to.kind} ${f.ep.id}`);
}

/** the registrations a party is rung at: `first`, then the user's others, newest first, at most MAX_FORKS */
export async function registrationsOf(candidates: AsyncIterable<Routed>): Promise<Routed[]> {
  const all: Routed[] = [];
  for await (const to of candidates) {
    all.push(to);
    if (all.length >= MAX_FORKS) break;
  }
  return all;
}

/** the first fork that answered becomes the callee leg; the caller is answered */
async function answered(c: RingAllContext, f: Fork, dialog: DialogLike, earlyAnswerA: string | undefined): Promise<{ uas: DialogLike; uac: DialogLike }> {
  const { call, media, server } = c;
  const record = call.record;
  try {
    const source = (dialog as unknown as { res?: { source_address?: string } }).res?.source_address;
    record.callee = { uri: f.to.uri, kind: f.to.kind, party: f.to.party, ...(source ? { sipSource: source } : {}) };
    call.note('fork-answered', `${f.to.uri} (${f.to.kind})`);
    if (c.isCancelled() || call.isEnding) throw Object.assign(new Error('cancelled'), { status: 487 });
    const sdpB = dialog.remote.sdp;
    // the callee's answer is held to the same rules: media is never aimed where an offer may not aim it
    const check = validateSdp(sdpB, { source: source ?? '', loopbackMedia: c.loopbackMedia ?? 'from-loopback' });
    if (!check.ok) {
      countSdpRejection(check.problem);
      call.note('sdp-refused', `callee answer: ${check.problem}`);
      throw new SdpError(`the called party's answer was refused: ${check.detail.replace(/[^\x20-\x7e]/g, '?')}`);
    }
    await server.guard(media.acceptAnswerOn(f.ep, sdpB));
    // the answering registration's endpoint serves the callee leg; the one the call was built with goes
    await takeSide({ call, media, server, side: 'callee' }, f);
    record.media = { ...record.media, ...media.ids };
    const codec = chosenCodec(sdpB);
    call.note('callee-answered', `codec ${codec}`);
    void call.persist();
    const sdpA = earlyAnswerA ?? (await server.guard(media.answer('caller', restrictCodecs(c.req.body, [codec]))));
    if (c.isCancelled() || call.isEnding) throw Object.assign(new Error('cancelled'), { status: 487 });
    // in-dialog requests from the callee wait until the caller's ACK (as srf's createB2BUA does)
    const queued = dialog as unknown as { queueRequests: boolean };
    queued.queueRequests = true;
    const uas = (await c.srf.createUAS(c.req as never, c.res as never, { localSdp: sdpA }).catch((err: Error) => {
      // the caller's CANCEL crossed our 200: ferry sip answered the INVITE 487 itself and refuses the 200 (srf,
      // having sent it, hands us no 'cancel' event); the caller cancelled, the registration is hung up below
      if (/transaction not found or already completed/.test(String((err as { message?: unknown } | undefined)?.message ?? err))) {
        call.note('cancel', 'from caller, crossing the answer');
        throw Object.assign(new Error('cancelled'), { status: 487, reason: 'Request Terminated', callerCancelled: true });
      }
      throw err;
    })) as unknown as DialogLike;
    uas.once('ack', () => {
      queued.queueRequests = false;
    });
    return { uas, uac: dialog };
  } catch (err) {
    (dialog as unknown as { queueRequests: boolean }).queueRequests = false;
    await dialog.destroy({ headers: { Reason: 'SIP;cause=200;text="failed"' } }).catch(() => undefined);
    throw err;
  }
}

export { COMPLETED_ELSEWHERE };
