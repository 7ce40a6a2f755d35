import { Clock } from '../../common/clock';
import { Call } from '../calls/call';
import { CallRegistry } from '../calls/call-registry';
import { DialogLike } from '../calls/dialog-like';
import { bumpVersion, direction, withDirection } from '../calls/sdp-rewriter';
import { callParties } from '../events/call-event-data';
import { Side } from '../kurento/call-media';
import { StateStore } from '../state/state-store';
import { ApiError } from './api-error';
import { sendDtmfOnEndpoint } from '../kurento/ferry-media-dtmf';
import { DtmfRequest, TransferRequest } from './api-validation';

/** what `/dtmf` did: RFC 4733 from the media server, or SIP INFO (a media server without the extension) */
export interface DtmfResult {
  sent: number;
  method: 'rfc4733' | 'sip-info';
  /** RFC 4733: ms until the last digit has been sent */
  untilMs?: number;
}

/** what `/transfer` calls (the transfer core, src/gateway/transfer/) */
export interface BlindTransfers {
  blind(call: Call, opts: { target: string; keep?: Side; by: 'api' | Side }): Promise<{ ok: true; target: string; party: string } | { ok: false; status: number; reason: string }>;
}

export interface CallControlDeps {
  registry: CallRegistry;
  store: StateStore;
  clock: Clock;
  instanceId: string;
  /** the gateway's transfer core (src/gateway/transfer/), once it has one */
  transfers: () => BlindTransfers | undefined;
}

/** how long an API re-INVITE / INFO waits before the API answers 504 */
const REQUEST_WAIT_MS = 10_000;

/**
 * What the REST API does to a live call this gateway drives: hang up (the call's single end path,
 * reason api-hangup), hold/resume (re-INVITE the chosen parties a=sendonly / a=sendrecv), DTMF
 * (RFC 4733 from the party's media endpoint; SIP INFO only without ferry media), blind transfer (the transfer core).
 * A call owned by another gateway is refused 409 naming its owner.
 */
export class CallControl {
  constructor(private readonly d: CallControlDeps) {}

  /** the live call, or 404 (unknown) / 409 (ended, or owned by another gateway) */
  async live(id: string): Promise<Call> {
    const call = this.d.registry.get(id);
    if (call && !call.isEnding) return call;
    const record = call?.record ?? (await this.d.store.getCall(id));
    if (!record) throw new ApiError(404, 'no such call');
    if (call?.isEnding || record.state === 'ending' || record.state === 'ended') throw new ApiError(409, `the call has ended (${record.reason ?? record.state})`, { state: record.state });
    if (record.owner !== this.d.instanceId) throw new ApiError(409, `the call is driven by gateway ${record.owner}: send the request there`, { owner: record.owner });
    throw new ApiError(409, 'the call is not driven by any live gateway at the moment (it is being adopted): try again', { owner: record.owner }, { 'Retry-After': '1' });
  }

  /** DELETE: the call's one end path; both parties are sent BYE (or CANCEL while ringing), the pipeline released */
  async hangup(call: Call): Promise<void> {
    call.note('api-hangup');
    await call.end('api-hangup', 'gateway');
  }

  private dialogOf(call: Call, side: Side): DialogLike {
    const d = call.state === 'answered' ? call.dialog(side) : undefined;
    if (!d || !d.connected) throw new ApiError(409, `the ${side} is not in the call yet (state ${call.state})`, { state: call.state });
    return d;
  }

  /**
   * Hold (a=sendonly) or resume (a=sendrecv) the chosen parties: each is re-INVITEd with our SDP in
   * that direction; its answer (recvonly / sendrecv) is recorded, and a phone's RTP endpoint is told
   * (it then expects silence from a held phone instead of ending the call on it).
   */
  async setHold(call: Call, sides: Side[], hold: boolean): Promise<Record<Side, string | undefined>> {
    const dir = hold ? 'sendonly' : 'sendrecv';
    const dialogs = sides.map((s) => [s, this.dialogOf(call, s)] as const);
    const result: Record<Side, string | undefined> = { caller: undefined, callee: undefined };
    // one event per change (docs/webhooks.md, "Once per change"): asking again for what every chosen
    // party has already (a second hold, a resume of a call not held) is re-INVITEd but not published
    let changed = false;
    for (const [side, d] of dialogs) {
      if (direction(d.local.sdp) !== dir) changed = true;
      const offer = bumpVersion(withDirection(d.local.sdp, dir));
      const answer = await this.bounded(call, this.modify(call, d, offer), `re-INVITE to the ${side}`);
      d.local.sdp = offer;
      const leg = side === 'caller' ? call.record.caller : call.record.callee;
      leg.localSdp = offer;
      if (answer) {
        leg.remoteSdp = answer;
        leg.direction = direction(answer);
        if (leg.kind === 'rtp') await call.media?.renegotiate(side, answer);
      }
      result[side] = leg.direction;
    }
    call.note(hold ? 'hold' : 'resume', `api: ${sides.join(' and ')} a=${dir}${changed ? '' : ' (no change)'}`);
    if (changed) call.publish(hold ? 'call.held' : 'call.resumed', { by: 'api', direction: dir, sides, parties: callParties(call.record) });
    await call.persist();
    return result;
  }

