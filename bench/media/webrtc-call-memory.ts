/**
 * What one WebRTC↔RTP call costs ferry media in memory and set-up time, measured so that a loaded 2-core
 * machine distorts it little: memory is read after a full GC (so it does not depend on when V8 last
 * collected), and set-up is split into its phases (so a slow phase is named, not blurred into one total).
 *
 *   node --import tsx bench/media/webrtc-call-memory.ts [--steps 100,200] [--concurrency 10] [--settle-ms 3000]
 *        [--browsers 2] [--sequential 10] [--snapshot] [--nice -5] [--media-env K=V,...] [--out DIR]
 *
 * Starts `bin/ferry media` with FERRY_MEDIA_WORKERS=1 (pipelines on its main thread) and the heap probe
 * (bench/media/probe/heap-probe.cjs: --expose-gc; SIGUSR2 = GC, then one memory line, optionally a heap
 * snapshot). Calls are set up exactly as bench:media's ferry-webrtc target does (phases/webrtc-call-setup.ts:
 * kurento-client, werift browsers from load/webrtc-peer-worker.ts, plain-RTP phones from load/rtp-peer-worker.ts),
 * `--concurrency` at a time, with media flowing (50 packets/s each way per call) while later calls are set up.
 * At each step (cumulative calls up) it reports, against the same server before its first call:
 * RSS per call as bench:media reads it (no forced GC), RSS / V8 heap / external memory per call after GC,
 * and the set-up phases p50/p99 (ms since the MediaPipeline create was sent), apart for the last `--sequential`
 * calls of each step, set up one at a time (set-up at N calls up without queueing behind other set-ups). After the last step every
 * call is released and memory read again (what a released call leaves behind).
 * `--snapshot` writes heap snapshots (before the first call, at each step, after release) into DIR
 * (bench/media/probe/snapshot-diff.ts lists what grew between two of them, per call); writing one
 * grows the process's RSS by tens of MiB, so RSS figures of a --snapshot run are not comparable (heap figures are).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LoadWorker } from './load/load-worker';
import { PhonePool } from './load/phone-pool';
import type { StreamSpec } from './load/worker-protocol';
import { runLimited } from './phases/bench-target';
import { defaultResultsDir, mediaServerPid, parseBenchArgs, resultsDirHarness, runBench, type StandaloneBenchOptions } from './phases/standalone-media-bench';
import { setUpWebRtcCall, type WebRtcCallMarks } from './phases/webrtc-call-setup';

const PROBE = path.join(__dirname, 'probe', 'heap-probe.cjs');
const CONNECT_TIMEOUT_MS = 20000;
const PHASES: (keyof WebRtcCallMarks)[] = [
  'pipeline',
  'endpoints',
  'connected',
  'rtpOffer',
  'processOffer',
  'browserAnswer',
  'gatherCandidates',
  'firstCandidate',
  'iceConnected',
  'dtlsConnected',
  'done',
];

interface Options extends StandaloneBenchOptions {
  steps: number[];
  concurrency: number;
  settleMs: number;
  /** wait after ferry media is up before the baseline reading (ms) */
  baselineWaitMs: number;
  browsers: number;
  /** the last this-many calls of each step are set up one at a time (their set-up reported apart) */
  sequential: number;
  snapshot: boolean;
  nice: number;
}

const USAGE = `usage: node --import tsx bench/media/webrtc-call-memory.ts [options]
  --steps 100,200      cumulative calls up at each measurement (default 100,200)
  --concurrency 10     calls set up at a time (default 10, as bench:media)
  --settle-ms 3000     wait after a step before reading memory (default 3000)
  --baseline-wait-ms N wait after ferry media is up before the baseline reading (default 11000: one event-loop-lag
                       window and a second, so its fixed ring of histograms is in the baseline; 1000 before 2026-12-04)
  --browsers 2         werift browser load processes (default 2)
  --sequential 10      the last k calls of each step are set up one at a time, with the step's other calls up and
                       flowing; their set-up is reported apart (set-up at N calls without queueing behind 9 others)
  --snapshot           write V8 heap snapshots of ferry media (before, each step, after release) into --out
                       (this inflates RSS: use a run without it for RSS figures)
  --nice -5            start ferry media and the load processes with nice -n <n>
  --media-env K=V,...  extra environment for ferry media
  --out DIR            results directory (default /tmp/webrtc-call-memory-<time>)`;

function parse(argv: string[]): Options {
  const o: Options = {
    steps: [100, 200],
    concurrency: 10,
    settleMs: 3000,
    baselineWaitMs: 1000 + Number(process.env.FERRY_MEDIA_LAG_WINDOW_MS ?? 10_000),
    browsers: 2,
    sequential: 10,
    snapshot: false,
    nice: 0,
    mediaEnv: {},
    out: defaultResultsDir('webrtc-call-memory'),
  };
  parseBenchArgs(argv, USAGE, o, (a, v) => {
    if (a === '--steps') o.steps = v().split(',').map(Number);
    else if (a === '--concurrency') o.concurrency = Number(v());
    else if (a === '--settle-ms') o.settleMs = Number(v());
    else if (a === '--baseline-wait-ms') o.baselineWaitMs = Number(v());
    else if (a === '--browsers') o.browsers = Number(v());
    else if (a === '--sequential') o.sequential = Number(v());
    else if (a === '--snapshot') o.snapshot = true;
    else if (a === '--nice') o.nice = Number(v());
    else return false;
    return true;
  });
  if (o.steps.some((n) => !Number.isInteger(n) || n < 1) || o.steps.some((n, k) => k > 0 && n <= o.steps[k - 1]!)) {
    throw new Error('--steps must be increasing positive integers');
  }
  return o;
}

