import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type Srf from 'drachtio-srf';
import { Clock } from '../../common/clock';
import { LogThrottle } from '../../common/log-throttle';
import { Logger } from '../../common/logger';
import { SipConfig } from '../config/sip-config';
import { CallMedia } from '../kurento/call-media';
import { MediaUnavailableError } from '../kurento/media-connection';
import type { MediaServerSet } from '../media-servers/media-server-set';
import { isMediaOverloaded } from '../kurento/media-refusal';
import { SipAuthenticator } from '../registrar/sip-authenticator';
import { CallRecord, LegKind } from '../state/call-record';
import { StateStore } from '../state/state-store';
import { CallEventBus } from '../events/call-events';
import { ReplacingCaller } from '../transfer/transfer-service';
import { Call } from './call';
import { CallRegistry } from './call-registry';
import { CallRouter, Routed } from './call-router';
import { identifyCaller } from './caller-identity';
import { DialogLike } from './dialog-like';
import { EndReason, reasonForStatus } from './end-reason';
import { chosenCodec, g711Codecs, isWebRtc, requireUsableSdes, restrictCodecs, SdpError } from './sdp-rewriter';
import { countSdpRejection, LoopbackMediaRule, sdpWarning, validateSdp } from './sdp-validator';
import { movesToNextRegistration } from '../registrar/stale-binding';
import type { FlowBoundRegistrations } from '../registrar/flow-binding';
import type { RingMode } from '../config/gateway-config';
import { registrationsOf, ringAll } from './fork-call';
import type { ForkBudget, ForkGrant } from './fork-budget';
import type { RegistrationsElsewhere } from '../registrar/registrations-elsewhere';

export interface InviteHandlerDeps {
  srf: Srf;
  config: SipConfig;
  store: StateStore;
  /** every media server; each new call is placed on one of them (docs/gateway.md, "Several media servers") */
  media: MediaServerSet;
  router: CallRouter;
  auth: SipAuthenticator;
  registry: CallRegistry;
  clock: Clock;
  log: Logger;
  instanceId: string;
  noAnswerMs: number;
  endedRecordTtlMs: number;
  onEnded: (record: CallRecord) => void;
  /**
   * A call was created: caller identified (after any digest challenge), number routed. Called once per
   * call — the challenged INVITE and its authenticated retry are one call (ferry_calls_started_total).
   */
  onStarted: (record: CallRecord) => void;
  /** loopback media targets in SDP (FERRY_ALLOW_LOOPBACK_MEDIA); default from-loopback */
  loopbackMedia?: LoopbackMediaRule;
  /** the gateway's call event bus (each call publishes its events on it) */
  events?: CallEventBus;
  /** registrations made at the other gateways sharing the store: a user's ringing call joins them too */
  elsewhere?: RegistrationsElsewhere;
  /** an INVITE with a Replaces header, once its caller is identified and its SDP checked (transfer core) */
  replacingInvite?: (req: SrfReq, res: SrfRes, caller: ReplacingCaller) => Promise<void>;
  /**
   * a user with several registrations (FERRY_RING): `all` rings them all at once (fork-call.ts),
   * `newest` (also when unset) one at a time, newest first
   */
  ring?: RingMode;
  /** bindings that live on a connection: removed once a request proves it gone (flow-binding.ts) */
  flows?: FlowBoundRegistrations;
  /** FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS: a media server lost while a user's registrations ring and not back within it ends the call */
  mediaLossGraceMs?: number;
  /** FERRY_RING_MAX_FORKS_PER_SOURCE / FERRY_RING_MAX_FORKS: registrations rung beyond each call's first, per caller source and in all */
  forkBudget?: ForkBudget;
}

type SrfReq = Srf.SrfRequest & { protocol?: string; source_address: string; source_port: number; body: string; uri: string; callingNumber?: string; callingName?: string };
interface SrfRes {
  finalResponseSent?: boolean;
  send(status: number, reason?: string | { headers?: Record<string, string>; body?: string }, opts?: { headers?: Record<string, string>; body?: string }): void;
}

