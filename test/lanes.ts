/**
 * The test lanes of `npm test` (scripts/test.sh; docs/testing.md, "Lanes").
 *
 * test/lanes.json lists the files of the **parallel lane** (run three files at a time) and, grouped by
 * reason, the other files: a group marked `twoAtATime` is the **paired lane** (its files run two at a
 * time with each other, after the parallel lane), the rest the **serial lane** (one at a time, last); `beside` lists
 * the **beside lane** (long waits, run in the background beside the paired lane); `quiet` lists the serial
 * files of the **quiet lane** (little CPU, nothing machine-wide but their own: run two at a time with each other,
 * before the rest of the serial lane; each is also in the serial group that says why it is not parallel). A file in no
 * list runs in the serial lane — the safe default: a new file cannot disturb another by accident —
 * and test/unit/test-lanes.test.ts fails until it is listed in one of them.
 *
 * A file may be in the parallel lane only when it touches nothing another test process on the machine
 * can see: `globalResourceUses()` reads the file and every file under test/ or bench/ it loads
 * (imports, and child scripts it names) and finds the uses below; test/unit/test-lanes.test.ts keeps them out of it.
 *
 * CLI (used by scripts/test.sh): `node --import tsx test/lanes.ts parallel|paired|quiet|serial|beside [files...]` prints
 * the files of that lane, one a line, out of the given files (default: every test/**\/*.test.ts).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { blankComments } from './helpers/test-source-scan';

export const ROOT = path.resolve(__dirname, '..');
export const LANES_FILE = path.join(ROOT, 'test', 'lanes.json');

export interface SerialGroup {
  reason: string;
  files: string[];
  /**
   * The files of this group run two at a time with each other (never beside a file of another group or
   * lane): the **paired lane**. Allowed only when every file's machine-wide uses are in PAIRABLE_USES.
   */
  twoAtATime?: boolean;
}

export interface Lanes {
  /** what the file is, for a reader who opens it first */
  about?: string;
  parallel: string[];
  /**
   * The **beside lane**: files that spend minutes waiting on timers and idle connections (a client library's own
   * suite with its waits), run in the background beside the paired lane, and done before the serial lane
   * starts. Held to the parallel lane's rule: nothing machine-wide.
   */
  beside?: { reason: string; files: string[] };
  /**
   * The **quiet lane**: serial files (each also listed in the one-at-a-time serial group that gives its reason)
   * that spend their time waiting on their own timers with little CPU, and whose only machine-wide uses are
   * their own (QUIET_USES): run two at a time with each other only, before the rest of the serial lane.
   */
  quiet?: { reason: string; files: string[] };
  serial: SerialGroup[];
}

export type Lane = 'parallel' | 'paired' | 'quiet' | 'serial' | 'beside';

/**
 * Machine-wide uses that two files of the same kind may share: two Chromium files at once load both
 * cores but see nothing of each other (own ports, own browser, own ferry processes). Anything else —
 * a short lease, a real-time window, a /proc scan, a resource reading — keeps a file serial.
 */
export const PAIRABLE_USES: readonly string[] = ['Chromium'];

/**
 * Uses that keep a file serial but that two files of the quiet lane may have at the same time, as long as
 * both are light on CPU: SIP timers of tens of ms, a short gateway lease and a real-time window are at risk
 * only from a starved CPU; network namespaces are named after the process that made them, on a /30 it picked
 * (test/helpers/netns.ts, nat-router.ts). Anything seen by every process (iptables or tc on loopback, a
 * capture, a /proc scan, RSS/CPU readings, Chromium, baresip) keeps a file out of the quiet lane.
 */
export const QUIET_USES: readonly string[] = ['short SIP timers', 'short gateway lease', 'real-time window', 'network namespace'];

/**
 * Uses found in these helpers act only inside a network namespace the test made (tc qdiscs on its own veth
 * pair, iptables rules inside the namespace): no machine-wide use for the quiet lane's rule.
 */
export const OWN_NAMESPACE_USES: readonly { file: string; name: string }[] = [
  { file: 'test/helpers/netns.ts', name: 'tc qdisc' },
  { file: 'test/helpers/syn-dropping-target.ts', name: 'iptables rule' },
];

/** The uses of `file` that keep it out of the quiet lane (every use not in QUIET_USES nor OWN_NAMESPACE_USES). */
export function quietOffences(file: string): GlobalResourceUse[] {
  return globalResourceUses(file).filter(
    (u) => !QUIET_USES.includes(u.name) && !OWN_NAMESPACE_USES.some((o) => o.file === u.file && o.name === u.name),
  );
}

