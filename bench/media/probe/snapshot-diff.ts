/**
 * What grew between two V8 heap snapshots of ferry media (bench/media/webrtc-call-memory.ts --snapshot writes
 * them: before.heapsnapshot, calls-<N>.heapsnapshot, released.heapsnapshot), per call:
 *
 *   node --import tsx bench/media/probe/snapshot-diff.ts <a.heapsnapshot> <b.heapsnapshot> [--per <calls>] [--top 40]
 *
 * Groups nodes by type and name (closures by function name and script position, objects by constructor),
 * prints the groups whose self size grew most (count and bytes, divided by --per), then the ArrayBuffers of
 * the second snapshot by backing-store size with how many bytes their live views cover (an 8 KiB pool slab
 * kept alive by a 32-byte Buffer shows as "8192 B backing, 32 B viewed").
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

function load(file: string): Snapshot {
  return JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
}

interface Indexed {
  s: Snapshot;
  nf: number;
  ef: number;
  typeOf: (n: number) => string;
  nameOf: (n: number) => string;
  sizeOf: (n: number) => number;
  firstEdge: Int32Array;
  edgeCount: (n: number) => number;
}

function index(s: Snapshot): Indexed {
  const meta = s.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nType = meta.node_fields.indexOf('type');
  const nName = meta.node_fields.indexOf('name');
  const nSize = meta.node_fields.indexOf('self_size');
  const nEdges = meta.node_fields.indexOf('edge_count');
  const types = meta.node_types[0];
  const count = s.nodes.length / nf;
  const firstEdge = new Int32Array(count + 1);
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e;
    e += s.nodes[i * nf + nEdges] * ef;
    firstEdge[i + 1] = e;
  }
  return {
    s,
    nf,
    ef,
    typeOf: (n) => types[s.nodes[n * nf + nType]],
    nameOf: (n) => s.strings[s.nodes[n * nf + nName]],
    sizeOf: (n) => s.nodes[n * nf + nSize],
    firstEdge,
    edgeCount: (n) => s.nodes[n * nf + nEdges],
  };
}

/** Edges of node n as [edge type, edge name or index, target node]. */
function* edgesOf(ix: Indexed, n: number): Generator<[string, string | number, number]> {
  const meta = ix.s.snapshot.meta;
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const etypes = meta.edge_types[0];
  for (let e = ix.firstEdge[n]; e < ix.firstEdge[n + 1]; e += ix.ef) {
    const t = etypes[ix.s.edges[e + eType]];
    const raw = ix.s.edges[e + eName];
    const name = t === 'element' || t === 'hidden' ? raw : ix.s.strings[raw];
    yield [t, name, ix.s.edges[e + eTo] / ix.nf];
  }
}

/** For each node, the edges that point at it: [edge type, edge name, from node]. */
function retainersOf(ix: Indexed): Array<Array<[string, string | number, number]>> {
  const count = ix.s.nodes.length / ix.nf;
  const out: Array<Array<[string, string | number, number]>> = new Array(count);
  for (let n = 0; n < count; n++) {
    for (const [t, en, to] of edgesOf(ix, n)) {
      if (t === 'weak') continue;
      (out[to] ??= []).push([t, en, n]);
    }
  }
  return out;
}

/** Up to `samples` retainer chains (depth `depth`) of nodes whose "type\tname" key contains `who`, optionally of one self size. */
function who(ix: Indexed, pattern: string, size: number | undefined, samples: number, depth: number): void {
  const retainers = retainersOf(ix);
  const count = ix.s.nodes.length / ix.nf;
  let shown = 0;
  for (let n = 0; n < count && shown < samples; n++) {
    if (!`${ix.typeOf(n)}\t${ix.nameOf(n)}`.includes(pattern)) continue;
    if (size !== undefined && ix.sizeOf(n) !== size) continue;
    shown++;
    console.log(`\n${ix.typeOf(n)} ${ix.nameOf(n).slice(0, 60)} (${ix.sizeOf(n)} B)`);
    let cur = n;
    const seen = new Set<number>([n]);
    for (let d = 0; d < depth; d++) {
      const rs = (retainers[cur] ?? []).filter(([t, , from]) => !seen.has(from) && ix.typeOf(from) !== 'hidden' && !ix.nameOf(from).startsWith('(') && !ix.nameOf(from).includes('system /') ? true : !seen.has(from));
      if (rs.length === 0) break;
      const pick = rs.find(([t]) => t === 'property' || t === 'element' || t === 'context' || t === 'internal') ?? rs[0];
      console.log(`${'  '.repeat(d + 1)}<- ${pick[0]} ${String(pick[1]).slice(0, 40)} of ${ix.typeOf(pick[2])} ${ix.nameOf(pick[2]).slice(0, 60)}  (${rs.length} retainers)`);
      cur = pick[2];
      seen.add(cur);
    }
  }
}