/** Retry-After (seconds) on the 503 a new call gets while no media server is available (unreachable or draining) */
const MEDIA_DOWN_RETRY_AFTER_S = 5;
/** Retry-After (seconds) on the 503 a new call gets while the media server refuses it for its quotas */
const MEDIA_FULL_RETRY_AFTER_S = 5;

/**
 * srf's createB2BUA relays the caller's CANCEL and UPDATE to the INVITE it sent (listeners on the
 * caller's request); after a try that failed they are removed, so they do not act for the next try's
 * INVITE. Returns the remover.
 */
function srfRelaysAdded(req: SrfReq): () => void {
  // drachtio-srf's Request is an EventEmitter
  const emitter = req as unknown as EventEmitter;
  const events = ['cancel', 'update'] as const;
  const before = new Map(events.map((ev) => [ev, new Set(emitter.listeners(ev))]));
  return () => {
    for (const ev of events) for (const l of emitter.listeners(ev)) if (!before.get(ev)!.has(l)) emitter.removeListener(ev, l as (...args: unknown[]) => void);
  };
}

function userOf(uri: string | undefined): string | undefined {
  return uri ? /^sips?:([^@;>]+)@/.exec(uri)?.[1] : undefined;
}

/**
 * New INVITEs: authenticate the caller (digest for users, source address for trunks), route the
 * dialled number, build the pipeline, then bridge the two dialogs with srf.createB2BUA: the callee
 * gets our endpoint's offer, the caller gets our endpoint's answer once the callee answered, so
 * both legs share the callee's chosen G.711 codec. Failures map both ways.
 */
export class InviteHandler {
  /** a refused SDP comes before authentication: one line per source address per 10 s (all are counted in /metrics) */
  private readonly sdpRefusalLog: LogThrottle;
  /** a call ringing fewer registrations at once than the user has: one line per limit per 10 s */
  private readonly forkLimitLog: LogThrottle;

  constructor(private readonly d: InviteHandlerDeps) {
    this.sdpRefusalLog = new LogThrottle(10_000, () => d.clock.now());
    this.forkLimitLog = new LogThrottle(10_000, () => d.clock.now());
  }

  private logForkLimit(source: string | undefined, limit: string, wanted: number, rung: number, callId: string): void {
    const logged = this.forkLimitLog.admit(limit);
    if (logged) this.d.log.warn('ring-all limited', { callId, src_ip: source, limit, registrations: wanted, atOnce: rung, suppressed: logged.suppressed });
  }

  /** 503 + Retry-After, and a Warning naming why (every media server unreachable or draining) */
  private refuseNoMedia(res: SrfRes, detail: string, caller: string, dialled: string): void {
    this.d.log.warn('call refused: no media server available', { caller, dialled, detail, mediaServers: this.d.media.describe().map((m) => `${m.url} ${m.up ? 'up' : 'down'}${m.draining ? ' draining' : ''}`) });
    res.send(503, 'Service Unavailable', { headers: { 'Retry-After': String(MEDIA_DOWN_RETRY_AFTER_S), Warning: `399 ferry "${detail}"` } });
  }