  /** re-INVITE; on 491 (glare) wait a little and try again (RFC 3261 14.1) */
  private async modify(call: Call, d: DialogLike, sdp: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await d.modify(sdp);
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status !== 491 || attempt >= 4 || call.isEnding) throw new ApiError(502, `the party refused the re-INVITE (${status ?? (err as Error).message})`);
        await new Promise<void>((r) => this.d.clock.setTimeout(r, 200 + Math.floor(Math.random() * 800)));
      }
    }
  }

  /**
   * DTMF towards one party. In RTP: the party's media endpoint sends RFC 4733 telephone-events (ferry
   * media's `sendDtmf` extension, src/gateway/kurento/ferry-media-dtmf.ts; the API answers once they are
   * queued, `untilMs` says when the last one will have been sent). Only when the media server does not
   * have the extension (a real KMS) does it fall back to SIP INFO `application/dtmf-relay` (one INFO per
   * digit, in order, each answered before the next). A party whose SDP has no telephone-event gets 409.
   */
  async dtmf(call: Call, req: DtmfRequest): Promise<DtmfResult> {
    const d = this.dialogOf(call, req.party);
    const ep = call.media?.[req.party];
    if (ep) {
      const r = await this.bounded(call, sendDtmfOnEndpoint(ep, { tones: req.digits, durationMs: req.durationMs }), `DTMF on the ${req.party}'s media endpoint`);
      if (r.ok) {
        call.note('dtmf', `api: ${req.digits.length} digit(s) to the ${req.party} (RFC 4733)`);
        void call.persist();
        return { sent: req.digits.length, method: 'rfc4733', untilMs: r.untilMs };
      }
      if (r.reason === 'not-negotiated') {
        throw new ApiError(409, `the ${req.party} did not negotiate telephone-event (RFC 4733) in its SDP: no DTMF can be sent to it`, { party: req.party });
      }
    }
    for (const digit of req.digits) {
      const r = await this.bounded(call, d.request({
        method: 'INFO',
        body: `Signal=${digit}\r\nDuration=${req.durationMs}\r\n`,
        headers: { 'Content-Type': 'application/dtmf-relay' },
      }), `INFO to the ${req.party}`);
      const status = r.status ?? 200;
      if (status >= 300) throw new ApiError(502, `the ${req.party} refused the DTMF INFO (${status})`, { status });
    }
    call.note('dtmf', `api: ${req.digits.length} digit(s) to the ${req.party} (SIP INFO: the media server has no sendDtmf)`);
    void call.persist();
    return { sent: req.digits.length, method: 'sip-info' };
  }

  async transfer(call: Call, req: TransferRequest): Promise<{ target: string; party: string }> {
    const transfers = this.d.transfers();
    if (!transfers) throw new ApiError(501, 'transfer is not available on this gateway');
    this.dialogOf(call, req.keep);
    const r = await transfers.blind(call, { target: req.target, keep: req.keep, by: 'api' });
    if (r.ok) return { target: r.target, party: r.party };
    const status = r.status === 404 ? 404 : r.status === 409 ? 409 : 502;
    throw new ApiError(status, `transfer to ${req.target} failed: ${r.status} ${r.reason}`, { sipStatus: r.status });
  }

  private async bounded<T>(call: Call, p: Promise<T>, what: string): Promise<T> {
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<never>((_r, reject) => {
      timer = this.d.clock.setTimeout(() => reject(new ApiError(504, `${what}: no answer within ${REQUEST_WAIT_MS} ms`)), REQUEST_WAIT_MS);
    });
    try {
      return await Promise.race([p, timeout]);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const e = err as { status?: number; message?: string };
      if (call.isEnding) throw new ApiError(409, 'the call ended meanwhile');
      throw new ApiError(502, `${what} failed: ${e.status ?? e.message ?? String(err)}`);
    } finally {
      timer?.cancel();
    }
  }
}