function groups(ix: Indexed): Map<string, Group> {
  const out = new Map<string, Group>();
  const count = ix.s.nodes.length / ix.nf;
  const retainers = retainersOf(ix);
  for (let n = 0; n < count; n++) {
    const type = ix.typeOf(n);
    let name = ix.nameOf(n);
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = name.length > 40 ? `${name.slice(0, 24)}…(${name.length})` : name;
    if (type === 'closure') {
      let script = '';
      for (const [, en, to] of edgesOf(ix, n)) {
        if (en !== 'shared') continue;
        for (const [, sn, st] of edgesOf(ix, to)) if (sn === 'script_or_debug_info') script = ix.nameOf(st).replace(/.*node_modules\//, '').replace(/.*\/work\/[^/]+\//, '');
      }
      const owner = retainers[n]?.find(([t, en2]) => t === 'property' && typeof en2 === 'string');
      const where = owner ? `${ix.nameOf(owner[2])}.${String(owner[1])}` : name;
      name = `${where} (${name}) @${script}`;
    }
    const key = `${type}\t${name}`;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += ix.sizeOf(n);
    out.set(key, g);
  }
  return out;
}

function arrayBuffers(ix: Indexed): void {
  // JSArrayBuffer nodes: backing store as a 'native' child named 'system / JSArrayBufferData'
  const count = ix.s.nodes.length / ix.nf;
  const viewed = new Map<number, number>();
  const backing = new Map<number, number>();
  for (let n = 0; n < count; n++) {
    if (ix.typeOf(n) !== 'object') continue;
    const name = ix.nameOf(n);
    if (name === 'ArrayBuffer' || name === 'SharedArrayBuffer') {
      for (const [, en, to] of edgesOf(ix, n)) if (en === 'backing_store') backing.set(n, ix.sizeOf(to));
    }
  }
  for (let n = 0; n < count; n++) {
    if (ix.typeOf(n) !== 'object') continue;
    const name = ix.nameOf(n);
    if (name !== 'Uint8Array' && name !== 'Buffer' && name !== 'FastBuffer' && name !== 'DataView') continue;
    for (const [, en, to] of edgesOf(ix, n)) {
      if (en === 'buffer' && backing.has(to)) viewed.set(to, (viewed.get(to) ?? 0) + 1);
    }
  }
  const bySize = new Map<number, { n: number; views: number }>();
  for (const [ab, size] of backing) {
    const g = bySize.get(size) ?? { n: 0, views: 0 };
    g.n++;
    g.views += viewed.get(ab) ?? 0;
    bySize.set(size, g);
  }
  const rows = [...bySize].sort((a, b) => b[0] * b[1].n - a[0] * a[1].n).slice(0, 15);
  console.log('\nArrayBuffers by backing-store size (second snapshot): size\tcount\ttotal KiB\tviews');
  for (const [size, g] of rows) console.log(`${size}\t${g.n}\t${((size * g.n) / 1024).toFixed(1)}\t${g.views}`);
}

function main(): void {
  const args = process.argv.slice(2);
  const files = args.filter((a) => a.endsWith('.heapsnapshot'));
  const per = Number(args[args.indexOf('--per') + 1] ?? 1) || 1;
  const top = args.includes('--top') ? Number(args[args.indexOf('--top') + 1]) : 40;
  const [fa, fb] = files;
  if (args.includes('--who')) {
    const pat = args[args.indexOf('--who') + 1];
    const size = args.includes('--size') ? Number(args[args.indexOf('--size') + 1]) : undefined;
    who(index(load(fa)), pat, size, Number(args.includes('--samples') ? args[args.indexOf('--samples') + 1] : 5), 12);
    return;
  }
  if (!fa || !fb) {
    console.error('usage: snapshot-diff.ts <a.heapsnapshot> <b.heapsnapshot> [--per N] [--top 40]');
    process.exit(2);
  }
  const a = groups(index(load(fa)));
  const ixb = index(load(fb));
  const b = groups(ixb);
  const rows: Array<[string, number, number]> = [];
  let total = 0;
  for (const [k, gb] of b) {
    const ga = a.get(k) ?? { count: 0, bytes: 0 };
    rows.push([k, (gb.count - ga.count) / per, (gb.bytes - ga.bytes) / per]);
    total += gb.bytes - ga.bytes;
  }
  for (const [k, ga] of a) if (!b.has(k)) { rows.push([k, -ga.count / per, -ga.bytes / per]); total -= ga.bytes; }
  rows.sort((x, y) => y[2] - x[2]);
  console.log(`self size grew ${(total / per / 1024).toFixed(1)} KiB per unit (--per ${per})`);
  // by type
  const byType = new Map<string, [number, number]>();
  for (const [k, c, by] of rows) {
    const t = k.split('\t')[0];
    const v = byType.get(t) ?? [0, 0];
    byType.set(t, [v[0] + c, v[1] + by]);
  }
  console.log('by type: count\tbytes');
  for (const [t, [c, by]] of [...byType].sort((x, y) => y[1][1] - x[1][1])) console.log(`${t}\t${c.toFixed(1)}\t${by.toFixed(0)}`);
  console.log('\ntop groups: count\tbytes\ttype\tname');
  for (const [k, c, by] of rows.slice(0, top)) console.log(`${c.toFixed(1)}\t${by.toFixed(0)}\t${k}`);
  arrayBuffers(ixb);
}

main();
