/**
 * Reads the .cpuprofile files `node --cpu-prof` wrote for ferry media and lists where the CPU went:
 * by area (src/media, werift, node internals, GC...) and the hottest functions by self time, with
 * the ones in src/media listed separately for their owners.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface Hot {
  name: string;
  where: string;
  area: string;
  selfUs: number;
  totalUs: number;
}

function areaOf(url: string, fn: string, repo: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const p = url.replace(/^file:\/\//, '');
  if (p.startsWith(path.join(repo, 'src', 'media'))) return 'src/media';
  if (p.startsWith(path.join(repo, 'src'))) return 'src/(other)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p);
  if (nm) return nm[1]!;
  if (p.startsWith('node:')) return 'node internals';
  return p;
}

/** Summarize .cpuprofile files (or every .cpuprofile in the directories given). */
export function summarizeCpuProfiles(paths: readonly string[], repo: string, top: number): string {
  const hot = new Map<string, Hot>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let files = 0;
  const list = paths.flatMap((p) =>
    !existsSync(p)
      ? []
      : statSync(p).isDirectory()
        ? readdirSync(p)
            .filter((n) => n.endsWith('.cpuprofile'))
            .map((n) => path.join(p, n))
        : [p],
  );
  {
    for (const file of list) {
      files++;
      const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      const byId = new Map(prof.nodes.map((n) => [n.id, n]));
      const parent = new Map<number, number>();
      for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
      const keyOf = (n: ProfileNode): { key: string; where: string } => {
        const { functionName, url, lineNumber } = n.callFrame;
        const where = url ? `${url.replace(/^file:\/\//, '').replace(`${repo}/`, '')}:${lineNumber + 1}` : '';
        return { key: `${functionName}@${where}`, where };
      };
      prof.samples.forEach((id, i) => {
        const node = byId.get(id);
        const dt = prof.timeDeltas[i] ?? 0;
        if (!node || dt <= 0) return;
        const { functionName, url, lineNumber } = node.callFrame;
        if (functionName === '(idle)') return;
        totalUs += dt;
        const area = areaOf(url, functionName, repo);
        areas.set(area, (areas.get(area) ?? 0) + dt);
        const { key, where } = keyOf(node);
        const h = hot.get(key) ?? { name: functionName || '(anonymous)', where, area, selfUs: 0, totalUs: 0 };
        h.selfUs += dt;
        hot.set(key, h);
        // Inclusive time: every distinct frame on the stack gets the sample once.
        const seen = new Set<string>();
        for (let cur: ProfileNode | undefined = node; cur; cur = byId.get(parent.get(cur.id) ?? -1)) {
          const k = keyOf(cur);
          if (seen.has(k.key)) continue;
          seen.add(k.key);
          const a = areaOf(cur.callFrame.url, cur.callFrame.functionName, repo);
          const e = hot.get(k.key) ?? { name: cur.callFrame.functionName || '(anonymous)', where: k.where, area: a, selfUs: 0, totalUs: 0 };
          e.totalUs += dt;
          hot.set(k.key, e);
        }
      });
    }
  }
  if (files === 0) return '_no .cpuprofile found_';
  const pct = (us: number): string => ((100 * us) / totalUs).toFixed(1);
  const sorted = [...hot.values()].filter((h) => h.selfUs > 0).sort((a, b) => b.selfUs - a.selfUs);
  const lines: string[] = [];
  lines.push(`${files} profile(s), ${(totalUs / 1e6).toFixed(1)} s of non-idle samples.`, '');
  lines.push('| area | self CPU % |', '|---|---|');
  for (const [area, us] of [...areas.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`| ${area} | ${pct(us)} |`);
  lines.push('', '| function | where | area | self CPU % |', '|---|---|---|---|');
  for (const h of sorted.slice(0, top)) lines.push(`| \`${h.name}\` | ${h.where} | ${h.area} | ${pct(h.selfUs)} |`);
  const media = [...hot.values()].filter((h) => h.area === 'src/media').sort((a, b) => b.totalUs - a.totalUs).slice(0, top);
  lines.push('', 'Functions in src/media by inclusive CPU (self + everything they call):', '', '| function | where | inclusive CPU % | self CPU % |', '|---|---|---|---|');
  for (const h of media) lines.push(`| \`${h.name}\` | ${h.where} | ${pct(h.totalUs)} | ${pct(h.selfUs)} |`);
  return lines.join('\n');
}
