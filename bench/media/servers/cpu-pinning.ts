/**
 * `--server-cpus` / `--generator-cpus`: the server under test (rtpengine, or ferry media with all its
 * threads) on one CPU set, the load workers and the orchestrator on another, disjoint one. Processes
 * are started through `taskset -c <list>` (taskset execs the command, so the pid and every thread it
 * later creates keep the affinity); the orchestrator pins itself with `taskset -a -p -c`. run.ts passes
 * the lists down in FERRY_BENCH_SERVER_CPUS / FERRY_BENCH_GENERATOR_CPUS; unset = no pinning.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { niced } from './niceness';

export type CpuRole = 'server' | 'generator';

export interface CpuPinning {
  serverCpus: number[];
  generatorCpus: number[];
}

const ENV: Record<CpuRole, string> = { server: 'FERRY_BENCH_SERVER_CPUS', generator: 'FERRY_BENCH_GENERATOR_CPUS' };

/**
 * A CPU list as taskset and /proc write it: "0", "0,2", "0-3", "0-1,4". Throws on anything else.
 * Returns the CPUs sorted, without repeats.
 */
export function parseCpuList(text: string): number[] {
  const out = new Set<number>();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text.trim())) throw new Error(`not a CPU list: ${JSON.stringify(text)} (e.g. 0 or 0,1 or 0-3)`);
  for (const part of text.trim().split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    const hi = b ?? a;
    if (hi < a) throw new Error(`not a CPU list: ${JSON.stringify(text)} (range ${part} runs backwards)`);
    for (let c = a; c <= hi; c++) out.add(c);
  }
  return [...out].sort((x, y) => x - y);
}

/** "0-1,4" style: consecutive CPUs as ranges. */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** The CPUs a process may run on (`Cpus_allowed_list` of /proc/<pid>/status, or of one of its threads). */
export function cpusAllowed(pid: number | 'self', tid?: number): number[] | undefined {
  try {
    const file = tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`;
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(file, 'utf8'));
    return m ? parseCpuList(m[1]!) : undefined;
  } catch {
    return undefined;
  }
}

/** The CPUs this machine lets the bench use: this process's affinity, else every CPU os.cpus() lists. */
export function machineCpus(): number[] {
  return cpusAllowed('self') ?? os.cpus().map((_, i) => i);
}

/**
 * Checks the two lists against the machine's CPUs and each other; a missing one is the rest of the
 * machine's CPUs. Returns undefined when neither was given (no pinning). Throws with every problem.
 */
export function resolvePinning(server: number[] | undefined, generator: number[] | undefined, available: readonly number[]): CpuPinning | undefined {
  if (server === undefined && generator === undefined) return undefined;
  const errors: string[] = [];
  const have = new Set(available);
  const machine = `this machine's CPUs are ${formatCpuList(available)}`;
  for (const [flag, list] of [
    ['--server-cpus', server],
    ['--generator-cpus', generator],
  ] as const) {
    const missing = (list ?? []).filter((c) => !have.has(c));
    if (missing.length > 0) errors.push(`${flag} ${formatCpuList(list!)}: no CPU ${formatCpuList(missing)} here (${machine})`);
  }
  const rest = (taken: readonly number[]): number[] => available.filter((c) => !taken.includes(c));
  const s = server ?? rest(generator ?? []);
  const g = generator ?? rest(server ?? []);
  if (s.length === 0) errors.push(`no CPU left for the server: --generator-cpus ${formatCpuList(g)} takes all of them (${machine}); give --server-cpus`);
  if (g.length === 0) errors.push(`no CPU left for the load generator: --server-cpus ${formatCpuList(s)} takes all of them (${machine}); give --generator-cpus`);
  const shared = s.filter((c) => g.includes(c));
  if (shared.length > 0) errors.push(`--server-cpus and --generator-cpus share CPU ${formatCpuList(shared)}: the sets must be disjoint`);
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return { serverCpus: s, generatorCpus: g };
}

/** Hand the pinning down to every process the bench starts (and that the orchestrator forks). */
export function exportPinning(p: CpuPinning): void {
  process.env[ENV.server] = formatCpuList(p.serverCpus);
  process.env[ENV.generator] = formatCpuList(p.generatorCpus);
}

/** The pinning run.ts exported, if any. */
export function benchPinning(): CpuPinning | undefined {
  const s = process.env[ENV.server];
  const g = process.env[ENV.generator];
  if (!s || !g) return undefined;
  return { serverCpus: parseCpuList(s), generatorCpus: parseCpuList(g) };
}

/**
 * `[command, args]` to spawn a process of `role`: wrapped in `taskset -c <its CPUs>` when pinning is
 * set, and in `nice -n <n>` when --nice is (niceness.ts). taskset and nice both exec, so the spawned
 * pid is the command's own.
 */
export function launchCommand(role: CpuRole, command: string, args: readonly string[]): [string, string[]] {
  const [cmd, cmdArgs] = niced(command, args);
  const pinning = benchPinning();
  if (!pinning) return [cmd, cmdArgs];
  const cpus = role === 'server' ? pinning.serverCpus : pinning.generatorCpus;
  return ['taskset', ['-c', formatCpuList(cpus), cmd, ...cmdArgs]];
}

/** Pin a running process and all its threads (`taskset -a -p -c`). */
export function pinProcess(pid: number, cpus: readonly number[]): void {
  execFileSync('taskset', ['-a', '-p', '-c', formatCpuList(cpus), String(pid)], { stdio: 'ignore' });
}

/**
 * Every thread of `pid` whose affinity is not exactly `cpus` ("tid: list"), to check a pinned server
 * after start (empty = all pinned). Threads that end while being read are skipped.
 */
export function threadsOffCpus(pid: number, cpus: readonly number[]): { threads: number; off: string[] } {
  const want = formatCpuList(cpus);
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return { threads: 0, off: [`${pid}: no such process`] };
  }
  const off: string[] = [];
  let threads = 0;
  for (const tid of tids) {
    const got = cpusAllowed(pid, tid);
    if (!got) continue;
    threads++;
    if (formatCpuList(got) !== want) off.push(`${tid}: ${formatCpuList(got)}`);
  }
  return { threads, off };
}
