import { percentile, type Attribution, type FalseEnd } from './end-attribution';
import type { InjectedFault } from './fault-injector';
import type { PlannedFault } from './fault-plan';
import type { Census } from './leak-census';
import type { ResourceSummary } from './resource-sampler';
import type { SoakCall } from './soak-call';
import { FAULT_KINDS, type SoakOptions } from './soak-options';

/** The soak's result: JSON-ready, with the verdict (`ok`) and every problem that fails it. */
export interface SoakReport {
  ok: boolean;
  problems: string[];
  options: Omit<SoakOptions, 'log'>;
  startedAt: string;
  runSeconds: number;
  totalSeconds: number;
  calls: {
    placed: number; answered: number; setupFailed: number; setupFailuresByError: Record<string, number>;
    explainedSetupFailures: number; unexplainedSetupFailures: { call: number; error: string; atS: number }[];
  };
  faults: { planned: number; injectedByKind: Record<string, number>; skipped: { kind: string; why: string }[]; list: (InjectedFault & { atS: number })[] };
  endsByReason: Record<string, number>;
  endsByCause: Record<string, number>;
  falseEnds: (FalseEnd & { atS: number })[];
  /** ferry sip closed a registered webphone's WebSocket (it reconnected and registered again) */
  webphoneDisconnects: { webphone: string; atS: number; code: number; reason: string; inCall: boolean }[];
  /** hang-ups whose BYE the scripted phone saw no answer to within its 10 s (not failures by themselves) */
  phoneByesUnanswered: number;
  partiesTold: { told: number; expected: number; notTold: { call: number; problem: string }[] };
  latenciesMs: Record<string, { n: number; p50?: number; p95?: number; max?: number }>;
  leaks: string[];
  census: Omit<Census, 'leftoverPipelines'> & { leftoverPipelines: (Census['leftoverPipelines'][number] & { call: string })[] };
  resources: Record<string, ResourceSummary>;
  loadAverage: { avg?: number; max?: number };
  machine: { cpus: number; memoryMb: number };
  callProblems: { call: number; problems: string[] }[];
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

function dist(values: number[]): { n: number; p50?: number; p95?: number; max?: number } {
  return { n: values.length, p50: percentile(values, 50), p95: percentile(values, 95), max: values.length ? Math.max(...values) : undefined };
}

export function buildReport(input: {
  options: SoakOptions; startedAt: number; runEndedAt: number; finishedAt: number; calls: SoakCall[]; plan: PlannedFault[];
  faults: InjectedFault[]; attribution: Attribution; census: SoakReport['census']; leaks: string[]; resources: Record<string, ResourceSummary>;
  loadAverages: number[]; machine: { cpus: number; memoryMb: number };
  webphoneDisconnects: { webphone: string; at: number; code: number; reason: string; inCall: boolean }[];
}): SoakReport {
  const { calls, faults, attribution: a } = input;
  const answered = calls.filter((c) => c.answeredAt !== undefined);
  const injectedByKind: Record<string, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]));
  for (const f of faults) if (!f.skipped) injectedByKind[f.kind] = (injectedByKind[f.kind] ?? 0) + 1;
  let expected = 0;
  let told = 0;
  for (const c of answered) {
    for (const p of ['phone', 'webphone'] as const) {
      if (c.hangupBy === p) continue;
      expected++;
      if (c.toldAt[p] !== undefined) told++;
    }
  }
  const notTold = calls.flatMap((c) => c.problems.filter((p) => /never told|never sent a BYE/.test(p)).map((problem) => ({ call: c.id, problem })));
  const callProblems = calls.filter((c) => c.problems.length > 0).map((c) => ({ call: c.id, problems: c.problems }));
  const problems: string[] = [];
  for (const f of a.falseEnds) problems.push(`FALSE END: call ${f.call} (answered +${Math.round((f.answeredAt - input.startedAt) / 1000)} s) ended with ${f.reason} (${f.detail})`);
  for (const c of callProblems) for (const p of c.problems) problems.push(`call ${c.call}: ${p}`);
  for (const u of a.unexplainedSetupFailures) problems.push(`call ${u.call}: set-up failed while every part was up (+${Math.round((u.placedAt - input.startedAt) / 1000)} s): ${u.error}`);
  for (const l of input.leaks) problems.push(`LEAK: ${l}`);
  const { log: _log, ...options } = input.options;
  const loads = input.loadAverages;
  return {
    ok: problems.length === 0,
    problems,
    options,
    startedAt: new Date(input.startedAt).toISOString(),
    runSeconds: Math.round((input.runEndedAt - input.startedAt) / 1000),
    totalSeconds: Math.round((input.finishedAt - input.startedAt) / 1000),
    calls: {
      placed: calls.length, answered: answered.length, setupFailed: calls.length - answered.length,
      setupFailuresByError: countBy(calls.filter((c) => c.answeredAt === undefined).map((c) => `${c.caller} called: ${(c.setupError ?? 'unknown')
        .replace(/^(INVITE \S+: |call failed )/, '').replace(/ to INVITE sip:\S+ SIP\/2\.0/, '').replace(/ within \d+ ms/, '')}`)),
      explainedSetupFailures: a.explainedSetupFailures,
      unexplainedSetupFailures: a.unexplainedSetupFailures.map((u) => ({ call: u.call, error: u.error, atS: Math.round((u.placedAt - input.startedAt) / 100) / 10 })),
    },
    faults: {
      planned: input.plan.length, injectedByKind,
      skipped: faults.filter((f) => f.skipped).map((f) => ({ kind: f.kind, why: f.skipped! })),
      list: faults.map((f) => ({ ...f, atS: Math.round((f.at - input.startedAt) / 100) / 10 })),
    },
    endsByReason: a.endsByReason,
    endsByCause: a.endsByCause,
    falseEnds: a.falseEnds.map((f) => ({ ...f, atS: Math.round((f.answeredAt - input.startedAt) / 100) / 10 })),
    webphoneDisconnects: input.webphoneDisconnects.map(({ at, ...d }) => ({ ...d, atS: Math.round((at - input.startedAt) / 100) / 10 })),
    phoneByesUnanswered: calls.filter((c) => c.byeUnanswered).length,
    partiesTold: { told, expected, notTold },
    latenciesMs: {
      hangupToOtherPartyBye: dist(a.toldAfterHangupMs),
      mediaKillToBothToldMediaLost: dist(a.mediaLostAfterKillMs),
      cablePullToEnd: dist(a.cablePullEndMs),
      gatewayKillToCallAdopted: dist(a.adoptedAfterGatewayKillMs),
      ...Object.fromEntries((['gateway-kill', 'media-kill', 'redis-restart'] as const).map((kind) => [
        `${kind}ToPartBack`, dist(faults.filter((f) => f.kind === kind && !f.skipped && f.until !== undefined).map((f) => f.until! - f.at)),
      ])),
    },
    leaks: input.leaks,
    census: input.census,
    resources: input.resources,
    loadAverage: { avg: loads.length ? Math.round((loads.reduce((s, x) => s + x, 0) / loads.length) * 10) / 10 : undefined, max: loads.length ? Math.max(...loads) : undefined },
    machine: input.machine,
    callProblems,
  };
}