/** A kind of use of something shared with every other process on the machine. */
export interface GlobalResourcePattern {
  name: string;
  /** why a file that does this cannot run beside another test file */
  why: string;
  pattern: RegExp;
}

/** Matched against code with its comments blanked out (a word in prose does not count). */
export const GLOBAL_RESOURCE_PATTERNS: readonly GlobalResourcePattern[] = [
  { name: 'iptables rule', why: 'iptables rules on loopback act on every process of the machine', pattern: /['"`]iptables['"`]/ },
  { name: 'tc qdisc', why: 'tc qdiscs act on a whole network device', pattern: /['"`]tc['"`]/ },
  { name: 'network namespace', why: 'network namespaces, veth pairs and their routes are machine-wide names', pattern: /['"`]netns['"`]|\bip netns\b/ },
  { name: 'packet capture', why: 'tcpdump on loopback sees (and costs CPU for) every process\'s traffic', pattern: /['"`]tcpdump['"`]/ },
  { name: 'process tools', why: 'pgrep/pkill/killall/ps see (and hit) every process of the machine', pattern: /['"`](pgrep|pkill|killall|ps)['"`]/ },
  { name: 'process-table scan', why: 'a scan of /proc sees every process of the machine', pattern: /readdir(Sync)?\(\s*['"`]\/proc\/?['"`]/ },
  {
    name: 'resource measurement',
    why: 'RSS, fd counts or CPU read in real time move with whatever else runs',
    pattern: /VmRSS|\/proc\/\$\{[^}`]*\}\/fd\b|['"`]\/proc\/(stat|loadavg|meminfo)['"`]|\bprocess\.cpuUsage\(/,
  },
  { name: 'event-loop lag', why: 'event-loop lag measured in real time grows with the machine load', pattern: /monitorEventLoopDelay|eventLoopUtilization/ },
  { name: 'Chromium', why: 'Chromium is heavy on CPU and its WebRTC audio runs in real time', pattern: /launchChromium\(|['"`]playwright-core['"`]|['"`]\/usr\/bin\/chromium['"`]/ },
  { name: 'baresip phone', why: 'baresip is a real phone whose audio runs in real time', pattern: /['"`]baresip['"`]/ },
  { name: 'Redis flush', why: 'FLUSHALL/FLUSHDB empties the Redis every test shares', pattern: /\bflushall\b|\bflushdb\b/i },
  { name: 'fixed port', why: 'a fixed port number is one for the whole machine', pattern: /\.(listen|bind)\(\s*(\{\s*port:\s*)?[1-9]\d{1,4}\b/ },
  {
    name: 'short SIP timers',
    why: 'SIP timers shortened to tens of ms (T1 20-50 ms: a transaction times out after 64*T1, 1.3-3.2 s of real time), so a process starved by another test file retransmits or gives up',
    pattern: /\bt1:\s*[\w]+|FERRY_SIP_T1_MS['"`]?:\s*(['"`]\d|String\()/,
  },
  {
    name: 'short gateway lease',
    why: 'a gateway lease of a few seconds is renewed in real time: a gateway starved by another test file lets it lapse and its calls are adopted',
    pattern: /FERRY_GATEWAY_LEASE_MS['"`]?:\s*(['"`]\d{1,4}['"`]|String\()/,
  },
  { name: 'real-time window', why: 'a window of real time is the scenario; a loaded CPU stretches or starves it', pattern: /(?<!function\s+)(?<![\w$.|])realTimePause\(/ },
];

export interface GlobalResourceUse {
  name: string;
  why: string;
  /** the file (relative to the repository) where it was found: the test or a helper it loads */
  file: string;
  line: number;
}

/** Every use of a global resource in `code` (one per pattern, its first line). */
export function scanSource(code: string, file = '<text>'): GlobalResourceUse[] {
  const blank = blankComments(code);
  const uses: GlobalResourceUse[] = [];
  for (const p of GLOBAL_RESOURCE_PATTERNS) {
    const m = p.pattern.exec(blank);
    if (!m) continue;
    const line = blank.slice(0, m.index).split('\n').length;
    uses.push({ name: p.name, why: p.why, file, line });
  }
  return uses;
}

/**
 * Helpers whose scans of /proc keep only the children or descendants of a process the test itself
 * started (matched by parent pid): they see no other test file's processes, so these scans are no
 * machine-wide use. Only the process-table scan is excused; any other use in these files still counts.
 * A helper belongs here only while every /proc scan in it filters so (test/helpers/process-tree.ts
 * `descendants`, test/helpers/ferry-start-process.ts `childPid`).
 */
export const OWN_PROCESS_TREE_SCANS: readonly string[] = ['test/helpers/process-tree.ts', 'test/helpers/ferry-start-process.ts'];

/** Where the scan follows what a test loads: test code and the benchmark code tests drive (not src/). */
const FOLLOWED = ['test', 'bench'];

/** Files under test/ or bench/ that `code` (in `dir`) loads: relative imports/requires and named sibling scripts. */
export function localFilesLoaded(code: string, dir: string): string[] {
  const found = new Set<string>();
  const blank = blankComments(code);
  const add = (spec: string): void => {
    const base = path.resolve(dir, spec);
    for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
      if (candidate.endsWith('.ts') && existsSync(candidate) && statSync(candidate).isFile()) {
        found.add(candidate);
        return;
      }
    }
  };
  for (const m of blank.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"`](\.{1,2}\/[^'"`]+)['"`]/g)) add(m[1]!);
  // a child script started by path: path.join(__dirname, 'rtp-phone-child.ts'), or '../helpers/x-child.ts'
  for (const m of blank.matchAll(/['"`]((?:\.{1,2}\/)?[\w./-]+\.ts)['"`]/g)) add(m[1]!);
  return [...found].filter((f) => FOLLOWED.some((d) => f.startsWith(path.join(ROOT, d) + path.sep)));
}

/** Global-resource uses of a test file and of every file under test/ or bench/ it loads, transitively. */
export function globalResourceUses(file: string): GlobalResourceUse[] {
  const start = path.resolve(ROOT, file);
  const seen = new Set<string>([start]);
  const queue = [start];
  const uses: GlobalResourceUse[] = [];
  while (queue.length > 0) {
    const current = queue.shift()!;
    // this file holds the patterns themselves, which are no use of anything
    if (current === __filename) continue;
    const code = readFileSync(current, 'utf8');
    const rel = path.relative(ROOT, current).split(path.sep).join('/');
    const ownTreeOnly = OWN_PROCESS_TREE_SCANS.includes(rel);
    uses.push(...scanSource(code, rel).filter((u) => !(ownTreeOnly && u.name === 'process-table scan')));
    for (const next of localFilesLoaded(code, path.dirname(current))) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return uses;
}

/** Every test file, relative to the repository root, sorted (what `npm test` runs). */
export function allTestFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.test.ts')) out.push(rel);
    }
  };
  walk('test');
  return out.sort();
}

export function readLanes(file = LANES_FILE): Lanes {
  return JSON.parse(readFileSync(file, 'utf8')) as Lanes;
}

function normalize(file: string): string {
  return path.relative(ROOT, path.resolve(ROOT, file)).split(path.sep).join('/');
}

/** The lane of `file`: parallel, beside, quiet or paired only when test/lanes.json lists it there; everything else is serial. */
export function laneOf(file: string, lanes: Lanes = readLanes()): Lane {
  const f = normalize(file);
  if (lanes.parallel.includes(f)) return 'parallel';
  if (lanes.beside?.files.includes(f)) return 'beside';
  if (lanes.quiet?.files.includes(f)) return 'quiet';
  return lanes.serial.some((g) => g.twoAtATime === true && g.files.includes(f)) ? 'paired' : 'serial';
}

/** The reason test/lanes.json gives for `file` being serial, if it lists it there. */
export function serialReason(file: string, lanes: Lanes = readLanes()): string | undefined {
  const f = normalize(file);
  return lanes.serial.find((g) => g.files.includes(f))?.reason;
}

if (require.main === module) {
  const [lane, ...given] = process.argv.slice(2);
  if (lane !== 'parallel' && lane !== 'paired' && lane !== 'quiet' && lane !== 'serial' && lane !== 'beside') {
    process.stderr.write('usage: node --import tsx test/lanes.ts parallel|paired|quiet|serial|beside [test files...]\n');
    process.exit(2);
  }
  const lanes = readLanes();
  const files = given.length > 0 ? given : allTestFiles();
  let chosen = files.filter((f) => laneOf(f, lanes) === lane);
  // the quiet lane starts its files in the order test/lanes.json lists them (longest first), so that two run together to the end
  if (lane === 'quiet') {
    const given = new Set(chosen.map(normalize));
    chosen = (lanes.quiet?.files ?? []).filter((f) => given.has(f));
  }
  if (chosen.length > 0) process.stdout.write(`${chosen.join('\n')}\n`);
}
