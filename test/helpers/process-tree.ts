/**
 * Processes as the kernel sees them (/proc), for tests that check nothing outlives its parent:
 * whether a pid still runs (a zombie counts as gone), every descendant of a pid, and waiting —
 * polled, with a deadline — until a set of pids is gone.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { pollPause } from './wait-for';

interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses
    const close = raw.lastIndexOf(')');
    const comm = raw.slice(raw.indexOf('(') + 1, close);
    const [state, ppid] = raw.slice(close + 2).split(' ');
    return { pid, ppid: Number(ppid), state: state ?? '?', comm };
  } catch {
    return undefined;
  }
}

/** True while `pid` exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const s = readStat(pid);
  return !!s && s.state !== 'Z' && s.state !== 'X';
}

/** Every running descendant of `root` (children, grandchildren, …) with its command name. */
export function descendants(root: number): { pid: number; comm: string }[] {
  const all: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(Number(entry));
    if (s && s.state !== 'Z') all.push(s);
  }
  const found: { pid: number; comm: string }[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const s of all) {
      if (s.ppid === parent) {
        found.push({ pid: s.pid, comm: s.comm });
        frontier.push(s.pid);
      }
    }
  }
  return found;
}

/**
 * Polls every 10 ms until none of `pids` runs; resolves with the ms it took from `since`.
 * Rejects after `timeoutMs` naming the survivors.
 */
export async function waitUntilGone(pids: number[], timeoutMs: number, since = Date.now()): Promise<number> {
  const deadline = since + timeoutMs;
  for (;;) {
    const left = pids.filter(isRunning);
    if (left.length === 0) return Date.now() - since;
    if (Date.now() > deadline) {
      throw new Error(`still running ${Date.now() - since} ms later: ${left.map((p) => `${p} (${readStat(p)?.comm})`).join(', ')}`);
    }
    await pollPause(10);
  }
}
