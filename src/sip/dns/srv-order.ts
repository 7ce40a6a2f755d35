import type { SrvData } from './dns-message';

/**
 * RFC 2782 order of SRV records: by priority, lowest first; within one priority a weighted random order
 * (each next record picked with probability weight / sum of the weights left, zero-weight records having
 * a small chance, placed first before the draw as the RFC says). A lone "." target means the service is
 * not offered there: no records. `random()` returns [0, 1).
 */
export function orderSrv(records: readonly SrvData[], random: () => number = Math.random): SrvData[] {
  if (records.length === 1 && (records[0]!.target === '' || records[0]!.target === '.')) return [];
  const byPriority = new Map<number, SrvData[]>();
  for (const r of records) {
    if (r.target === '' || r.target === '.') continue;
    const list = byPriority.get(r.priority) ?? [];
    list.push(r);
    byPriority.set(r.priority, list);
  }
  const out: SrvData[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    // zero weights first, then the others, each group in the order received
    const left = [...byPriority.get(priority)!].sort((a, b) => (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1));
    while (left.length > 0) {
      const total = left.reduce((sum, r) => sum + r.weight, 0);
      const pick = Math.floor(random() * (total + 1)); // 0..total
      let running = 0;
      let index = left.length - 1;
      for (let i = 0; i < left.length; i++) {
        running += left[i]!.weight;
        if (running >= pick) { index = i; break; }
      }
      out.push(left.splice(index, 1)[0]!);
    }
  }
  return out;
}
