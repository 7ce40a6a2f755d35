import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseToolList, spawnedPrograms, type SpawnedProgram } from '../helpers/spawned-programs';

/**
 * `npm test` on a fresh machine installs the Debian package of every program listed in
 * scripts/test-tools.txt. This test reads every TypeScript file of test/, src/ and bench/, finds the
 * programs they start, and fails naming each one whose package is not in that list, so a new tool
 * cannot be added to the tests without its install line.
 */
const ROOT = path.join(__dirname, '..', '..');
const TOOL_LIST = path.join(ROOT, 'scripts', 'test-tools.txt');
/** on every Debian system (Essential: yes packages: bash, dash, coreutils, util-linux's kill) */
const ESSENTIAL = new Set(['bash', 'sh', 'kill', 'sleep', 'cat', 'true', 'false', 'env', 'mktemp', 'rm', 'mkdir', 'nice']);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

function unlisted(found: SpawnedProgram[], tools: Map<string, string>): SpawnedProgram[] {
  return found.filter((p) => !tools.has(p.program) && !ESSENTIAL.has(p.program));
}

test('every program the tests start has its Debian package in scripts/test-tools.txt', { timeout: 60_000 }, () => {
  const tools = parseToolList(readFileSync(TOOL_LIST, 'utf8'));
  const found = ['test', 'src', 'bench'].flatMap((d) => tsFiles(path.join(ROOT, d))).flatMap((f) => spawnedPrograms(readFileSync(f, 'utf8'), path.relative(ROOT, f)));
  // the scan does see the programs we know the tests run (so an empty scan cannot pass)
  const names = new Set(found.map((p) => p.program));
  for (const known of ['sipp', 'ip', 'tc', 'iptables', 'baresip', 'chromium']) assert.ok(names.has(known), `the scan found no use of ${known}; found: ${[...names].sort().join(', ')}`);
  // and a list without sipp's line would be caught on the real tree
  const withoutSipp = new Map([...tools].filter(([program]) => program !== 'sipp'));
  assert.ok(unlisted(found, withoutSipp).some((p) => p.program === 'sipp' && p.file.startsWith('test/')), 'removing a line from the list is noticed');
  const missing = unlisted(found, tools);
  assert.deepEqual(
    missing.map((p) => `${p.program} (${p.file}:${p.line})`),
    [],
    'programs started by test code whose Debian package is not in scripts/test-tools.txt (add "<program> <package>" lines)',
  );
});

test('scripts/test.sh installs from scripts/test-tools.txt and checks each program with command -v', { timeout: 30_000 }, () => {
  const script = readFileSync(path.join(ROOT, 'scripts', 'test.sh'), 'utf8');
  assert.match(script, /done < scripts\/test-tools\.txt/);
  assert.match(script, /command -v "\$program"/);
  assert.match(script, /apt-get .*install -y -qq "\$\{need\[@\]\}"/);
});

test('positive control: a program added later without an install line is reported by name', { timeout: 30_000 }, () => {
  const tools = parseToolList('sipp sip-tester\nip iproute2  # namespaces\n# tshark tshark\n');
  const fixture = [
    "import { spawn, execFile, execSync } from 'node:child_process';",
    "import { promisify } from 'node:util';",
    'const run = promisify(execFile);',
    "const TOOL = 'socat';",
    "spawn('sipp', ['-sn', 'uas']);",
    "spawn('tshark', ['-i', 'lo']);",
    "await run('nft', ['list', 'ruleset']);",
    "execSync('/usr/sbin/ethtool -k lo');",
    'spawn(TOOL, []);',
    "await ns.exec('ip', ['link']);",
    "await ns.exec('tcpdump', ['-i', 'lo']);",
    "const browser = await chromium.launch({ executablePath: '/usr/bin/firefox-esr' });",
    "spawn('ip', ['netns', 'exec', nsName, 'linphonec', '-c', rc]);",
    // not external, or not a program at all
    "spawn(process.execPath, [BIN, 'sip']);",
    "spawn('node', ['x.js']);",
    "execFile('bin/ferry', ['start']);",
    "const m = /x(\\d+)/.exec('x1');",
    'const n = re.exec(text);',
    "const body = JSON.stringify({ command: 'dial' });",
  ].join('\n');
  const found = spawnedPrograms(fixture, 'fixture.ts');
  assert.deepEqual(found.map((p) => p.program).sort(), ['ethtool', 'firefox-esr', 'ip', 'ip', 'linphonec', 'nft', 'sipp', 'socat', 'tcpdump', 'tshark'].sort());
  assert.deepEqual(unlisted(found, tools).map((p) => `${p.program}:${p.line}`), ['tshark:6', 'nft:7', 'ethtool:8', 'socat:9', 'tcpdump:11', 'firefox-esr:12', 'linphonec:13']);
  // the supervisor's command: field counts in files that use it
  const supervised = "import { ChildProcessSupervisor } from './supervisor/child-process-supervisor';\nnew ChildProcessSupervisor({ name: 'redis', command: 'redis-server', args: [] });";
  assert.deepEqual(spawnedPrograms(supervised, 'private-redis.ts').map((p) => p.program), ['redis-server']);
});
