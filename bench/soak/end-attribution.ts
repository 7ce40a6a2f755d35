import type { InjectedFault } from './fault-injector';
import type { Party, SoakCall } from './soak-call';

/**
 * Matches every call's end to its cause. Accepted: a party's hang-up (`sip-bye`; `dtls-close` when
 * the webphone hung up, it closes its peer connection as it sends BYE), a cable pull (`media-timeout`),
 * a ferry media kill while the call was up or being set up (`media-lost`). Anything else — a call ended with another
 * reason, or ended with no hang-up and no such fault — is a FALSE END. Also checked: a call alive
 * at a media kill really ended (no party left in a call without media), a cable-pulled call ended,
 * and call set-ups that failed did so while a part was down (otherwise they are unexplained; a refused
 * authentication with the right credentials is never explained by an outage).
 */
export interface GatewayEnd {
  /** the gateway's call id */
  id?: string;
  pipelineId?: string;
  reason?: string;
  suspectedFalseEnd?: boolean;
  state: string;
  /** the call record's timeline (epoch ms, event, detail) */
  timeline?: { t: number; event: string; detail?: string; by?: string }[];
}

export interface FalseEnd {
  call: number;
  /** when the call was answered (epoch ms) */
  answeredAt: number;
  reason: string;
  detail: string;
  /** what the soak saw and did, ms after the answer */
  soakTimeline: string[];
  /** the gateway's record of the call, ms after the answer */
  gatewayTimeline: string[];
}

function soakTimeline(call: SoakCall): string[] {
  const t0 = call.answeredAt ?? call.placedAt;
  const at = (t: number): string => `+${t - t0} ms`;
  const lines = [`placed by the ${call.caller} ${at(call.placedAt)}`, `answered ${at(t0)}`];
  for (const f of call.faults) lines.push(`${f.kind}${f.side ? ` (${f.side})` : ''} ${at(f.at)}${f.until ? ` .. ${at(f.until)}` : ''}`);
  if (call.cablePull) lines.push(`cable pulled ${at(call.cablePull.at)}${call.cablePull.pluggedAt ? `, plugged back ${at(call.cablePull.pluggedAt)}` : ''}`);
  if (call.hangupBy) lines.push(`${call.hangupBy} hung up ${at(call.hangupAt!)}`);
  for (const [p, t] of Object.entries(call.toldAt)) lines.push(`${p} got BYE ${at(t)}`);
  return lines;
}

/** a media kill's calls must be ended this soon after ferry media is back */
export const MEDIA_LOST_WITHIN_MS = 10_000;
/** a set-up failing this long after a part came back is not explained by it */
const SETUP_GRACE_MS = 12_000;

const HANGUP_REASONS: Record<Party, string[]> = { phone: ['sip-bye', 'rtcp-bye'], webphone: ['sip-bye', 'dtls-close'] };

export interface Attribution {
  endsByReason: Record<string, number>;
  /** ends per cause: hang-up, cable-pull, media-kill */
  endsByCause: Record<string, number>;
  falseEnds: FalseEnd[];
  explainedSetupFailures: number;
  unexplainedSetupFailures: { call: number; error: string; placedAt: number }[];
  /** other party's BYE after a hang-up, ms */
  toldAfterHangupMs: number[];
  /** media kill -> both parties told (media-lost), ms */
  mediaLostAfterKillMs: number[];
  /** cable pull -> the call ended, ms */
  cablePullEndMs: number[];
  /** gateway SIGKILL -> the restarted gateway adopted a call that was up (its record's `adopted`), ms */
  adoptedAfterGatewayKillMs: number[];
}

/**
 * `orphanDialogMs`: FERRY_SIP_ORPHAN_DIALOG_MS. A gateway that stays down longer than that loses its
 * calls by design: ferry sip ends their dialogs (BYE both), and the restarted gateway, finding them
 * gone (481 to its claim), records `session-expired`. Such an end is matched to the gateway kill.
 */