interface MemorySample {
  label: string;
  calls: number;
  /** VmRSS before the forced GC (what bench:media reads) */
  rssNoGc: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** after the GC, KiB */
  mappings: { brkHeap: number; anonymous: number; files: number };
}

/** RSS by kind of mapping (KiB): the brk heap (glibc's main malloc arena), anonymous mappings (V8's heap pages,
 * other malloc arenas, large malloc chunks), file-backed (code, libraries). */
function rssByMapping(pid: number): { brkHeap: number; anonymous: number; files: number } {
  const out = { brkHeap: 0, anonymous: 0, files: 0 };
  let kind: keyof typeof out = 'files';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1]!.trim();
      kind = name === '[heap]' ? 'brkHeap' : name === '' || name.startsWith('[anon') ? 'anonymous' : 'files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]);
  }
  return out;
}

function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function sample(pid: number, memFile: string, label: string, calls: number, snapshot: string | undefined): Promise<MemorySample> {
  const rssNoGc = vmRss(pid);
  const before = existsSync(memFile) ? readFileSync(memFile, 'utf8').split('\n').filter(Boolean).length : 0;
  if (snapshot) writeFileSync(`${memFile}.snapshot`, snapshot);
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 120000;
  for (;;) {
    const lines = existsSync(memFile) ? readFileSync(memFile, 'utf8').split('\n').filter(Boolean) : [];
    if (lines.length > before) {
      const m = JSON.parse(lines[lines.length - 1]!) as { rss: number; heapUsed: number; external: number; arrayBuffers: number; gc: boolean };
      if (!m.gc) throw new Error('the heap probe has no gc() (--expose-gc did not reach ferry media)');
      return { label, calls, rssNoGc, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, mappings: rssByMapping(pid) };
    }
    if (Date.now() > deadline) throw new Error('ferry media wrote no memory sample within 120 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function pct(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const kib = (bytes: number): string => (bytes / 1024).toFixed(0);

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o.nice !== 0) process.env.FERRY_BENCH_NICE = String(o.nice);
  const memFile = path.join(o.out, 'memory.jsonl');
  const harness = resultsDirHarness(o.out, { env: { ...o.mediaEnv, FERRY_MEDIA_WORKERS: '1', FERRY_BENCH_MEM_FILE: memFile } });
  // Only ferry media gets the probe: NODE_OPTIONS is set for its start and restored before the load workers fork.
  const nodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = [nodeOptions ?? '', '--expose-gc', `--require ${PROBE}`].join(' ').trim();
  let streamId = 0;
  let phones: PhonePool | undefined;
  let browsers: LoadWorker[] = [];
  const browserStreams = new Map<LoadWorker, number[]>();
  try {
    try {
      await harness.start();
    } finally {
      if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = nodeOptions;
    }
    phones = new PhonePool(1, () => ++streamId, 'memory');
    browsers = Array.from({ length: Math.max(1, o.browsers) }, (_, i) => new LoadWorker('webrtc-peer', `memory-werift${i}`));
    const pid = mediaServerPid(harness.server.pid);
    const kurento = harness.kurento();
    const snap = (name: string): string | undefined => (o.snapshot ? path.join(o.out, `${name}.heapsnapshot`) : undefined);
    // ferry media's event-loop-lag ring (src/media/server/event-loop-lag.ts: a histogram per tenth of the lag
    // window, ~0.35 MiB each) is complete one window after start: read the baseline after that, or ~3 MiB of
    // fixed cost is counted per call (16 KiB per call at 200 calls)
    await new Promise((r) => setTimeout(r, o.baselineWaitMs));
    const base = await sample(pid, memFile, 'before the first call', 0, snap('before'));
    const samples: MemorySample[] = [base];
    const steps: { calls: number; failed: number; errors: string[]; marks: WebRtcCallMarks[]; sequentialMarks: WebRtcCallMarks[]; wallMs: number }[] = [];
    let up = 0;
    let nextBrowser = 0;
    for (const [k, target] of o.steps.entries()) {
      const add = target - up;
      const t0 = Date.now();
      const opened = await phones.open(Array.from({ length: add }, () => 1 as const));
      const marks: WebRtcCallMarks[] = [];
      const sequentialMarks: WebRtcCallMarks[] = [];
      const errors: string[] = [];
      const k1 = Math.max(0, add - Math.min(o.sequential, add));
      const setUp = async (phone: (typeof opened)[number], into: WebRtcCallMarks[]): Promise<void> => {
        const browser = browsers[nextBrowser++ % browsers.length]!;
        const id = ++streamId;
        const spec: StreamSpec = { streamId: id, direction: 0, ssrc: (0x20000000 + id) >>> 0 };
        browserStreams.set(browser, [...(browserStreams.get(browser) ?? []), id]);
        const m: WebRtcCallMarks = {};
        try {
          const offer = await browser.request<string>({ op: 'offer', stream: spec, lean: true });
          await setUpWebRtcCall({
            kurento,
            phones: phones!,
            phone,
            browser,
            streamId: id,
            offer,
            connectTimeoutMs: CONNECT_TIMEOUT_MS,
            onPipeline: (p) => harness.pipelines.push(p),
            marks: m,
          });
          into.push(m);
        } catch (err) {
          errors.push(err instanceof Error ? err.message : String(err));
        }
      };
      await runLimited(opened.slice(0, k1), o.concurrency, (phone) => setUp(phone, marks));
      await runLimited(opened.slice(k1), 1, (phone) => setUp(phone, sequentialMarks));
      up = target;
      steps.push({ calls: target, failed: errors.length, errors: [...new Set(errors)].slice(0, 5), marks, sequentialMarks, wallMs: Date.now() - t0 });
      await new Promise((r) => setTimeout(r, o.settleMs));
      samples.push(await sample(pid, memFile, `${target} calls up`, target, snap(`calls-${target}`)));
      process.stdout.write(`step ${target}: ${add - errors.length}/${add} set up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    await phones.closeAll();
    await Promise.all([...browserStreams.entries()].map(([w, ids]) => w.request({ op: 'close', streamIds: ids }).catch(() => undefined)));
    const verdict = await harness.releaseAll();
    await new Promise((r) => setTimeout(r, o.settleMs));
    samples.push(await sample(pid, memFile, `after release (${verdict})`, 0, snap('released')));

    const lines: string[] = [];
    lines.push(`ferry media FERRY_MEDIA_WORKERS=1, concurrency ${o.concurrency}, ${o.browsers} werift browser processes, media 50 packets/s each way per call`);
    lines.push('');
    lines.push('| memory | calls | RSS per call KiB (no GC, as bench:media) | RSS per call KiB (after GC) | V8 heap per call KiB | external per call KiB | of which ArrayBuffers KiB | RSS MiB | RSS MiB in brk heap / anonymous / files |');
    lines.push('|---|---|---|---|---|---|---|---|---|');
    for (const s of samples) {
      const per = (x: number): string => (s.calls > 0 ? kib(x / s.calls) : `${(x / 1024).toFixed(0)} (total Δ)`);
      lines.push(
        `| ${s.label} | ${s.calls} | ${per(s.rssNoGc - base.rssNoGc)} | ${per(s.rss - base.rss)} | ${per(s.heapUsed - base.heapUsed)} | ${per(s.external - base.external)} | ${per(s.arrayBuffers - base.arrayBuffers)} | ${(s.rss / 1048576).toFixed(1)} | ${(s.mappings.brkHeap / 1024).toFixed(1)} / ${(s.mappings.anonymous / 1024).toFixed(1)} / ${(s.mappings.files / 1024).toFixed(1)} |`,
      );
    }
    lines.push('');
    const cols = steps.flatMap((s) => [
      { head: `${s.calls} calls, ${s.marks.length} set up ${o.concurrency} at a time: p50 / p99`, marks: s.marks },
      { head: `${s.calls} calls, last ${s.sequentialMarks.length} one at a time: p50 / p99`, marks: s.sequentialMarks },
    ]).filter((c) => c.marks.length > 0);
    lines.push('| set-up phase (ms since MediaPipeline create) | ' + cols.map((c) => c.head).join(' | ') + ' |');
    lines.push('|---|' + cols.map(() => '---|').join(''));
    for (const ph of PHASES) {
      const cells = cols.map((c) => {
        const v = c.marks.map((m) => m[ph]).filter((x): x is number => x !== undefined);
        const a = pct(v, 50);
        const b = pct(v, 99);
        return a === undefined ? 'n/a' : `${a.toFixed(0)} / ${b!.toFixed(0)}`;
      });
      lines.push(`| ${ph} | ${cells.join(' | ')} |`);
    }
    lines.push('');
    for (const s of steps) {
      lines.push(`step ${s.calls}: ${s.failed} failed${s.errors.length ? ` (${s.errors.join('; ')})` : ''}, wall ${(s.wallMs / 1000).toFixed(1)} s`);
    }
    const report = lines.join('\n');
    process.stdout.write(`\n${report}\n\nresults: ${o.out}\n`);
    writeFileSync(path.join(o.out, 'results.md'), `${report}\n`);
    writeFileSync(path.join(o.out, 'results.json'), JSON.stringify({ options: o, samples, steps }, null, 2));
  } finally {
    await Promise.all([phones?.stop(), ...browsers.map((b) => b.stop())]);
    await harness.stop();
  }
}

runBench(main);
