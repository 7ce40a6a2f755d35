import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { EndReason, isEndReason } from '../calls/end-reason';
import { LegKind } from '../state/call-record';
import { g711Codecs, restrictCodecs, SdpError, withCandidates } from '../calls/sdp-rewriter';
import { guardErrors, MediaConnection } from './media-connection';
import { KEventData, KMediaPipeline, KSdpEndpoint, KWebRtcEndpoint } from './kurento-types';
import { kurentoCall } from './kurento-call';

export type Side = 'caller' | 'callee';

/** how long a call's end waits for the media server to confirm its pipeline's release */
const RELEASE_WAIT_MS = 2000;
/** how long an offer/answer of a WebRTC endpoint waits for IceGatheringDone before it goes out with the candidates it has */
const GATHER_WAIT_MS = 3000;

export interface CallMediaEvents {
  ended: [reason: EndReason, side: Side, detail: string];
  /** the leg of the party being transferred away ended (its phone's RTCP BYE, silence): the call goes on */
  'leaving-ended': [reason: EndReason, side: Side, detail: string];
}

/**
 * One call's media: a pipeline with one endpoint per leg (WebRtcEndpoint for a browser,
 * RtpEndpoint for a phone), connected both ways. Turns the media server's end events
 * (MediaSessionTerminated, MediaStateChanged -> DISCONNECTED, with ferry media's `reason`) into
 * one `ended` event. `release()` is idempotent. Every object is on one media server (`connection`,
 * the one the call was placed on): each request that may wait on it is given up at once when that
 * server is lost (MediaConnection.guard), whatever the state of the other media servers.
 */
export class CallMedia extends EventEmitter<CallMediaEvents> {
  private released = false;
  private endedEmitted = false;
  /** Transfer: the side whose party is being transferred away; its leg's end does not end the call */
  leavingSide: Side | undefined;

  /** how to stop listening to each endpoint's end events (a transfer swaps a leg's endpoint) */
  private readonly unwatch = new Map<KSdpEndpoint, () => void>();

  private constructor(
    readonly pipeline: KMediaPipeline,
    /** each leg's endpoint: a transfer replaces one (replaceEndpoint) */
    public caller: KSdpEndpoint,
    public callee: KSdpEndpoint,
    readonly kinds: { caller: LegKind; callee: LegKind },
    private readonly log: Logger,
    private readonly conn: MediaConnection,
    private readonly clock: Clock,
  ) {
    super();
    this.watch(caller, 'caller');
    this.watch(callee, 'callee');
  }

  static async build(conn: MediaConnection, kinds: { caller: LegKind; callee: LegKind }, log: Logger, clock: Clock): Promise<CallMedia> {
    const pipeline = await conn.createPipeline();
    try {
      const mk = async (k: LegKind): Promise<KSdpEndpoint> => {
        const ep = await pipeline.create(k === 'webrtc' ? 'WebRtcEndpoint' : 'RtpEndpoint');
        guardErrors(ep, (err) => log.warn('endpoint error', { endpointId: ep.id, err: err?.message }));
        return ep;
      };
      // independent requests go out together: two round trips to the media server instead of four
      const [caller, callee] = await Promise.all([mk(kinds.caller), mk(kinds.callee)]);
      await Promise.all([kurentoCall<void>((cb) => caller.connect(callee, cb)), kurentoCall<void>((cb) => callee.connect(caller, cb))]);
      return new CallMedia(pipeline, caller, callee, kinds, log, conn, clock);
    } catch (err) {
      // callback form: a failed release is logged here, not traced on the console by kurento-client
      await kurentoCall<void>((cb) => void pipeline.release(cb)).catch((releaseErr: Error) =>
        log.warn('pipeline release after a failed call set-up failed', { pipelineId: pipeline.id, err: releaseErr.message }));
      throw err;
    }
  }

  /**
   * re-attach to the objects of a call another gateway created (adoption), on the media server the
   * call's record names (`mediaUrl`; without it, the one `conn` finds for the pipeline)
   */
  static async attach(source: MediaConnection, ids: { pipelineId: string; callerEndpointId: string; calleeEndpointId: string; mediaUrl?: string }, kinds: { caller: LegKind; callee: LegKind }, log: Logger, clock: Clock): Promise<CallMedia> {
    const conn = await source.connectionFor(ids.mediaUrl, ids.pipelineId);
    const pipeline = await conn.byId<KMediaPipeline>(ids.pipelineId);
    const caller = await conn.byId<KSdpEndpoint>(ids.callerEndpointId);
    const callee = await conn.byId<KSdpEndpoint>(ids.calleeEndpointId);
    return new CallMedia(pipeline, caller, callee, kinds, log, conn, clock);
  }

