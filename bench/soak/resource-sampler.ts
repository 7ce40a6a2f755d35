import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';

/**
 * CPU and memory of the soak's processes, sampled from /proc every `intervalMs`: average and peak CPU
 * (% of one core) and peak RSS per named process. A process that is restarted keeps its name.
 */
export interface ResourceSummary {
  cpuAvgPercent: number;
  cpuMaxPercent: number;
  rssMaxMb: number;
  samples: number;
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

async function readProc(pid: number): Promise<{ ticks: number; rssKb: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { ticks, rssKb };
  } catch {
    return undefined;
  }
}

export class ResourceSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly last = new Map<string, { pid: number; ticks: number; at: number }>();
  private readonly acc = new Map<string, { cpu: number[]; rssMaxKb: number }>();
  /** the machine's load average at each sample */
  readonly loadAverages: number[] = [];

  constructor(private readonly pids: () => Record<string, number | undefined>, private readonly intervalMs = 2000) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async sample(): Promise<void> {
    const now = Date.now();
    const load = await readFile('/proc/loadavg', 'utf8').catch(() => '');
    if (load) this.loadAverages.push(Number(load.split(' ')[0]));
    for (const [name, pid] of Object.entries(this.pids())) {
      if (!pid) continue;
      const p = await readProc(pid);
      if (!p) continue;
      const a = this.acc.get(name) ?? { cpu: [], rssMaxKb: 0 };
      a.rssMaxKb = Math.max(a.rssMaxKb, p.rssKb);
      const prev = this.last.get(name);
      if (prev && prev.pid === pid && now > prev.at) a.cpu.push(((p.ticks - prev.ticks) / CLOCK_TICKS) / ((now - prev.at) / 1000) * 100);
      this.last.set(name, { pid, ticks: p.ticks, at: now });
      this.acc.set(name, a);
    }
  }

  summary(): Record<string, ResourceSummary> {
    const out: Record<string, ResourceSummary> = {};
    for (const [name, a] of this.acc) {
      const avg = a.cpu.length ? a.cpu.reduce((s, x) => s + x, 0) / a.cpu.length : 0;
      out[name] = { cpuAvgPercent: Math.round(avg), cpuMaxPercent: Math.round(Math.max(0, ...a.cpu)), rssMaxMb: Math.round(a.rssMaxKb / 1024), samples: a.cpu.length };
    }
    return out;
  }
}
