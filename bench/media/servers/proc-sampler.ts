/**
 * CPU and memory of one process (and its descendants) from /proc, so the media server's own cost is
 * measured, not the whole machine's (the load generator shares the same two cores).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
const PAGE_BYTES = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096;
  } catch {
    return 4096;
  }
})();

export interface ProcStat {
  pid: number;
  ppid: number;
  /** user CPU seconds */
  utime: number;
  /** system CPU seconds */
  stime: number;
  rssBytes: number;
}

/** Parse /proc/<pid>/stat text (the command name may contain spaces and parentheses). */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, stime 15, rss 24 (1-based, see proc(5)).
  return {
    pid,
    ppid: Number(f[1]),
    utime: Number(f[11]) / CLK_TCK,
    stime: Number(f[12]) / CLK_TCK,
    rssBytes: Number(f[21]) * PAGE_BYTES,
  };
}

function readStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The pid and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(st.pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

export interface CpuSample {
  atMs: number;
  user: number;
  system: number;
  rssBytes: number;
}

/** Summed CPU seconds and RSS of a set of pids (descendants included when `tree`). */
export function sampleProcesses(pids: readonly number[], tree = true): CpuSample {
  const all = new Set<number>();
  for (const pid of pids) for (const p of tree ? processTree(pid) : [pid]) all.add(p);
  let user = 0;
  let system = 0;
  let rssBytes = 0;
  for (const pid of all) {
    const st = readStat(pid);
    if (!st) continue;
    user += st.utime;
    system += st.stime;
    rssBytes += st.rssBytes;
  }
  return { atMs: performance.now(), user, system, rssBytes };
}

export interface MachineSample {
  busy: number;
  total: number;
}

/** Whole-machine jiffies from /proc/stat (for "busy cores of 2"). */
export function sampleMachine(): MachineSample {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

export interface CoreSample {
  /** Busy seconds (everything but idle and iowait) per core, cpu0 first. */
  busy: number[];
  total: number[];
}

/** Per-core jiffies from the `cpuN` lines of /proc/stat text. */
export function parseCoreStat(text: string): CoreSample {
  const busy: number[] = [];
  const total: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const sum = v.slice(0, 8).reduce((a, b) => a + b, 0);
    busy[Number(m[1])] = (sum - idle) / CLK_TCK;
    total[Number(m[1])] = sum / CLK_TCK;
  }
  return { busy, total };
}

export function sampleCores(): CoreSample {
  return parseCoreStat(readFileSync('/proc/stat', 'utf8'));
}

export interface CoreBusy {
  /** Busy % of each core between the two samples, cpu0 first. */
  perCoreBusyPct: number[];
  /** How many cores were more than `thresholdPct` busy. */
  coresAboveThreshold: number;
  thresholdPct: number;
}

/** Per-core busy % between two samples, and how many cores were above `thresholdPct`. */
export function coreBusyBetween(a: CoreSample, b: CoreSample, thresholdPct = 50): CoreBusy {
  const perCoreBusyPct = b.busy.map((busy, i) => {
    const dt = (b.total[i] ?? 0) - (a.total[i] ?? 0);
    return dt > 0 ? (100 * (busy - (a.busy[i] ?? 0))) / dt : 0;
  });
  return { perCoreBusyPct, coresAboveThreshold: perCoreBusyPct.filter((p) => p > thresholdPct).length, thresholdPct };
}