  /** the connection to the media server this call's pipeline is on: every request of the call goes there */
  get connection(): MediaConnection {
    return this.conn;
  }

  get ids(): { pipelineId: string; callerEndpointId: string; calleeEndpointId: string } {
    return { pipelineId: this.pipeline.id, callerEndpointId: this.caller.id, calleeEndpointId: this.callee.id };
  }

  private endpoint(side: Side): KSdpEndpoint {
    return side === 'caller' ? this.caller : this.callee;
  }

  /** an offer from our endpoint for `side`, restricted to `codecs` (G.711) + telephone-event */
  async offer(side: Side, codecs: readonly string[]): Promise<string> {
    return this.offerFrom(this.endpoint(side), this.kinds[side], codecs, side);
  }

  /** Transfer: a new endpoint for a new party in this call's pipeline (not connected yet). */
  async createEndpoint(kind: LegKind): Promise<KSdpEndpoint> {
    const ep = await this.conn.guard(this.pipeline.create(kind === 'webrtc' ? 'WebRtcEndpoint' : 'RtpEndpoint'));
    guardErrors(ep, (err) => this.log.warn('endpoint error', { endpointId: ep.id, err: err?.message }));
    return ep;
  }

  /** an offer from any endpoint of this pipeline (a transfer's new one), restricted to `codecs` */
  async offerFrom(ep: KSdpEndpoint, kind: LegKind, codecs: readonly string[], side: Side | 'new' = 'new'): Promise<string> {
    const sdp = await this.conn.guard(this.withGathering(ep, kind, () => kurentoCall<string>((cb) => ep.generateOffer(cb))));
    const offer = restrictCodecs(sdp, codecs);
    this.log.debug('offer', { side, generated: sdp, sent: offer });
    return offer;
  }

  /** our endpoint for `side` answers the peer's offer */
  async answer(side: Side, offer: string): Promise<string> {
    return this.answerOn(this.endpoint(side), this.kinds[side], offer, side);
  }