export function attribute(calls: SoakCall[], faults: InjectedFault[], records: Map<string, GatewayEnd>, orphanDialogMs = 30_000): Attribution {
  const a: Attribution = {
    endsByReason: {}, endsByCause: {}, falseEnds: [], explainedSetupFailures: 0, unexplainedSetupFailures: [],
    toldAfterHangupMs: [], mediaLostAfterKillMs: [], cablePullEndMs: [], adoptedAfterGatewayKillMs: [],
  };
  const mediaKills = faults.filter((f) => f.kind === 'media-kill' && !f.skipped);
  const gatewayKills = faults.filter((f) => f.kind === 'gateway-kill' && !f.skipped);
  const processFaults = faults.filter((f) => (f.kind === 'media-kill' || f.kind === 'gateway-kill' || f.kind === 'redis-restart') && !f.skipped);
  for (const call of calls) {
    if (call.answeredAt === undefined) {
      const failedAt = call.setupFailedAt ?? call.placedAt;
      // a refused authentication (right credentials) is never explained by a part being down
      const authRefused = / (401|403|407) /.test(call.setupError ?? '');
      const explained = !authRefused && processFaults.some((f) => call.placedAt <= (f.until ?? f.at) + SETUP_GRACE_MS && failedAt >= f.at);
      if (explained) a.explainedSetupFailures++;
      else a.unexplainedSetupFailures.push({ call: call.id, error: call.setupError ?? 'unknown', placedAt: call.placedAt });
      continue;
    }
    const record = call.webphoneCallId ? records.get(call.webphoneCallId) : undefined;
    call.reason = record?.reason;
    call.suspectedFalseEnd = record?.suspectedFalseEnd;
    const reason = record?.reason ?? (record ? `(state ${record.state})` : '(no call record)');
    a.endsByReason[reason] = (a.endsByReason[reason] ?? 0) + 1;
    const causes = new Map<string, string>();
    if (call.hangupBy) for (const r of HANGUP_REASONS[call.hangupBy]) causes.set(r, 'hang-up');
    if (call.cablePull) causes.set('media-timeout', 'cable-pull');
    // a call still being set up when ferry media died may have its pipeline on the dead server too
    const killsDuringCall = mediaKills.filter((k) => call.placedAt < k.at && (call.endedAt ?? Infinity) >= k.at);
    if (killsDuringCall.length > 0) causes.set('media-lost', 'media-kill');
    const dialogGoneAt = record?.timeline?.find((e) => e.event === 'dialog-gone')?.t;
    const orphanedBy = gatewayKills.find((k) => call.placedAt < k.at + 5000 && (call.endedAt ?? Infinity) >= k.at
      && dialogGoneAt !== undefined && dialogGoneAt - k.at > orphanDialogMs);
    if (orphanedBy) causes.set('session-expired', 'gateway-down-past-orphan-deadline');
    const cause = record?.reason ? causes.get(record.reason) : undefined;
    if (cause) a.endsByCause[cause] = (a.endsByCause[cause] ?? 0) + 1;
    else {
      const why = call.hangupBy ? `the ${call.hangupBy} hung up` : 'nobody hung up';
      const faultsSeen = call.faults.map((f) => f.kind).join(', ') || 'no fault';
      const t0 = call.answeredAt;
      a.falseEnds.push({
        call: call.id, answeredAt: call.answeredAt!, reason, detail: `${why}; faults during the call: ${faultsSeen}; accepted: ${[...causes.keys()].join(', ') || 'none'}`,
        soakTimeline: soakTimeline(call),
        gatewayTimeline: (record?.timeline ?? []).map((e) => `+${e.t - t0} ms ${e.event}${e.detail ? ` ${e.detail}` : ''}${e.by ? ` (${e.by})` : ''}`),
      });
    }
    if (record?.suspectedFalseEnd) call.problems.push('the gateway flagged it as a suspected false end');
    if (call.hangupBy && call.hangupAt !== undefined) {
      const told = call.toldAt[call.hangupBy === 'phone' ? 'webphone' : 'phone'];
      if (told !== undefined) a.toldAfterHangupMs.push(told - call.hangupAt);
    }
    for (const k of killsDuringCall.filter((kill) => call.answeredAt! < kill.at)) {
      const back = k.until ?? k.at;
      if (call.endedAt === undefined || call.endedAt > back + MEDIA_LOST_WITHIN_MS) {
        call.problems.push(`up at the media kill (+${k.at - call.answeredAt!} ms) but not ended within ${MEDIA_LOST_WITHIN_MS} ms of ferry media's restart (left without media)`);
      } else if (record?.reason === 'media-lost') {
        a.mediaLostAfterKillMs.push(Math.max(...Object.values(call.toldAt)) - k.at);
      }
    }
    if (call.cablePull && call.endedAt !== undefined && !call.hangupBy) a.cablePullEndMs.push(call.endedAt - call.cablePull.at);
    for (const k of gatewayKills.filter((kill) => call.answeredAt! < kill.at)) {
      const adopted = record?.timeline?.find((e) => e.event === 'adopted' && e.t >= k.at);
      if (adopted) a.adoptedAfterGatewayKillMs.push(adopted.t - k.at);
    }
  }
  return a;
}

export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