  async handle(req: SrfReq, res: SrfRes): Promise<void> {
    const { d } = this;
    // hostile or oversized SDP is refused before anything is authenticated, created or stored
    if (req.body) {
      const sdp = validateSdp(req.body, { source: req.source_address, loopbackMedia: d.loopbackMedia ?? 'from-loopback' });
      if (!sdp.ok) {
        countSdpRejection(sdp.problem);
        const logged = this.sdpRefusalLog.admit(String(req.source_address));
        if (logged) d.log.warn('sdp refused', { callId: req.get('Call-ID'), source: req.source_address, problem: sdp.problem, suppressed: logged.suppressed });
        res.send(488, 'Not Acceptable Here', { headers: { Warning: sdpWarning(sdp.detail) } });
        return;
      }
    }
    const transport = String(req.protocol ?? 'udp').toLowerCase();
    const caller = await identifyCaller(
      {
        uri: req.uri,
        transport,
        source: req.source_address,
        sourcePort: req.source_port,
        proxyAuthorization: req.get('Proxy-Authorization'),
        fromUser: userOf((req.getParsedHeader('From') as { uri?: string } | undefined)?.uri),
      },
      d.config,
      d.router,
      d.auth,
    );
    if (!caller.ok) {
      res.send(caller.status, caller.reason, { headers: caller.headers });
      return;
    }
    const { party: callerParty, uri: callerUri, fromHeader } = caller;

    const dialled = userOf(req.uri) ?? '';
    const available = d.media.canPlace();
    if (!available.ok) {
      // no media server to build the call on: refuse at once, the caller may retry (RFC 3261 21.5.4)
      this.refuseNoMedia(res, available.detail, callerParty, dialled);
      return;
    }
    if (!req.body || !/^v=0/.test(req.body)) {
      res.send(488, 'Not Acceptable Here', { headers: { Warning: '399 ferry "an SDP offer is required in the INVITE"' } });
      return;
    }
    let callerKind: LegKind;
    let callerCodecs: string[];
    try {
      callerKind = isWebRtc(req.body) ? 'webrtc' : 'rtp';
      if (callerKind === 'rtp') requireUsableSdes(req.body);
      callerCodecs = g711Codecs(req.body);
    } catch (err) {
      res.send(488, 'Not Acceptable Here', { headers: { Warning: `399 ferry "${(err as Error).message.replace(/"/g, "'")}"` } });
      return;
    }
    if (callerCodecs.length === 0) {
      res.send(488, 'Not Acceptable Here', { headers: { Warning: '399 ferry "no G.711 codec (PCMU/PCMA) offered"' } });
      return;
    }

    if (req.has('Replaces')) {
      // RFC 3891: this caller takes the place of a party in a call we hold (attended transfer)
      if (!d.replacingInvite) res.send(420, 'Bad Extension', { headers: { Unsupported: 'replaces' } });
      else await d.replacingInvite(req, res, { party: callerParty, uri: callerUri, kind: callerKind, codecs: callerCodecs, ...(req.source_address ? { source: req.source_address } : {}) });
      return;
    }
    const target = await d.router.route(dialled);
    if (!target.ok) {
      d.log.info('call not routed', { dialled, status: target.status });
      res.send(target.status, target.reason);
      return;
    }
    // FERRY_RING=all: a user's registrations (newest first, at most MAX_FORKS) ring at once, an only one as a set of one
    // (a store that cannot list them now: the call goes the one-at-a-time way, which reads them as it goes)
    let forks = d.ring === 'all' && target.user ? await registrationsOf(d.router.candidates(target)).catch(() => []) : [];

    // the media server this call's pipeline goes on; every later request of the call goes there too
    const placed = d.media.place();
    if (!placed.ok) {
      this.refuseNoMedia(res, placed.detail, callerParty, dialled);
      return;
    }
    const record: CallRecord = {
      id: randomUUID(),
      state: 'routing',
      createdAt: d.clock.now(),
      caller: { uri: callerUri, kind: callerKind, party: callerParty, ...(req.source_address ? { sipSource: req.source_address } : {}) },
      callee: { uri: target.uri, kind: target.kind, party: target.party },
      media: { mediaUrl: placed.url },
      owner: d.instanceId,
      ...(target.record ? { record: true } : {}),
      timeline: [],
    };
    const call = new Call(record, { store: d.store, clock: d.clock, log: d.log, endedRecordTtlMs: d.endedRecordTtlMs, loopbackMedia: d.loopbackMedia, events: d.events });
    d.registry.add(call);
    d.onStarted(record);
    call.once('ended', (r) => d.onEnded(r));
    // every registration rung beyond the first holds an endpoint while the call rings: within the caller source's budget and the gateway's
    let grant: ForkGrant | undefined;
    // a user's only registration rings as a set of one: a registration the user makes while it rings joins it
    // (a call cut to one registration by the budget goes one at a time, as the budget has nothing left for a join)
    let ringAsSet = forks.length >= 1;
    if (forks.length > 1 && d.forkBudget) {
      grant = d.forkBudget.take(String(req.source_address ?? ''), forks.length - 1);
      const held = grant;
      call.once('ended', () => held.release());
      if (grant.extra < forks.length - 1) {
        call.note('ring-all-limited', `${grant.extra + 1} of ${forks.length} registrations at once (${grant.cutBy} limit)`);
        this.logForkLimit(req.source_address, grant.cutBy ?? 'total', forks.length, grant.extra + 1, record.id);
        forks = forks.slice(0, grant.extra + 1);
        ringAsSet = forks.length > 1;
      }
    }
    call.note('invite', `${callerParty} (${callerKind}/${transport}) -> ${dialled} => ${target.party} (${target.kind})`);
    await call.persist();

    let cancelled = false;
    let noAnswer = false;
    let noAnswerTimer = false;
    let phase: 'media' | 'signalling' = 'media';
    req.on('cancel', () => {
      cancelled = true;
      call.note('cancel', 'from caller');
    });

    try {
      // every media request below is given up at once if the media server is lost meanwhile
      const server = placed.conn;
      const building = CallMedia.build(server, { caller: callerKind, callee: target.kind }, call.log, d.clock);
      const media = await server.guard(building).catch((err: unknown) => {
        // abandoned: should the pipeline still appear (a blip), it is released, not leaked
        if (err instanceof MediaUnavailableError) void building.then((m) => m.release(), () => undefined);
        throw err;
      });
      call.attachMedia(media);
      call.note('media-created', media.ids.pipelineId);
      await call.persist();
      if (cancelled) throw Object.assign(new Error('cancelled'), { status: 487 });
      // the media server answers a browser with the codec its RTP side negotiated (no transcoding):
      // when a phone calls a browser, the phone side is negotiated first (once) and the browser, and
      // any registration tried after it, is offered that codec only
      let earlyAnswerA: string | undefined;
      let offerB: string | undefined;
      const offerFor = async (kind: LegKind): Promise<string> => {
        if (await server.guard(media.switchKind('callee', kind))) {
          offerB = undefined;
          record.media = { ...record.media, ...media.ids };
          call.note('callee-endpoint-replaced', `${kind} ${media.ids.calleeEndpointId}`);
        }
        if (callerKind === 'rtp' && kind === 'webrtc' && !earlyAnswerA) {
          earlyAnswerA = await server.guard(media.answer('caller', restrictCodecs(req.body, [callerCodecs[0]!])));
        }
        // an offer not answered yet serves the next registration of the same kind as well
        offerB ??= await server.guard(media.offer('callee', earlyAnswerA ? [callerCodecs[0]!] : callerCodecs));
        return offerB;
      };
      let uacReq: { cancel: () => void } | undefined;
      /** one try: INVITE `to` with `offer`, bridged to the caller once it answers */
      const bridge = (to: Routed, offer: string): Promise<{ uas: DialogLike; uac: DialogLike }> => d.srf.createB2BUA(req, res as unknown as Srf.SrfResponse, to.uri, {
        localSdpB: offer,
        localSdpA: async (sdpB: string, resB?: { source_address?: string }) => {
          // the callee's answer is held to the same rules: media is never aimed where an offer may not aim it
          if (resB?.source_address) record.callee.sipSource = resB.source_address;
          const answerCheck = validateSdp(sdpB, { source: resB?.source_address ?? '', loopbackMedia: d.loopbackMedia ?? 'from-loopback' });
          if (!answerCheck.ok) {
            countSdpRejection(answerCheck.problem);
            call.note('sdp-refused', `callee answer: ${answerCheck.problem}`);
            throw new SdpError(`the called party's answer was refused: ${answerCheck.detail.replace(/[^\x20-\x7e]/g, '?')}`);
          }
          await server.guard(media.acceptAnswer('callee', sdpB));
          const codec = chosenCodec(sdpB);
          call.note('callee-answered', `codec ${codec}`);
          return earlyAnswerA ?? server.guard(media.answer('caller', restrictCodecs(req.body, [codec])));
        },
        headers: { From: fromHeader },
        ...(to.nextHop ? { proxy: to.nextHop } : {}),
        // a PBX that challenges our INVITE gets its trunk's credentials (srf answers the 401/407)
        ...(to.trunk?.outboundAuth ? { auth: { username: to.trunk.outboundAuth.username, password: to.trunk.outboundAuth.password } } : {}),
        proxyRequestHeaders: [],
        proxyResponseHeaders: [],
        // the callee's failure is answered below, not by srf: the gateway knows better than to pass on
        // a 410 from a gone binding or a 503 from a user it cannot reach (480 for both), and a user's
        // next registration may still answer
        passFailure: false,
        passProvisionalResponses: false,
      } as unknown as Srf.CreateB2BUAOptions, {
        cbRequest: (err: unknown, r: unknown) => {
          if (err || !r) return;
          uacReq = r as { cancel: () => void };
          // a CANCEL that came while this INVITE was being sent had nothing to cancel yet
          if (cancelled) uacReq.cancel();
          if (noAnswerTimer) return;
          // one no-answer time for the whole call, however many registrations are tried
          noAnswerTimer = true;
          call.addTimer(d.clock.setTimeout(() => {
            if (call.state === 'answered' || call.isEnding) return;
            noAnswer = true;
            call.note('no-answer', `after ${d.noAnswerMs} ms`);
            // tell the caller first (480, not the 487 the callee will send back), then cancel the callee
            if (!res.finalResponseSent) res.send(480, 'Temporarily Unavailable');
            uacReq?.cancel();
          }, d.noAnswerMs));
        },
        cbProvisional: (p: unknown) => {
          const pr = p as { status: number; reason: string };
          if (pr.status === 180 || pr.status === 183) {
            if (call.state === 'routing') {
              call.setState('ringing', 'ringing', String(pr.status));
              void call.persist();
            }
            if (!res.finalResponseSent) res.send(pr.status === 183 ? 183 : 180, pr.reason);
          }
        },
      } as never) as unknown as Promise<{ uas: DialogLike; uac: DialogLike }>;

      if (ringAsSet) {
        const both = await ringAll({
          srf: d.srf, store: d.store, clock: d.clock, noAnswerMs: d.noAnswerMs, loopbackMedia: d.loopbackMedia,
          ...(d.flows ? { flows: d.flows } : {}),
          req: req as unknown as Parameters<typeof ringAll>[0]['req'], res, call, media, server,
          caller: { kind: callerKind, codecs: callerCodecs }, from: fromHeader, targets: forks,
          isCancelled: () => cancelled,
          ...(d.mediaLossGraceMs !== undefined ? { mediaLossGraceMs: d.mediaLossGraceMs } : {}),
          // a registration the user makes while these ring joins them, within the caller source's budget
          late: {
            ...(d.events ? { events: d.events } : {}),
            ...(d.elsewhere ? { elsewhere: d.elsewhere } : {}),
            candidates: (first) => d.router.candidates(first),
            ...(d.forkBudget ? { take: () => d.forkBudget!.take(String(req.source_address ?? ''), 1) } : {}),
            limited: (limit) => {
              if (limit !== 'per-call') this.logForkLimit(req.source_address, limit, forks.length + 1, forks.length, record.id);
            },
          },
          signalling: () => {
            phase = 'signalling';
          },
        }).finally(() => grant?.release());
        call.connect(both.uas, both.uac);
        if (cancelled || call.isEnding) void call.end('sip-cancel', 'caller');
        return;
      }
      // a registered user's registrations one at a time, newest first, until one answers (docs/gateway.md, "A call", step 2)
      let bridged: { uas: DialogLike; uac: DialogLike } | undefined;
      let failure: unknown;
      for await (const to of d.router.candidates(target)) {
        if (to !== target) {
          call.note('next-registration', `${to.uri} (${to.kind})`);
          record.callee = { uri: to.uri, kind: to.kind, party: to.party };
          void call.persist();
        }
        phase = 'media';
        const offer = await offerFor(to.kind);
        if (cancelled) throw Object.assign(new Error('cancelled'), { status: 487 });
        if (noAnswer) throw failure ?? Object.assign(new Error('no answer'), { status: 480 });
        phase = 'signalling';
        const dropRelays = srfRelaysAdded(req);
        try {
          bridged = await bridge(to, offer);
          break;
        } catch (err) {
          uacReq = undefined;
          dropRelays();
          const e = err as { status?: number; reason?: string };
          const atCallee = !(err instanceof SdpError) && !(err instanceof MediaUnavailableError) && !isMediaOverloaded(err);
          const next = atCallee && (await movesToNextRegistration(d.store, to, e, call, d.flows));
          if (!next || cancelled || noAnswer || res.finalResponseSent) throw err;
          failure = err;
        }
      }
      if (!bridged) throw failure;
      call.connect(bridged.uas, bridged.uac);
      if (cancelled || call.isEnding) void call.end('sip-cancel', 'caller');
    } catch (err) {
      const e = err as { status?: number; reason?: string; message?: string; callerCancelled?: boolean };
      // a CANCEL that crossed the answer of one of the registrations rung at once (fork-call.ts)
      if (e.callerCancelled) cancelled = true;
      let reason: EndReason;
      const mediaLost = err instanceof MediaUnavailableError;
      // the media server is up but full (its quotas): the caller may retry, as when it is unreachable
      const mediaFull = !mediaLost && isMediaOverloaded(err);
      // the callee could not even be reached: the request could not be sent (no status), or the SIP
      // stack answered for it, as drachtio-server's does (410 Gone: the connection a webphone registered
      // over has closed; 503: nothing can carry it); a registered user then gets 480, a trunk's 503 is
      // passed on (docs/gateway.md, "A call", step 2)
      const signalling = phase === 'signalling' && !(err instanceof SdpError) && !mediaLost && !mediaFull;
      const unreachable = signalling && (!e.status || e.status === 410 || (e.status === 503 && !!target.user));
      if (cancelled) reason = 'sip-cancel';
      else if (noAnswer) reason = 'no-answer';
      else if (mediaLost) reason = 'media-lost';
      else if (mediaFull) reason = 'media-overloaded';
      else if (unreachable) reason = 'unavailable';
      else if (e.status) reason = reasonForStatus(e.status);
      else reason = err instanceof SdpError ? 'failed' : 'media-error';
      call.note('failed', e.status ? `${e.status} ${e.reason ?? ''}`.trim() : String(e.message ?? err));
      if (mediaFull) d.log.warn('call refused: media server full', { callId: record.id, caller: callerParty, dialled, detail: String(e.message ?? err) });
      if (!res.finalResponseSent) {
        try {
          if (mediaLost) res.send(503, 'Service Unavailable', { headers: { 'Retry-After': String(MEDIA_DOWN_RETRY_AFTER_S) } });
          else if (mediaFull) res.send(503, 'Service Unavailable', { headers: { 'Retry-After': String(MEDIA_FULL_RETRY_AFTER_S), Warning: '399 ferry "media server full"' } });
          else if (noAnswer || unreachable) res.send(480, 'Temporarily Unavailable');
          else if (err instanceof SdpError) res.send(488, 'Not Acceptable Here', { headers: { Warning: `399 ferry "${err.message.replace(/"/g, "'").slice(0, 200)}"` } });
          else if (e.status && e.status >= 300) res.send(e.status, e.reason);
          else res.send(500);
        } catch {
          /* the caller's transaction is gone */
        }
      }
      await call.end(reason, cancelled ? 'caller' : 'callee');
    }
  }
}