  /** any endpoint of this pipeline (a transfer's new one) answers the peer's offer */
  async answerOn(ep: KSdpEndpoint, kind: LegKind, offer: string, side: Side | 'new' = 'new'): Promise<string> {
    const answer = await this.conn.guard(this.withGathering(ep, kind, () => kurentoCall<string>((cb) => ep.processOffer(offer, cb)))).catch((err: unknown) => {
      // the media server refused the offer's SDP (Kurento SDP error codes 402xx): a 488 for the caller, not a 500
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && code >= 40200 && code < 40300) throw new SdpError(`media server refused the offer: ${(err as Error).message}`);
      throw err;
    });
    this.log.debug('answer', { side, offer, answer });
    return answer;
  }

  /** the peer's answer to our earlier offer */
  async acceptAnswer(side: Side, answer: string): Promise<void> {
    this.log.debug('peer answer', { side, answer });
    const ep = this.endpoint(side);
    await this.conn.guard(kurentoCall<string>((cb) => ep.processAnswer(answer, cb)));
  }

  /** the peer's answer to an offer of a transfer's new endpoint */
  async acceptAnswerOn(ep: KSdpEndpoint, answer: string): Promise<void> {
    await this.conn.guard(kurentoCall<string>((cb) => ep.processAnswer(answer, cb)));
  }

  /**
   * Transfer ring-back: a PlayerEndpoint playing `uri` (again at each end of the file) becomes the only
   * source of `side`'s endpoint; `stop()` restores the other leg as its source (unless a transfer
   * connected a new one) and releases the player (a player goes alone, the pipeline stays).
   */
  async ringback(side: Side, uri: string): Promise<{ stop(restore: boolean): Promise<void> }> {
    const player = await this.conn.guard(this.pipeline.create('PlayerEndpoint', { uri }));
    guardErrors(player, (err) => this.log.warn('ring-back player error', { err: err?.message }));
    const again = (): void => player.play(() => undefined);
    player.on('EndOfStream', again);
    const listener = this.endpoint(side);
    try {
      await kurentoCall<void>((cb) => player.connect(listener, cb));
      await kurentoCall<void>((cb) => player.play(cb));
    } catch (err) {
      await kurentoCall<void>((cb) => void player.release(cb)).catch(() => undefined);
      throw err;
    }
    return {
      stop: async (restore: boolean) => {
        player.removeListener('EndOfStream', again);
        if (restore) {
          const talker = this.endpoint(side === 'caller' ? 'callee' : 'caller');
          await kurentoCall<void>((cb) => talker.connect(this.endpoint(side), cb)).catch((err: Error) => this.log.warn('media restore after ring-back failed', { err: err.message }));
        }
        await kurentoCall<void>((cb) => void player.release(cb)).catch((err: Error) => this.log.warn('ring-back player release failed', { err: err.message }));
      },
    };
  }

  /** Transfer: `ep` (another leg's endpoint in this pipeline) sends to and receives from `side`'s endpoint. */
  async connectTo(side: Side, ep: KSdpEndpoint): Promise<void> {
    const mine = this.endpoint(side);
    await this.conn.guard(kurentoCall<void>((cb) => mine.connect(ep, cb)));
    await this.conn.guard(kurentoCall<void>((cb) => ep.connect(mine, cb)));
  }

  /**
   * Transfer: `side` is now served by `ep` (already connected both ways to the other leg's endpoint):
   * its end events are watched and the old endpoint is disconnected and released (ferry media releases
   * an endpoint connected to nothing alone; one still connected would take the whole pipeline with it).
   */
  async replaceEndpoint(side: Side, ep: KSdpEndpoint, kind: LegKind): Promise<void> {
    const old = this.endpoint(side);
    this.unwatch.get(old)?.();
    this.unwatch.delete(old);
    if (side === 'caller') this.caller = ep;
    else this.callee = ep;
    this.kinds[side] = kind;
    this.watch(ep, side);
    // the old endpoint still sends to nobody but receives from the other leg: cut that, then (connected
    // to nothing) it is released alone, the pipeline and the call go on
    const staying = this.endpoint(side === 'caller' ? 'callee' : 'caller');
    await kurentoCall<void>((cb) => staying.disconnect(old, cb)).catch((err: Error) => this.log.warn('old endpoint disconnect failed', { endpointId: old.id, err: err.message }));
    await kurentoCall<void>((cb) => void old.release(cb)).catch((err: Error) => this.log.warn('old endpoint release failed', { endpointId: old.id, err: err.message }));
  }

  /**
   * Before `side` is negotiated (a call trying a registration of the other kind: a desk phone after a
   * webphone): `side` is served by a new endpoint of `kind`, connected both ways to the other leg's;
   * the old one is released. False (nothing done) when the endpoint is already of that kind.
   */
  async switchKind(side: Side, kind: LegKind): Promise<boolean> {
    if (this.kinds[side] === kind) return false;
    const ep = await this.createEndpoint(kind);
    try {
      await this.connectTo(side === 'caller' ? 'callee' : 'caller', ep);
    } catch (err) {
      await this.releaseEndpoint(ep);
      throw err;
    }
    await this.replaceEndpoint(side, ep, kind);
    return true;
  }

  /** Transfer: a new endpoint that will not be used after all is released (errors logged) */
  async releaseEndpoint(ep: KSdpEndpoint): Promise<void> {
    this.unwatch.get(ep)?.();
    this.unwatch.delete(ep);
    await kurentoCall<void>((cb) => void ep.release(cb)).catch((err: Error) => this.log.warn('endpoint release failed', { endpointId: ep.id, err: err.message }));
  }

  /**
   * Renegotiation (re-INVITE: hold/resume). A WebRtcEndpoint takes one SDP negotiation only (in KMS and
   * in ferry media: a second processOffer is refused with 40208 "Endpoint already negotiated"), so for
   * a WebRTC leg it is not asked and undefined is returned at once; the caller answers from its own
   * SDP with the new direction. An RTP leg's endpoint is asked (ferry media takes a second SDP as a
   * re-INVITE); when it refuses, one log line and undefined.
   */
  async renegotiate(side: Side, offer: string): Promise<string | undefined> {
    if (this.kinds[side] === 'webrtc') {
      this.log.debug('WebRTC leg renegotiated in SIP only (the endpoint takes one negotiation)', { side });
      return undefined;
    }
    const ep = this.endpoint(side);
    try {
      return await kurentoCall<string>((cb) => ep.processOffer(offer, cb));
    } catch (err) {
      this.log.info('media server did not renegotiate; direction carried in SIP only', { side, err: (err as Error).message });
      return undefined;
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    // a lost media server answers nothing (kurento-client would wait its 20 s request timeout):
    // the call's end must not hang on it; the request still goes out if the server comes back
    let timer: TimerHandle | undefined;
    const unanswered = new Promise<'timeout'>((r) => {
      timer = this.clock.setTimeout(() => r('timeout'), RELEASE_WAIT_MS);
    });
    const done = await Promise.race([
      this.releasePipeline().then(
        () => 'released' as const,
        (err: Error) => {
          this.log.warn('pipeline release failed', { pipelineId: this.pipeline.id, err: err.message });
          return 'failed' as const;
        },
      ),
      unanswered,
    ]);
    timer?.cancel();
    if (done === 'timeout') this.log.warn('pipeline release unanswered', { pipelineId: this.pipeline.id, waitedMs: RELEASE_WAIT_MS });
    if (done !== 'released' && !this.conn.isUp) {
      // the control connection is down: after a mere blip the pipeline is still there (and bound
      // to our session again, so the media server would keep it): release it once we are back
      this.log.info('pipeline release deferred until the media server is back', { pipelineId: this.pipeline.id });
      this.conn.once('restored', () => {
        this.releasePipeline().then(
          () => this.log.info('deferred pipeline release done', { pipelineId: this.pipeline.id }),
          (err: Error) => this.log.warn('deferred pipeline release failed', { pipelineId: this.pipeline.id, err: err.message }),
        );
      });
    }
  }

  private releasePipeline(): Promise<void> {
    return new Promise((resolve, reject) => {
      void this.pipeline.release((err) => (err ? reject(err) : resolve())).catch(() => undefined);
    });
  }

  get isReleased(): boolean {
    return this.released;
  }

  private async withGathering(ep: KSdpEndpoint, kind: LegKind, negotiate: () => Promise<string>): Promise<string> {
    if (kind !== 'webrtc') return negotiate();
    const w = ep as KWebRtcEndpoint;
    const candidates: string[] = [];
    let done!: () => void;
    const gathered = new Promise<void>((r) => (done = r));
    const onCandidate = (e: KEventData): void => {
      if (e.candidate?.candidate) candidates.push(e.candidate.candidate);
    };
    let timer: TimerHandle | undefined;
    w.on('IceCandidateFound', onCandidate);
    w.on('IceGatheringDone', done);
    try {
      const sdp = await negotiate();
      await kurentoCall<void>((cb) => w.gatherCandidates(cb));
      await Promise.race([gathered, new Promise<void>((r) => (timer = this.clock.setTimeout(r, GATHER_WAIT_MS)))]);
      return withCandidates(sdp, candidates);
    } finally {
      timer?.cancel();
      w.removeListener('IceCandidateFound', onCandidate);
      w.removeListener('IceGatheringDone', done);
    }
  }

  private watch(ep: KSdpEndpoint, side: Side): void {
    const onTerminated = (e: KEventData): void => this.fire(isEndReason(e.reason) ? e.reason : 'session-expired', side, `MediaSessionTerminated${e.reason ? ` reason=${e.reason}` : ''}${e.detail ? ` detail=${e.detail}` : ''}`);
    const onState = (e: KEventData): void => {
      if (e.newState !== 'DISCONNECTED' || e.oldState !== 'CONNECTED') return;
      this.fire(isEndReason(e.reason) ? e.reason : 'media-timeout', side, `MediaStateChanged DISCONNECTED${e.reason ? ` reason=${e.reason}` : ''}${e.detail ? ` detail=${e.detail}` : ''}`);
    };
    ep.on('MediaSessionTerminated', onTerminated);
    ep.on('MediaStateChanged', onState);
    this.unwatch.set(ep, () => {
      ep.removeListener('MediaSessionTerminated', onTerminated);
      ep.removeListener('MediaStateChanged', onState);
    });
  }

  private fire(reason: EndReason, side: Side, detail: string): void {
    if (this.released || this.endedEmitted) return;
    if (side === this.leavingSide) {
      this.emit('leaving-ended', reason, side, detail);
      return;
    }
    this.endedEmitted = true;
    this.emit('ended', reason, side, detail);
  }
}

export { g711Codecs };