export function humanSummary(r: SoakReport): string {
  const kv = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const lat = (name: string): string => {
    const d = r.latenciesMs[name]!;
    return d.n ? `n=${d.n} p50 ${d.p50} ms, p95 ${d.p95} ms, max ${d.max} ms` : 'n=0';
  };
  const lines = [
    `soak ${r.ok ? 'PASSED' : 'FAILED'}: ${r.options.calls} concurrent calls, ${r.options.durationMs / 1000} s, seed ${r.options.seed} (T_dead ${r.options.deadMs} ms, blip ${r.options.blipMs} ms)`,
    `calls: ${r.calls.placed} placed, ${r.calls.answered} answered, ${r.calls.setupFailed} set-ups failed (${r.calls.explainedSetupFailures} while a part was down, ${r.calls.unexplainedSetupFailures.length} unexplained)`,
    `set-up failures: ${kv(r.calls.setupFailuresByError)}`,
    `faults injected: ${kv(r.faults.injectedByKind)} at ${r.faults.list.filter((f) => !f.skipped).map((f) => `${f.kind} +${f.atS} s`).join(', ')}${r.faults.skipped.length ? ` (skipped ${r.faults.skipped.length})` : ''}`,
    `ends by reason: ${kv(r.endsByReason)}`,
    `ends by cause: ${kv(r.endsByCause)}; false ends: ${r.falseEnds.length}`,
    `parties told: ${r.partiesTold.told}/${r.partiesTold.expected}; webphone WebSockets closed by ferry sip: ${r.webphoneDisconnects.length}${r.webphoneDisconnects.length ? ` (${r.webphoneDisconnects.slice(0, 5).map((d) => `${d.webphone} +${d.atS} s code ${d.code}${d.inCall ? ' in a call' : ''}`).join(', ')})` : ''}; phone BYEs unanswered in 10 s: ${r.phoneByesUnanswered}`,
    `hang-up -> other party's BYE: ${lat('hangupToOtherPartyBye')}`,
    `media kill -> both told (media-lost): ${lat('mediaKillToBothToldMediaLost')}`,
    `cable pull -> end: ${lat('cablePullToEnd')}`,
    `gateway kill -> call adopted by the restarted gateway: ${lat('gatewayKillToCallAdopted')}`,
    `killed part back and ready: gateway ${lat('gateway-killToPartBack')}; media ${lat('media-killToPartBack')}; redis ${lat('redis-restartToPartBack')}`,
    `leaks: ${r.leaks.length === 0 ? 'none' : r.leaks.join('; ')} (media pipelines ${r.census.mediaPipelines}, bound ports ${r.census.mediaBoundPorts}, sip dialogs ${r.census.sipDialogs}, Redis live records ${r.census.redisLiveRecords} (index ${r.census.redisIndexEntries}), fds ${Object.entries(r.census.fds).map(([p, f]) => `${p} ${f.start}->${f.end}`).join(', ')})`,
    `resources: ${Object.entries(r.resources).map(([n, s]) => `${n} cpu avg ${s.cpuAvgPercent}% max ${s.cpuMaxPercent}% rss max ${s.rssMaxMb} MB`).join('; ')}; load avg ${r.loadAverage.avg} (max ${r.loadAverage.max}) on ${r.machine.cpus} cpus`,
    ...r.problems.map((p) => `  PROBLEM ${p}`),
    ...r.census.leftoverPipelines.slice(0, 10).map((p) => `  leftover pipeline ${p.id} (${p.elements} elements, owners ${p.owners.join(',') || 'none'}${p.orphaned ? ', orphaned' : ''}): call ${p.call}`),
    ...r.falseEnds.flatMap((f) => [`  call ${f.call} as the soak saw it: ${f.soakTimeline.join('; ')}`, `  call ${f.call} in the gateway's record: ${f.gatewayTimeline.join('; ')}`]),
  ];
  return lines.join('\n');
}
